"""``GET /v1/statistics/key-counts``: the key server's released daily key counts (AGG-38)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from phe_trace.analytics.dp import DEFAULT_KEY_COUNT_EPSILON, MAX_KEYS_PER_UPLOAD

from ..deps import ContextDep
from ..key_counts import released_key_counts

__all__ = ["router"]

router = APIRouter(tags=["aggregate statistics"])


@router.get("/v1/statistics/key-counts", summary="Differentially private real keys per day")
def key_counts(ctx: ContextDep) -> JSONResponse:
    """Every released day: noisy count of real keys, ε, sensitivity, noise and 95 % interval."""
    return JSONResponse(
        {
            "mechanism": (
                f"discrete Laplace, sensitivity {MAX_KEYS_PER_UPLOAD} keys (one upload), "
                f"ε {DEFAULT_KEY_COUNT_EPSILON} per day; padding keys are not counted"
            ),
            "releases": [r.to_json() for r in released_key_counts(ctx)],
        }
    )
