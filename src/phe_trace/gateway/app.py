"""``create_app(settings)``: the federation gateway as a FastAPI application (SPEC §17.2).

Paths, headers and statuses are those of the EU Federation Gateway Service; refusals
answer ``{"error": message, "code": code}`` like every phe-trace service, never a 500.
Members authenticate by the client-certificate headers a TLS-terminating proxy forwards
(``X-SSL-Client-SHA256``, ``X-SSL-Client-DN``; SPEC FED-5).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from phe_trace import __version__
from phe_trace.protocol import efgs
from phe_trace.protocol.errors import BatchFormatError

from . import callbacks
from .database import create_engine_for, migrate
from .errors import (
    BatchRejectedError,
    BatchTooLargeError,
    GatewayRequestError,
    UnsupportedMediaError,
)
from .service import Gateway
from .settings import GatewaySettings
from .trust import Member, TrustAnchor

__all__ = ["create_app", "open_gateway"]

_log = logging.getLogger("phe_trace.gateway")
#: Largest upload body read (5,000 keys of the largest legal size fit several times).
MAX_BODY_BYTES = 8 * 1024 * 1024
_HTTP_CODES = {404: "not_found", 405: "method_not_allowed"}


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": message, "code": code}, status_code=status)


def open_gateway(settings: GatewaySettings, clock: Callable[[], float] | None = None) -> Gateway:
    """Open the database (migrated) and the trust anchor."""
    engine = create_engine_for(settings.database_url)
    migrate(engine)
    anchor = TrustAnchor(settings.read_trust_anchor())
    return Gateway(settings, engine, anchor, clock or time.time)


def _member(request: Request) -> Member:
    gw: Gateway = request.app.state.gateway
    return gw.authenticate(
        request.headers.get("x-ssl-client-sha256"), request.headers.get("x-ssl-client-dn")
    )


def _media(value: str | None) -> str:
    """``protobuf`` or ``json`` for a Content-Type / Accept value of version 1.0."""
    text = (value or "").replace(" ", "").lower()
    for kind in ("protobuf", "json"):
        if text.startswith(f"application/{kind}") and "version=1.0" in text:
            return kind
    raise UnsupportedMediaError("use application/protobuf or application/json; version=1.0")


async def _body(request: Request) -> bytes:
    data = bytearray()
    async for chunk in request.stream():
        data.extend(chunk)
        if len(data) > MAX_BODY_BYTES:
            raise BatchTooLargeError("the body is too large")
    return bytes(data)


def _decode(kind: str, body: bytes) -> list[efgs.BatchKey]:
    try:
        return efgs.decode_protobuf(body) if kind == "protobuf" else efgs.decode_json(body)
    except BatchFormatError as exc:
        raise BatchRejectedError(str(exc)) from None


def _install_routes(app: FastAPI) -> None:
    @app.post("/diagnosiskeys/upload")
    async def upload(request: Request) -> Response:
        member = _member(request)
        kind = _media(request.headers.get("content-type"))
        body = await _body(request)
        batch = _decode(kind, body)
        gw: Gateway = request.app.state.gateway
        tag = request.headers.get("batchtag")
        outcome = await asyncio.to_thread(
            gw.upload, member, tag, request.headers.get("batchsignature"), batch
        )
        if outcome.status == 207:
            return JSONResponse(outcome.by_status, status_code=207)
        return Response(status_code=201, headers={"batchTag": tag or ""})

    @app.get("/diagnosiskeys/download/{day}")
    async def download(day: str, request: Request) -> Response:
        member = _member(request)
        accept = request.headers.get("accept") or efgs.CONTENT_TYPE_PROTOBUF
        kind = "json" if accept.startswith("application/json") else _media(accept)
        gw: Gateway = request.app.state.gateway
        page = await asyncio.to_thread(gw.download, member, day, request.headers.get("batchtag"))
        if kind == "json":
            body, media = efgs.encode_json(page.keys), efgs.CONTENT_TYPE_JSON
        else:
            body, media = efgs.encode_protobuf(page.keys), efgs.CONTENT_TYPE_PROTOBUF
        headers = {"batchTag": page.batch_tag, "nextBatchTag": page.next_batch_tag or "null"}
        return Response(body, media_type=media, headers=headers)

    @app.get("/diagnosiskeys/audit/download/{day}/{tag}")
    async def audit(day: str, tag: str, request: Request) -> JSONResponse:
        _member(request)
        gw: Gateway = request.app.state.gateway
        return JSONResponse(await asyncio.to_thread(gw.audit, day, tag))

    @app.get("/diagnosiskeys/callback")
    async def callback_list(request: Request) -> JSONResponse:
        member = _member(request)
        gw: Gateway = request.app.state.gateway
        return JSONResponse(callbacks.list_callbacks(gw.engine, member.country))

    @app.put("/diagnosiskeys/callback/{callback_id}")
    async def callback_put(callback_id: str, request: Request) -> Response:
        member = _member(request)
        gw: Gateway = request.app.state.gateway
        url = request.query_params.get("url") or ""
        await asyncio.to_thread(
            callbacks.put_callback, gw.engine, gw.settings, member.country, callback_id, url
        )
        return Response(status_code=200)

    @app.delete("/diagnosiskeys/callback/{callback_id}")
    async def callback_delete(callback_id: str, request: Request) -> Response:
        member = _member(request)
        gw: Gateway = request.app.state.gateway
        callbacks.delete_callback(gw.engine, member.country, callback_id)
        return Response(status_code=200)

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        return JSONResponse({"status": "ok"})


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(GatewayRequestError)
    async def refused(_request: Request, exc: GatewayRequestError) -> JSONResponse:
        return _error(exc.status, exc.code, str(exc))

    @app.exception_handler(HTTPException)
    async def http_error(_request: Request, exc: HTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "bad_request")
        return _error(exc.status_code, code, str(exc.detail))

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, exc: Exception) -> JSONResponse:
        _log.error(json.dumps({"event": "internal_error", "exception": type(exc).__name__}))
        return _error(500, "internal_error", "internal error")


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
                _log.error(
                    json.dumps({"event": "schedule_failed", "exception": type(exc).__name__})
                )
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
    _install_routes(app)
    _install_error_handlers(app)
    return app
