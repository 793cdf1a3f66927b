"""``create_app(settings)``: the federation gateway as a FastAPI application (SPEC §17.2).

Paths, headers and statuses are those of the EU Federation Gateway Service (the routes:
``routes.py``); refusals answer ``{"error": message, "code": code}`` like every phe-trace
service (``phe_trace.web.errors``), never a 500.
Members authenticate by the client-certificate headers a TLS-terminating proxy forwards
(``X-SSL-Client-SHA256``, ``X-SSL-Client-DN``; SPEC FED-5).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable

import httpx
from fastapi import FastAPI

from phe_trace import __version__
from phe_trace.clock import system_clock
from phe_trace.logs import EventLog, configure_logging
from phe_trace.storage import init_lock
from phe_trace.web.bodylimit import BodyLimit
from phe_trace.web.errors import error_body, install_error_handlers

from . import callbacks
from .database import create_engine_for, migrate
from .errors import BatchTooLargeError, GatewayRequestError
from .routes import MAX_BODY_BYTES, TOO_LARGE, router
from .service import Gateway
from .settings import GatewaySettings
from .trust import TrustAnchor

__all__ = ["create_app", "open_gateway"]

#: The gateway's structured log (``phe_trace.gateway``, JSON lines).
LOGGER_NAME = "phe_trace.gateway"
log_event = EventLog(LOGGER_NAME)


def _unexpected(exc: Exception) -> None:
    log_event("internal_error", logging.ERROR, exception=type(exc).__name__)


def open_gateway(settings: GatewaySettings, clock: Callable[[], float] | None = None) -> Gateway:
    """Open the database (migrated) and the trust anchor."""
    engine = create_engine_for(settings.database_url)
    with init_lock(engine):
        migrate(engine)
    anchor = TrustAnchor(settings.read_trust_anchor())
    return Gateway(settings, engine, anchor, clock or system_clock)


def run_scheduled(gw: Gateway, client: httpx.Client) -> list[str]:
    """One run of the scheduled work: batching, callbacks, retention (SPEC FED-8, FED-10)."""
    tags = gw.form_batches()
    callbacks.deliver_callbacks(gw.engine, gw.settings, client)
    gw.apply_retention()
    return tags


async def _schedule_loop(gw: Gateway) -> None:
    with httpx.Client(timeout=gw.settings.callback_timeout_seconds) as client:
        while True:
            try:
                await asyncio.to_thread(run_scheduled, gw, client)
            except Exception as exc:  # the loop must survive one failed run
                log_event("schedule_failed", logging.ERROR, exception=type(exc).__name__)
            await asyncio.sleep(gw.settings.batching_interval_seconds)


def create_app(
    settings: GatewaySettings | None = None,
    *,
    gateway: Gateway | None = None,
    clock: Callable[[], float] | None = None,
    scheduled: bool = False,
) -> FastAPI:
    """The gateway app for ``settings`` (or an opened ``gateway``); ``scheduled`` runs the
    batching, callback and retention work every ``batching_interval_seconds``."""
    configure_logging(LOGGER_NAME)
    if gateway is None:
        if settings is None:
            raise ValueError("create_app needs settings or a gateway")
        gateway = open_gateway(settings, clock)
    gw = gateway

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        task = None
        if scheduled and gw.settings.batching_interval_seconds > 0:
            task = asyncio.create_task(_schedule_loop(gw))
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    app = FastAPI(
        title="phe-trace federation gateway",
        version=__version__,
        description="EFGS-compatible federation of key servers (SPEC §17).",
        lifespan=lifespan,
    )
    app.state.gateway = gw
    app.include_router(router)
    install_error_handlers(app, refused=(GatewayRequestError,), unexpected=_unexpected)
    app.add_middleware(
        BodyLimit,
        limit_for=lambda _path: MAX_BODY_BYTES,
        refusal=lambda _limit: error_body(BatchTooLargeError.code, TOO_LARGE),
    )
    return app
