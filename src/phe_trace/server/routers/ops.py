"""``GET /healthz`` and ``GET /metrics`` (Prometheus text format)."""

from __future__ import annotations

import sqlalchemy as sa
from fastapi import APIRouter
from fastapi.responses import JSONResponse, PlainTextResponse
from sqlalchemy.exc import SQLAlchemyError

from ..deps import ContextDep

__all__ = ["router"]

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="Liveness and database check")
def healthz(ctx: ContextDep) -> JSONResponse:
    """200 ``{"status": "ok"}`` when the database answers, else 503."""
    try:
        with ctx.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except SQLAlchemyError:
        return JSONResponse({"status": "unavailable", "database": "error"}, status_code=503)
    return JSONResponse({"status": "ok", "database": "ok"})


@router.get("/metrics", summary="Prometheus metrics", response_class=PlainTextResponse)
def metrics(ctx: ContextDep) -> PlainTextResponse:
    """Counters and histograms in the Prometheus text exposition format 0.0.4."""
    return PlainTextResponse(
        ctx.metrics.registry.render(), media_type="text/plain; version=0.0.4; charset=utf-8"
    )
