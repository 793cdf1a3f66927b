"""HTTP downloads for sync: retries with exponential backoff, resumed with ``Range``.

``protocol_spec/SPEC.md`` AGENT-13. A transfer cut off mid-body is resumed from the
byte it stopped at when the server answers ``206``; otherwise it restarts. Server
errors (5xx, 408, 429) and connection failures are retried ``retries`` times with
delays ``backoff_s × 2^k``; other 4xx answers fail at once (404 as
:class:`ExportNotFoundError`), and so does every other failure of the HTTP client (a
body that does not decode, a redirect loop, a URL it refuses) — as :class:`SyncError`,
never as the client's own exception.

Every download has a deadline for the whole request, retries and backoff included
(``deadline_s``), so a server trickling a byte a second cannot hold a check, and a size
cap (``max_bytes``), checked against ``Content-Length`` before the body is read and
against the decoded body as it arrives.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable

import httpx

from .errors import (
    DownloadError,
    DownloadTooLargeError,
    ExportNotFoundError,
    ServerUnavailableError,
)

__all__ = ["MAX_DOWNLOAD_BYTES", "MAX_INDEX_BYTES", "download"]

#: Largest file the agent accepts (an export of 750,000 keys is ~25 MB).
MAX_DOWNLOAD_BYTES = 64 * 1024 * 1024
#: Largest index.txt the agent accepts (10,000 entries of ~60 characters is ~600 kB).
MAX_INDEX_BYTES = 4 * 1024 * 1024
_RETRY_STATUS = {408, 429, 500, 502, 503, 504}


def tls_problem(exc: BaseException) -> str | None:
    """A one-line name for a TLS failure behind an HTTP client error, else None."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            reason = seen.verify_message or seen.reason or "verification failed"
            return (
                f"TLS: the server's certificate is not trusted ({reason}); install the "
                "certificate authority that signed it, or fix the server's certificate"
            )
        if isinstance(seen, ssl.SSLError):
            return f"TLS: handshake failed ({seen.reason or seen})"
        seen = seen.__cause__ or seen.__context__
    text = str(exc)
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return "TLS: the server's certificate is not trusted (CERTIFICATE_VERIFY_FAILED)"
    return None


class _DeadlineError(Exception):
    """The whole-request deadline passed while the body was arriving."""


def download(
    client: httpx.Client,
    url: str,
    *,
    retries: int,
    backoff_s: float,
    deadline_s: float = 300.0,
    max_bytes: int = MAX_DOWNLOAD_BYTES,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> bytes:
    """GET ``url`` completely within ``deadline_s`` seconds and ``max_bytes`` bytes.

    Raises :class:`ServerUnavailableError` when the server keeps failing or the deadline
    passes, :class:`ExportNotFoundError` on 404 and :class:`DownloadError` (a
    :class:`SyncError`) on anything else.
    """
    deadline = clock() + deadline_s
    buf = bytearray()
    last_error = "no attempt"
    for attempt in range(retries + 1):
        if attempt:
            pause = backoff_s * 2 ** (attempt - 1)
            if clock() + pause >= deadline:
                break
            sleep(pause)
        try:
            return _attempt(client, url, buf, deadline, max_bytes, clock)
        except _RetryableStatusError as exc:
            last_error = f"HTTP {exc.status}"
        except _DeadlineError:
            last_error = f"not complete within {deadline_s:g} s"
            break
        except httpx.TimeoutException as exc:
            last_error = type(exc).__name__
            if clock() >= deadline:
                last_error = f"not complete within {deadline_s:g} s"
                break
        except httpx.TransportError as exc:
            tls = tls_problem(exc)
            if tls is not None:  # a certificate does not become trusted by retrying
                raise DownloadError(f"{_short(url)}: {tls}") from None
            last_error = type(exc).__name__
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            # DecodingError, TooManyRedirects, a URL the client refuses: retrying
            # cannot help; the file fails this check and is tried again at the next.
            why = f"{type(exc).__name__}: {_first_line(exc)}"
            raise DownloadError(f"{_short(url)}: {why}") from None
    raise ServerUnavailableError(
        f"{_short(url)}: the server kept failing ({last_error}) after {attempt + 1} attempt(s)"
    )


class _RetryableStatusError(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


def _attempt(
    client: httpx.Client,
    url: str,
    buf: bytearray,
    deadline: float,
    max_bytes: int,
    clock: Callable[[], float],
) -> bytes:
    """One GET, appending to ``buf`` (a 206 continues it, anything else restarts it)."""
    headers = {"Range": f"bytes={len(buf)}-"} if buf else {}
    remaining = deadline - clock()
    if remaining <= 0:
        raise _DeadlineError
    timeout = client.timeout
    per_read = min(remaining, timeout.read if timeout.read is not None else remaining)
    with client.stream(
        "GET", url, headers=headers, timeout=httpx.Timeout(per_read, connect=min(remaining, 10.0))
    ) as response:
        status = response.status_code
        if status in _RETRY_STATUS:
            raise _RetryableStatusError(status)
        if status == 404:
            raise ExportNotFoundError(f"{_short(url)}: HTTP 404")
        if not 200 <= status < 300:
            raise DownloadError(f"{_short(url)}: HTTP {status}")
        if status != 206:
            buf.clear()  # the server restarted the body
        _check_length(response, url, len(buf), max_bytes)
        for chunk in response.iter_bytes():
            buf.extend(chunk)
            if len(buf) > max_bytes:
                raise DownloadTooLargeError(f"{_short(url)} is larger than {max_bytes} bytes")
            if clock() > deadline:
                raise _DeadlineError
        return bytes(buf)


def _check_length(response: httpx.Response, url: str, have: int, max_bytes: int) -> None:
    """Refuse a body announced larger than ``max_bytes`` before reading any of it."""
    announced = response.headers.get("content-length", "")
    if announced.isdigit() and have + int(announced) > max_bytes:
        raise DownloadTooLargeError(f"{_short(url)} is larger than {max_bytes} bytes")


def _first_line(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return text[:200]


def _short(url: str) -> str:
    """The URL without query string, cut to 200 characters, for messages."""
    short = url.split("?", 1)[0]
    return short if len(short) <= 200 else short[:200] + "…"
