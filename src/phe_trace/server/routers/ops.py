"""``GET /healthz`` and ``GET /metrics`` (Prometheus text format)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, PlainTextResponse
from sqlalchemy.exc import SQLAlchemyError

from ..deps import ContextDep
from ..errors import SigningKeyError
from ..signing import load_signing_keys
from ..storage import queries

__all__ = ["router"]

router = APIRouter(tags=["operations"])


@router.get(
    "/healthz",
    summary="Liveness, database and signing-key check",
    responses={503: {"description": "The database or a signing key is unusable."}},
)
def healthz(ctx: ContextDep) -> JSONResponse:
    """200 ``{"status": "ok"}`` when the database answers and every active signing key
    loads, else 503 naming which is broken (PUB-34, PUB-36)."""
    checks = {"database": "ok", "signing_keys": "ok"}
    try:
        with ctx.engine.connect() as conn:
            queries.ping(conn)
    except SQLAlchemyError:
        checks["database"] = "error"
    try:
        load_signing_keys(ctx.settings.signing_key_dir, ctx.settings.signing_key_id)
    except SigningKeyError:
        checks["signing_keys"] = "error"
    if "error" in checks.values():
        return JSONResponse({"status": "unavailable", **checks}, status_code=503)
    return JSONResponse({"status": "ok", **checks})


@router.get("/metrics", summary="Prometheus metrics", response_class=PlainTextResponse)
def metrics(ctx: ContextDep) -> PlainTextResponse:
    """Counters and histograms in the Prometheus text exposition format 0.0.4."""
    return PlainTextResponse(
        ctx.metrics.registry.render(), media_type="text/plain; version=0.0.4; charset=utf-8"
    )
