"""The gateway's HTTP routes (SPEC §17.2): upload, download, audit, callbacks, health.

Each reads the :class:`~.service.Gateway` from ``app.state.gateway`` (:data:`GatewayDep`)
and the calling member from the forwarded client-certificate headers (:data:`MemberDep`).
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from phe_trace.protocol import efgs
from phe_trace.protocol.errors import BatchFormatError

from . import callbacks
from .errors import BatchRejectedError, BatchTooLargeError, UnsupportedMediaError
from .service import Gateway
from .trust import Member

__all__ = ["MAX_BODY_BYTES", "TOO_LARGE", "GatewayDep", "MemberDep", "router"]

#: Largest upload body read (5,000 keys of the largest legal size fit several times).
MAX_BODY_BYTES = 8 * 1024 * 1024
TOO_LARGE = f"the body exceeds {MAX_BODY_BYTES} bytes"


async def get_gateway(request: Request) -> Gateway:
    """The gateway of the app serving ``request``."""
    gw: Gateway = request.app.state.gateway
    return gw


GatewayDep = Annotated[Gateway, Depends(get_gateway)]


async def get_member(request: Request, gw: GatewayDep) -> Member:
    """The member behind the forwarded client-certificate headers (else 403)."""
    return gw.authenticate(
        request.headers.get("x-ssl-client-sha256"), request.headers.get("x-ssl-client-dn")
    )


MemberDep = Annotated[Member, Depends(get_member)]


def _media(value: str | None) -> str:
    """``protobuf`` or ``json`` for a Content-Type / Accept value of version 1.0."""
    text = (value or "").replace(" ", "").lower()
    for kind in ("protobuf", "json"):
        if text.startswith(f"application/{kind}") and "version=1.0" in text:
            return kind
    raise UnsupportedMediaError("use application/protobuf or application/json; version=1.0")


async def _body(request: Request) -> bytes:
    """The upload's body. One over :data:`MAX_BODY_BYTES` is ``batch_too_large`` (413): the
    app's body limit refuses a declared length unread and stops a streamed body at the
    limit."""
    try:
        return await request.body()
    except HTTPException as exc:
        if exc.status_code == 413:
            raise BatchTooLargeError(TOO_LARGE) from None
        raise


def _decode(kind: str, body: bytes) -> list[efgs.BatchKey]:
    try:
        return efgs.decode_protobuf(body) if kind == "protobuf" else efgs.decode_json(body)
    except BatchFormatError as exc:
        raise BatchRejectedError(str(exc)) from None


router = APIRouter()


@router.post("/diagnosiskeys/upload")
async def upload(request: Request, gw: GatewayDep, member: MemberDep) -> Response:
    kind = _media(request.headers.get("content-type"))
    body = await _body(request)
    batch = _decode(kind, body)
    tag = request.headers.get("batchtag")
    outcome = await asyncio.to_thread(
        gw.upload, member, tag, request.headers.get("batchsignature"), batch
    )
    if outcome.status == 207:
        return JSONResponse(outcome.by_status, status_code=207)
    return Response(status_code=201, headers={"batchTag": tag or ""})


@router.get("/diagnosiskeys/download/{day}")
async def download(day: str, request: Request, gw: GatewayDep, member: MemberDep) -> Response:
    accept = request.headers.get("accept") or efgs.CONTENT_TYPE_PROTOBUF
    kind = "json" if accept.startswith("application/json") else _media(accept)
    page = await asyncio.to_thread(gw.download, member, day, request.headers.get("batchtag"))
    if kind == "json":
        body, media = efgs.encode_json(page.keys), efgs.CONTENT_TYPE_JSON
    else:
        body, media = efgs.encode_protobuf(page.keys), efgs.CONTENT_TYPE_PROTOBUF
    headers = {"batchTag": page.batch_tag, "nextBatchTag": page.next_batch_tag or "null"}
    return Response(body, media_type=media, headers=headers)


@router.get("/diagnosiskeys/audit/download/{day}/{tag}")
async def audit(day: str, tag: str, gw: GatewayDep, member: MemberDep) -> JSONResponse:
    return JSONResponse(await asyncio.to_thread(gw.audit, day, tag))


@router.get("/diagnosiskeys/callback")
async def callback_list(gw: GatewayDep, member: MemberDep) -> JSONResponse:
    return JSONResponse(callbacks.list_callbacks(gw.engine, member.country))


@router.put("/diagnosiskeys/callback/{callback_id}")
async def callback_put(
    callback_id: str, request: Request, gw: GatewayDep, member: MemberDep
) -> Response:
    url = request.query_params.get("url") or ""
    await asyncio.to_thread(
        callbacks.put_callback, gw.engine, gw.settings, member.country, callback_id, url
    )
    return Response(status_code=200)


@router.delete("/diagnosiskeys/callback/{callback_id}")
async def callback_delete(callback_id: str, gw: GatewayDep, member: MemberDep) -> Response:
    callbacks.delete_callback(gw.engine, member.country, callback_id)
    return Response(status_code=200)


@router.get("/healthz")
async def healthz() -> JSONResponse:
    return JSONResponse({"status": "ok"})
