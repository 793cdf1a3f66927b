"""``POST /v1/publish`` — the GAEN v1 publish API (SPEC §11)."""

from __future__ import annotations

import asyncio
import time

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from phe_trace.protocol.publish import PublishRequest, PublishResponse

from ..deps import ContextDep
from ..logs import log_event
from ..publish import handle_publish, success_response

__all__ = ["router"]

router = APIRouter(tags=["publish"])

_ERRORS: dict[int | str, dict[str, object]] = {
    400: {"model": PublishResponse, "description": "Refused: bad request or revision problem."},
    401: {"model": PublishResponse, "description": "Certificate invalid or unknown authority."},
    413: {"model": PublishResponse, "description": "Body larger than the configured limit."},
    503: {"model": PublishResponse, "description": "Health authority keys unavailable."},
}


@router.post(
    "/v1/publish",
    response_model=PublishResponse,
    responses=_ERRORS,
    summary="Publish diagnosis keys (GAEN v1)",
)
async def publish(body: PublishRequest, ctx: ContextDep) -> JSONResponse:
    """Verify the certificate and HMAC, validate and store the keys, answer padded.

    The checks and the database transaction run on the context's publish threads, in
    arrival order; the measured latency (which chaff answers imitate) includes the wait.
    """
    started = time.perf_counter()
    loop = asyncio.get_running_loop()
    outcome = await loop.run_in_executor(ctx.publish_executor, handle_publish, ctx, body, ctx.now())
    response = success_response(ctx, outcome)
    elapsed = time.perf_counter() - started
    ctx.metrics.publishes.inc()
    ctx.metrics.keys_inserted.inc(outcome.inserted)
    ctx.metrics.keys_dropped.inc(sum(w.endswith("key dropped") for w in outcome.warnings))
    ctx.metrics.publish_seconds.observe(elapsed)
    ctx.latency.observe(elapsed)
    log_event(
        "publish",
        inserted=outcome.inserted,
        revised=outcome.revised,
        warnings=len(outcome.warnings),
    )
    return JSONResponse(response.to_json_dict())
