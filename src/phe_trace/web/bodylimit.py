"""Request-body limits of the HTTP services, enforced before the app reads a byte.

:class:`BodyLimit` wraps an ASGI app: a request whose ``Content-Length`` exceeds the limit
of its path is answered 413 at once, without reading the body or running the app (so no
authentication or parsing work is done for it); a body without a declared length is
counted while the app reads it and refused with a 413 ``HTTPException`` as soon as it
passes the limit, so a process never holds more than the limit of one request
(SPEC AGG-33).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["BodyLimit", "send_json"]


async def send_json(
    send: Send,
    status: int,
    payload: Mapping[str, Any],
    headers: tuple[tuple[bytes, bytes], ...] = (),
) -> None:
    """Send one complete JSON response (used where the app itself is not run)."""
    body = json.dumps(payload, separators=(",", ":")).encode()
    start = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": [*start, *headers]})
    await send({"type": "http.response.body", "body": body})


class BodyLimit:
    """Refuses a body larger than ``limit_for(path)`` bytes with 413 and ``refusal(limit)``."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        limit_for: Callable[[str], int],
        refusal: Callable[[int], Mapping[str, Any]],
    ) -> None:
        self.app = app
        self.limit_for = limit_for
        self.refusal = refusal

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            try:
                too_big = int(declared) > limit
            except ValueError:
                too_big = True
            if too_big:
                await send_json(send, 413, self.refusal(limit))
                return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise HTTPException(413, f"body exceeds {limit} bytes")
            return message

        await self.app(scope, limited_receive, send)
