"""ASGI middleware of the key server: body size limit (413) and chaff interception."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from phe_trace.protocol.publish import ERROR_PAYLOAD_TOO_LARGE
from phe_trace.web.bodylimit import BodyLimit, send_json

from .chaff import CHAFF_HEADER, chaff_response
from .context import ServerContext
from .publish import padding_for

__all__ = ["KeyServerMiddleware"]


class KeyServerMiddleware:
    """Refuses bodies over ``max_body_bytes`` with 413 (:class:`BodyLimit`, in the publish
    answer's shape); answers ``X-Chaff`` publishes without running the app."""

    def __init__(self, app: ASGIApp, context: ServerContext) -> None:
        self.app = app
        self.ctx = context
        self._limited = BodyLimit(
            self._route,
            limit_for=lambda _path: context.settings.max_body_bytes,
            refusal=lambda _limit: self._too_large(),
        )

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
        await self._limited(scope, receive, send)

    async def _route(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Behind the limit: a chaff publish is answered here, everything else by the app."""
        if scope["type"] == "http" and scope["method"] == "POST":
            headers = dict(scope.get("headers") or [])
            is_chaff = bool(headers.get(CHAFF_HEADER.encode(), b"").strip())
            if is_chaff and scope["path"].endswith("/v1/publish"):
                await self._chaff(receive, send)
                return
        await self.app(scope, receive, send)

    async def _chaff(self, receive: Receive, send: Send) -> None:
        """Read the chaff body (through the limit), count it and answer like a publish."""
        body = bytearray()
        try:
            while True:
                message = await receive()
                body += message.get("body", b"")
                if not message.get("more_body"):
                    break
        except HTTPException:  # past the limit: the same 413 as a real publish gets
            await send_json(send, 413, self._too_large())
            return
        self.ctx.metrics.chaff.inc()
        answer = chaff_response(bytes(body), self.ctx.revision, padding_for(self.ctx))
        await asyncio.sleep(self.ctx.latency.delay(self.ctx.settings.chaff_max_delay_ms / 1000))
        await send_json(send, 200, answer.to_json_dict())
