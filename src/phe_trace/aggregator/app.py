"""``create_app(aggregator)``: the HTTP face of one aggregator (leader or helper).

Both roles: ``GET /v1/aggregator/config`` (role, X25519 public key, metrics).
Helper: ``POST /v1/aggregator/pull``, ``POST /v1/aggregator/prepare`` and
``POST /v1/aggregator/aggregate_share`` (leader-only, bearer token). Leader:
``GET /v1/aggregates`` (the published noisy aggregates with ε, noise and 95 % intervals,
and the pairs not released below the minimum batch) and
``POST /v1/aggregator/collect`` (bearer token; collect a day).
The routes are in ``routes.py``; here they are composed with the body limits, the peer
gate and the error answers, JSON ``{"error", "code"}`` as in every service
(``phe_trace.web.errors``): bad input is a 400, never a 500.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from phe_trace import __version__
from phe_trace.analytics.metrics import METRICS
from phe_trace.crypto.compare import bearer_matches
from phe_trace.logs import EventLog, configure_logging
from phe_trace.web.bodylimit import BodyLimit, send_json
from phe_trace.web.errors import (
    PAYLOAD_TOO_LARGE,
    UNAUTHORIZED,
    error_body,
    install_error_handlers,
    repeated_query,
)
from phe_trace.web.query import SingleQueryValues

from .errors import AggregatorError, BatchTooSmall
from .routes import MAX_PREP_SHARE_CHARS, MAX_PREPARE_ITEMS, MAX_REPORT_IDS, router
from .service import Aggregator

__all__ = ["collect_day", "create_app"]

#: The aggregator's structured log (``phe_trace.aggregator``, JSON lines).
LOGGER_NAME = "phe_trace.aggregator"
log_event = EventLog(LOGGER_NAME)

#: Request-body limits per path in bytes (AGG-33): what the largest valid request of the
#: endpoint needs, with 32-character report ids as the key server issues them.
BODY_LIMITS = {
    "/v1/aggregator/prepare": MAX_PREPARE_ITEMS * (64 + MAX_PREP_SHARE_CHARS + 40) + 1024,
    "/v1/aggregator/aggregate_share": MAX_REPORT_IDS * 35 + 1024,
}
#: Limit of every other path (a day and a metric name).
DEFAULT_BODY_LIMIT = 1024
#: Paths only the peer aggregator may call: refused 401 before their body is read.
PEER_PATHS = frozenset(
    {
        "/v1/aggregator/prepare",
        "/v1/aggregator/pull",
        "/v1/aggregator/aggregate_share",
        "/v1/aggregator/collect",
    }
)


def create_app(aggregator: Aggregator) -> FastAPI:
    """The app of ``aggregator``; a leader with ``collect_interval > 0`` collects by itself."""
    agg = aggregator
    settings = agg.settings
    configure_logging(LOGGER_NAME)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        task = None
        if settings.role == "leader" and settings.collect_interval > 0:
            task = asyncio.create_task(_collect_loop(agg))
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    app = FastAPI(
        title=f"phe-trace aggregator ({settings.role})", version=__version__, lifespan=lifespan
    )
    app.state.aggregator = agg
    app.include_router(router)
    install_error_handlers(app, refused=(AggregatorError,))
    app.add_middleware(_PeerGate, token=settings.peer_token.get_secret_value())
    app.add_middleware(SingleQueryValues, refusal=repeated_query)
    app.add_middleware(
        BodyLimit,
        limit_for=lambda path: BODY_LIMITS.get(path, DEFAULT_BODY_LIMIT),
        refusal=lambda limit: error_body(PAYLOAD_TOO_LARGE, f"body exceeds {limit} bytes"),
    )
    return app


class _PeerGate:
    """Refuses a peer endpoint's request without the peer token before reading its body."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] in PEER_PATHS:
            headers = dict(scope.get("headers") or [])
            given = headers.get(b"authorization")
            if not bearer_matches(None if given is None else given.decode("latin-1"), self.token):
                refusal = error_body(UNAUTHORIZED, "a valid peer token is required")
                await send_json(send, 401, refusal)
                return
        await self.app(scope, receive, send)


def collect_day(agg: Aggregator, day: int) -> int:
    """Collect every metric of ``day``; each failure is one log line, never raised.

    A batch still too small is ``collect_skipped`` (INFO, the usual answer on a quiet
    day); any other failure is ``collect_failed`` (WARNING for the aggregator's own
    errors, ERROR for anything else), naming the day, the metric and the error's code or
    class, never its message (SPEC AGG-40). Returns how many metrics were released.
    """
    released = 0
    for metric in METRICS:
        try:
            agg.collect(day, metric)
        except BatchTooSmall as exc:
            log_event("collect_skipped", day=day, metric=metric, code=exc.code)
        except AggregatorError as exc:
            log_event("collect_failed", logging.WARNING, day=day, metric=metric, code=exc.code)
        except Exception as exc:  # the loop must outlive a database or network failure
            log_event(
                "collect_failed",
                logging.ERROR,
                day=day,
                metric=metric,
                exception=type(exc).__name__,
            )
        else:
            released += 1
    return released


async def _collect_loop(agg: Aggregator) -> None:
    """Collect every metric of yesterday, then sleep; failures are logged, not fatal."""
    while True:
        day = int(time.time() // 86400) - 1
        await asyncio.to_thread(collect_day, agg, day)
        await asyncio.sleep(agg.settings.collect_interval)
