"""An ASGI app serving export files, for :func:`phe_trace.serving.serve` on loopback.

Serves ``files`` (path → bytes) under ``/v1/exports/``, honours ``Range`` with 206, and
has knobs for the failure cases: ``down`` (every request 503), ``fail`` (paths that
answer 503), ``answers`` (paths that first answer these statuses, one per request),
``cut`` (paths whose body is cut off after n bytes, once each).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


@dataclass
class ExportHost:
    files: dict[str, bytes] = field(default_factory=dict)
    down: bool = False
    fail: set[str] = field(default_factory=set)
    cut: dict[str, int] = field(default_factory=dict)
    answers: dict[str, list[int]] = field(default_factory=dict)
    requests: list[tuple[str, str | None]] = field(default_factory=list)
    url: str = ""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"].removeprefix("/v1/exports/")
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        self.requests.append((path, headers.get("range")))
        if self.down or path in self.fail:
            await _reply(send, 503, b"unavailable")
            return
        if self.answers.get(path):
            await _reply(send, self.answers[path].pop(0), b"not now")
            return
        data = self.files.get(path)
        if data is None:
            await _reply(send, 404, b"not found")
            return
        status, body = 200, data
        if "range" in headers:
            start = int(headers["range"].removeprefix("bytes=").split("-")[0])
            status, body = 206, data[start:]
        if path in self.cut:
            n = self.cut.pop(path)
            await send(
                {
                    "type": "http.response.start",
                    "status": status,
                    "headers": [(b"content-length", str(len(body)).encode())],
                }
            )
            await send({"type": "http.response.body", "body": body[:n], "more_body": True})
            raise RuntimeError("connection cut")  # uvicorn drops the connection
        await _reply(send, status, body)


async def _reply(send: Send, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
