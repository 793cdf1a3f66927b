"""``create_app(settings)``: the key server as a FastAPI application (no import-time state).

Routers (one per file in ``routers/``) are composed here; errors are mapped here to
JSON with a stable ``code`` — a bad request is never a 500.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException

from phe_trace import __version__
from phe_trace.protocol.publish import (
    ERROR_BAD_REQUEST,
    ERROR_INTERNAL,
    ERROR_PAYLOAD_TOO_LARGE,
    PublishResponse,
)
from phe_trace.protocol.query import SingleQueryValues

from . import analytics_ingest
from .context import Clock, ServerContext
from .errors import DatabaseUnavailableError, ExportStoreError, PublishError, ServerError
from .logs import configure_logging, log_event
from .middleware import KeyServerMiddleware
from .publish import padding_for
from .routers import analytics_config, exports, ops, publish, statistics
from .settings import ServerSettings
from .storage.database import is_transient

__all__ = ["create_app"]

_HTTP_CODES = {
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    413: ERROR_PAYLOAD_TOO_LARGE,
    429: "too_many_requests",
}
#: Seconds a client should wait after a 503 ``unavailable`` (the database reconnects).
RETRY_AFTER_SECONDS = 2


def _is_publish(request: Request) -> bool:
    return request.url.path.endswith("/v1/publish")


def _error(
    ctx: ServerContext,
    request: Request,
    status: int,
    code: str,
    message: str,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    if _is_publish(request):
        body = PublishResponse(error=message, code=code, padding=padding_for(ctx))
        return JSONResponse(body.to_json_dict(), status_code=status, headers=headers)
    return JSONResponse({"error": message, "code": code}, status_code=status, headers=headers)


def _unavailable(ctx: ServerContext, request: Request) -> JSONResponse:
    log_event("database_unavailable", logging.WARNING)
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}
    message = "the database is unavailable; retry later"
    return _error(ctx, request, 503, DatabaseUnavailableError.code, message, headers)


def _install_error_handlers(app: FastAPI, ctx: ServerContext) -> None:
    @app.exception_handler(PublishError)
    async def publish_error(request: Request, exc: PublishError) -> JSONResponse:
        ctx.metrics.rejects.inc(code=exc.code)
        log_event("publish_rejected", code=exc.code)
        return _error(ctx, request, exc.status, exc.code, str(exc))

    @app.exception_handler(ExportStoreError)
    async def not_found(request: Request, exc: ExportStoreError) -> JSONResponse:
        return _error(ctx, request, 404, "not_found", "no such export object")

    @app.exception_handler(DatabaseUnavailableError)
    async def unavailable(request: Request, exc: DatabaseUnavailableError) -> JSONResponse:
        return _unavailable(ctx, request)

    @app.exception_handler(DBAPIError)
    async def database_error(request: Request, exc: DBAPIError) -> JSONResponse:
        if is_transient(exc):  # a dropped connection outside the retried publish write
            return _unavailable(ctx, request)
        log_event("internal_error", logging.ERROR, exception=type(exc).__name__)
        return _error(ctx, request, 500, ERROR_INTERNAL, "internal error")

    @app.exception_handler(ServerError)
    async def server_error(request: Request, exc: ServerError) -> JSONResponse:
        log_event("server_error", logging.ERROR, code=exc.code)
        return _error(ctx, request, 500, exc.code, "the server cannot answer this request")

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        if _is_publish(request):
            ctx.metrics.rejects.inc(code=ERROR_BAD_REQUEST)
        fields = sorted({".".join(str(p) for p in e.get("loc", ())[1:]) for e in exc.errors()})
        message = "request is malformed" + (f": {', '.join(fields)[:300]}" if fields else "")
        return _error(ctx, request, 400, ERROR_BAD_REQUEST, message)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, ERROR_BAD_REQUEST)
        if exc.status_code == 413 and _is_publish(request):
            ctx.metrics.rejects.inc(code=code)
        return _error(ctx, request, exc.status_code, code, str(exc.detail), dict(exc.headers or {}))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log_event("internal_error", logging.ERROR, exception=type(exc).__name__)
        return _error(ctx, request, 500, ERROR_INTERNAL, "internal error")


def create_app(
    settings: ServerSettings | None = None,
    *,
    clock: Clock | None = None,
    context: ServerContext | None = None,
    background_export: bool = False,
) -> FastAPI:
    """The key server app for ``settings`` (or an already opened ``context``).

    ``clock`` (unix seconds) is what publish validation calls "now"; default real time.
    ``background_export`` runs the export worker every ``export_interval_seconds``.
    """
    if context is None:
        if settings is None:
            raise ServerError("create_app needs settings or a context")
        context = ServerContext.open(settings, clock=clock)
    ctx = context
    configure_logging(ctx.settings.log_level)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        task = None
        if background_export and ctx.settings.export_interval_seconds > 0:
            task = asyncio.create_task(_export_loop(ctx))
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    app = FastAPI(
        title="phe-trace diagnosis-key server",
        version=__version__,
        description="GAEN-compatible publish API and signed exports (SPEC §11-12).",
        lifespan=lifespan,
    )
    app.state.keyserver = ctx
    app.include_router(publish.router)
    app.include_router(exports.router)
    app.include_router(ops.router)
    app.include_router(analytics_ingest.router)
    app.include_router(analytics_config.router)
    app.include_router(statistics.router)
    _install_error_handlers(app, ctx)
    app.add_middleware(KeyServerMiddleware, context=ctx)
    app.add_middleware(
        SingleQueryValues,
        refusal=lambda name: {"error": f"query parameter {name!r} repeated", "code": "bad_request"},
        exempt=lambda path: path.endswith("/v1/publish"),  # no query; its answers are padded
    )
    return app


async def _export_loop(ctx: ServerContext) -> None:
    from .exporter import run_export

    while True:
        try:
            await asyncio.to_thread(run_export, ctx, ctx.now())
        except Exception as exc:  # the loop must survive one failed run
            log_event("export_failed", logging.ERROR, exception=type(exc).__name__)
        await asyncio.sleep(ctx.settings.export_interval_seconds)
