"""HTTP downloads for sync: retries with exponential backoff, resumed with ``Range``.

``protocol_spec/SPEC.md`` AGENT-13. A transfer cut off mid-body is resumed from the
byte it stopped at when the server answers ``206``; otherwise it restarts. Server
errors (5xx, 408, 429) and connection failures are retried ``retries`` times with
delays ``backoff_s × 2^k``; other 4xx answers fail at once (404 as
:class:`ExportNotFoundError`).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx

from .errors import ExportNotFoundError, ServerUnavailableError, SyncError

__all__ = ["MAX_DOWNLOAD_BYTES", "download"]

#: Largest file the agent accepts (an export of 750,000 keys is ~25 MB).
MAX_DOWNLOAD_BYTES = 64 * 1024 * 1024
_RETRY_STATUS = {408, 429, 500, 502, 503, 504}


def download(
    client: httpx.Client,
    url: str,
    *,
    retries: int,
    backoff_s: float,
    sleep: Callable[[float], None] = time.sleep,
) -> bytes:
    """GET ``url`` completely; raise :class:`ServerUnavailableError` when it keeps failing."""
    buf = bytearray()
    last_error = "no attempt"
    for attempt in range(retries + 1):
        if attempt:
            sleep(backoff_s * 2 ** (attempt - 1))
        headers = {"Range": f"bytes={len(buf)}-"} if buf else {}
        try:
            with client.stream("GET", url, headers=headers) as response:
                if response.status_code in _RETRY_STATUS:
                    last_error = f"HTTP {response.status_code}"
                    continue
                if response.status_code == 404:
                    raise ExportNotFoundError(f"{_short(url)}: HTTP 404")
                if response.status_code >= 400:
                    raise SyncError(f"{_short(url)}: HTTP {response.status_code}")
                if response.status_code != 206:
                    buf.clear()  # the server restarted the body
                for chunk in response.iter_bytes():
                    buf.extend(chunk)
                    if len(buf) > MAX_DOWNLOAD_BYTES:
                        raise SyncError(f"{_short(url)} is larger than {MAX_DOWNLOAD_BYTES} bytes")
                return bytes(buf)
        except httpx.TransportError as exc:
            last_error = type(exc).__name__
    raise ServerUnavailableError(
        f"{_short(url)}: the server kept failing ({last_error}) after {retries + 1} attempts"
    )


def _short(url: str) -> str:
    """The URL without query string, for messages."""
    return url.split("?", 1)[0]
