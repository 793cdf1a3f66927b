"""ASGI middleware of the key server: body size limit (413) and chaff interception."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from phe_trace.protocol.publish import ERROR_PAYLOAD_TOO_LARGE
from phe_trace.web.bodylimit import send_json

from .chaff import CHAFF_HEADER, chaff_response
from .context import ServerContext
from .publish import padding_for

__all__ = ["KeyServerMiddleware"]


class KeyServerMiddleware:
    """Refuses bodies over ``max_body_bytes`` with 413; answers ``X-Chaff`` publishes."""

    def __init__(self, app: ASGIApp, context: ServerContext) -> None:
        self.app = app
        self.ctx = context

    def _too_large(self) -> dict[str, Any]:
        return {
            "revisionToken": "",
            "insertedExposures": 0,
            "error": f"body exceeds {self.ctx.settings.max_body_bytes} bytes",
            "code": ERROR_PAYLOAD_TOO_LARGE,
            "padding": padding_for(self.ctx),
            "warnings": [],
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.ctx.settings.max_body_bytes
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None:
            try:
                too_big = int(declared) > limit
            except ValueError:
                too_big = True
            if too_big:
                await send_json(send, 413, self._too_large())
                return
        is_chaff = bool(headers.get(CHAFF_HEADER.encode(), b"").strip())
        if is_chaff and scope["method"] == "POST" and scope["path"].endswith("/v1/publish"):
            await self._chaff(receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise HTTPException(413, "body exceeds the size limit")
            return message

        await self.app(scope, limited_receive, send)

    async def _chaff(self, receive: Receive, send: Send) -> None:
        body, limit = b"", self.ctx.settings.max_body_bytes
        while True:
            message = await receive()
            body += message.get("body", b"")
            if len(body) > limit:
                await send_json(send, 413, self._too_large())
                return
            if not message.get("more_body"):
                break
        self.ctx.metrics.chaff.inc()
        answer = chaff_response(body, self.ctx.revision, padding_for(self.ctx))
        await asyncio.sleep(self.ctx.latency.delay(self.ctx.settings.chaff_max_delay_ms / 1000))
        await send_json(send, 200, answer.to_json_dict())
