"""``create_app(aggregator)``: the HTTP face of one aggregator (leader or helper).

Both roles: ``GET /v1/aggregator/config`` (role, X25519 public key, metrics).
Helper: ``POST /v1/aggregator/pull``, ``POST /v1/aggregator/prepare`` and
``POST /v1/aggregator/aggregate_share`` (leader-only, bearer token). Leader:
``GET /v1/aggregates`` (the published noisy aggregates with ε, noise and 95 % intervals,
and the pairs not released below the minimum batch) and
``POST /v1/aggregator/collect`` (bearer token; collect a day).
Errors are JSON ``{"error", "code"}``; bad input is a 400, never a 500.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import datetime as dt
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, BeforeValidator, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from phe_trace import __version__
from phe_trace.analytics.metrics import METRICS
from phe_trace.analytics.prio3 import DRAFT_VERSION
from phe_trace.crypto.compare import bearer_matches
from phe_trace.protocol.bodylimit import BodyLimit, send_json
from phe_trace.protocol.query import DIGITS, SingleQueryValues

from .errors import AggregatorError, BatchTooSmall
from .service import Aggregator

__all__ = ["create_app"]

MetricName = Literal["notified", "risk_level", "days_to_notification", "reported_positive"]


def _no_bool(value: object) -> object:
    """``true`` or ``"5"`` is not a day number (JSON Schema admits ``0.0``, not those)."""
    if isinstance(value, bool | str):
        raise ValueError("a day number must be an integer")
    return value


#: Days accepted: those that are calendar dates (through 9999-12-31, so every release can
#: name its day in ISO form), within the key server's analytics feed's range (so no day
#: the helper accepts is one the feed refuses, which would surface as the helper's 502).
DAY_LIMIT = (dt.date.max - dt.date(1970, 1, 1)).days + 1

#: A UTC day number (``unix_seconds // 86400``).
Day = Annotated[int, Field(ge=0, lt=DAY_LIMIT), BeforeValidator(_no_bool)]


#: Items in one prepare request (the leader sends chunks of 2,000).
MAX_PREPARE_ITEMS = 5000
#: Longest base64 prep share accepted (the largest metric's is 256 characters).
MAX_PREP_SHARE_CHARS = 1024
#: Report ids in one aggregate-share request.
MAX_REPORT_IDS = 1_000_000
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


#: Standard base64 in whole groups of four (what the schema documents and we decode).
_BASE64 = r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"


class PrepareItem(BaseModel):
    report_id: str = Field(max_length=64)
    prep_share: str = Field(max_length=MAX_PREP_SHARE_CHARS, pattern=_BASE64)


class PrepareIn(BaseModel):
    day: Day
    metric: MetricName
    items: list[PrepareItem] = Field(max_length=MAX_PREPARE_ITEMS)


class AggregateShareIn(BaseModel):
    day: Day
    metric: MetricName
    report_ids: list[Annotated[str, Field(max_length=64)]] = Field(max_length=MAX_REPORT_IDS)


class PullIn(BaseModel):
    day: Day
    metric: MetricName


class CollectIn(BaseModel):
    day: Day


class ErrorOut(BaseModel):
    """A refused request: message and stable code (AGG-35)."""

    error: str
    code: str


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries of the error statuses a route answers, all :class:`ErrorOut`."""
    meaning = {
        400: "Malformed request (bad_request).",
        401: "Peer token missing or wrong (unauthorized).",
        404: "This role does not serve the endpoint (not_found).",
        409: "Breaks the protocol or the minimum batch (protocol_violation, batch_too_small).",
        413: "Body over the endpoint's limit (payload_too_large).",
        502: "The key server or the peer failed (peer_error).",
    }
    return {s: {"model": ErrorOut, "description": meaning[s]} for s in statuses}


_PEER_ERRORS = (400, 401, 404, 409, 413)


