"""``create_app(settings)``: the key server as a FastAPI application (no import-time state).

Routers (one per file in ``routers/``) are composed here; each reads the process's
:class:`ServerContext` from ``app.state.keyserver`` (``deps.ContextDep``). Errors are
answered by :mod:`.refusals`: JSON with a stable ``code`` — a bad request is never a 500.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI

from phe_trace import __version__
from phe_trace.logs import configure_logging
from phe_trace.web.errors import repeated_query
from phe_trace.web.query import SingleQueryValues

from .context import Clock, ServerContext
from .errors import ServerError
from .logs import LOGGER_NAME, log_event
from .middleware import KeyServerMiddleware
from .refusals import install_refusals
from .routers import analytics_config, analytics_ingest, exports, ops, publish, statistics
from .settings import ServerSettings

__all__ = ["create_app"]


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
    configure_logging(LOGGER_NAME, ctx.settings.log_level)

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
    install_refusals(app)
    app.add_middleware(KeyServerMiddleware, context=ctx)
    app.add_middleware(
        SingleQueryValues,
        refusal=repeated_query,
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