def _b64(value: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise HTTPException(400, "not base64") from None


def create_app(aggregator: Aggregator) -> FastAPI:
    """The app of ``aggregator``; a leader with ``collect_interval > 0`` collects by itself."""
    agg = aggregator
    settings = agg.settings

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

    def peer(authorization: Annotated[str | None, Header()] = None) -> None:
        if not bearer_matches(authorization, settings.peer_token.get_secret_value()):
            raise HTTPException(401, "a valid peer token is required")

    def role(name: str) -> Any:
        def check() -> None:
            if settings.role != name:
                raise HTTPException(404, f"only the {name} serves this endpoint")

        return Depends(check)

    @app.get("/v1/aggregator/config", responses=_errors(413))
    def config() -> dict[str, Any]:
        return {
            "role": settings.role,
            "public_key": agg.public_key().hex(),
            "vdaf_draft_version": DRAFT_VERSION,
            "min_batch_size": settings.min_batch_size,
            "epsilon": settings.epsilon,
            "metrics": {m.name: {"id": m.metric_id, "length": m.length} for m in METRICS.values()},
        }

    @app.post(
        "/v1/aggregator/prepare",
        dependencies=[Depends(peer), role("helper")],
        responses=_errors(*_PEER_ERRORS),
    )
    def prepare(body: PrepareIn) -> dict[str, Any]:
        items = [(i.report_id, _b64(i.prep_share)) for i in body.items]
        results = agg.handle_prepare(body.day, body.metric, items)
        return {
            "results": [
                {
                    "report_id": rid,
                    "ok": ok,
                    "prep_msg": base64.b64encode(msg).decode() if msg else "",
                }
                for rid, ok, msg in results
            ]
        }

    @app.post(
        "/v1/aggregator/pull",
        dependencies=[Depends(peer), role("helper")],
        responses=_errors(*_PEER_ERRORS, 502),
    )
    def pull(body: PullIn) -> dict[str, int]:
        return {"stored": agg.pull(body.day, body.metric)}

    @app.post(
        "/v1/aggregator/aggregate_share",
        dependencies=[Depends(peer), role("helper")],
        responses=_errors(*_PEER_ERRORS),
    )
    def aggregate_share(body: AggregateShareIn) -> dict[str, str]:
        share = agg.handle_aggregate_share(body.day, body.metric, body.report_ids)
        return {"agg_share": base64.b64encode(share).decode()}

    @app.post(
        "/v1/aggregator/collect",
        dependencies=[Depends(peer), role("leader")],
        responses=_errors(*_PEER_ERRORS, 502),
    )
    def collect(body: CollectIn) -> dict[str, Any]:
        released, skipped = [], {}
        for metric in METRICS:
            try:
                released.append(agg.collect(body.day, metric).to_json())
            except BatchTooSmall as exc:
                skipped[metric] = str(exc)
        return {"released": released, "not_released": skipped}

    @app.get("/v1/aggregates", dependencies=[role("leader")], responses=_errors(400, 404, 413))
    def aggregates(
        day: Annotated[int | None, Query(ge=0, lt=DAY_LIMIT), DIGITS] = None,
    ) -> dict[str, Any]:
        return {
            "min_batch_size": settings.min_batch_size,
            "aggregates": [r.to_json() for r in agg.releases(day)],
            "not_released": [w.to_json() for w in agg.withheld(day)],
        }

    _install_errors(app)
    app.add_middleware(_PeerGate, token=settings.peer_token.get_secret_value())
    app.add_middleware(
        SingleQueryValues,
        refusal=lambda name: {"error": f"query parameter {name!r} repeated", "code": "bad_request"},
    )
    app.add_middleware(
        BodyLimit,
        limit_for=lambda path: BODY_LIMITS.get(path, DEFAULT_BODY_LIMIT),
        refusal=lambda limit: {"error": f"body exceeds {limit} bytes", "code": "payload_too_large"},
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
                refusal = {"error": "a valid peer token is required", "code": "unauthorized"}
                await send_json(send, 401, refusal)
                return
        await self.app(scope, receive, send)


def _install_errors(app: FastAPI) -> None:
    @app.exception_handler(AggregatorError)
    async def aggregator_error(_r: Request, exc: AggregatorError) -> JSONResponse:
        return JSONResponse({"error": str(exc), "code": exc.code}, status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def invalid(_r: Request, exc: RequestValidationError) -> JSONResponse:
        fields = sorted({".".join(str(p) for p in e.get("loc", ())[1:]) for e in exc.errors()})
        return JSONResponse(
            {"error": "request is malformed: " + ", ".join(fields)[:300], "code": "bad_request"},
            status_code=400,
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_r: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {
            401: "unauthorized",
            404: "not_found",
            405: "method_not_allowed",
            413: "payload_too_large",
        }
        return JSONResponse(
            {"error": str(exc.detail), "code": codes.get(exc.status_code, "bad_request")},
            status_code=exc.status_code,
            headers=dict(exc.headers or {}),
        )


async def _collect_loop(agg: Aggregator) -> None:
    """Collect every metric of yesterday, then sleep; failures are logged, not fatal."""
    while True:
        day = int(time.time() // 86400) - 1
        for metric in METRICS:
            with contextlib.suppress(AggregatorError):
                await asyncio.to_thread(agg.collect, day, metric)
        await asyncio.sleep(agg.settings.collect_interval)
