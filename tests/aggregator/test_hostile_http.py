"""Hostile HTTP against an aggregator and the ingestion router: 4xx, never 5xx (AGG-32, AGG-33).

Real uvicorn servers on loopback; oversized bodies are streamed over a raw socket so that
the test can count how much of the body the server took before refusing it.
"""

from __future__ import annotations

import select
import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from nacl.public import PrivateKey

from phe_trace.aggregator import Aggregator, AggregatorSettings, create_app
from phe_trace.aggregator.app import BODY_LIMITS
from phe_trace.server.analytics_ingest import IngestStore
from phe_trace.server.routers import analytics_ingest
from phe_trace.server.storage import migrate
from phe_trace.serving import serve

TOKEN = "peer-token-0123456789abcdef"
PREPARE = "/v1/aggregator/prepare"


@pytest.fixture
def helper_url(tmp_path: Path) -> Iterator[str]:
    settings = AggregatorSettings(
        role="helper",
        database_url=f"sqlite:///{tmp_path / 'helper.sqlite3'}",
        private_key=bytes(PrivateKey.generate()).hex(),  # type: ignore[arg-type]
        verify_key=bytes(range(32)).hex(),  # type: ignore[arg-type]
        peer_token=TOKEN,  # type: ignore[arg-type]
        ingest_url="http://127.0.0.1:9",
    )
    with serve(create_app(Aggregator(settings))) as url:
        yield url


@pytest.mark.parametrize("header", ["Bearer é", "Bearer \u00ff" + TOKEN, "é", "Bearer"])
def test_non_ascii_peer_token_is_401(helper_url: str, header: str) -> None:
    """AGG-32: a bearer token with non-ASCII characters is a 401, not a TypeError 500."""
    body = {"day": 20000, "metric": "notified", "items": []}
    r = httpx.post(f"{helper_url}{PREPARE}", json=body, headers={"Authorization": header.encode()})
    assert r.status_code == 401, r.text
    assert r.json()["code"] == "unauthorized"


def test_non_ascii_fetch_token_is_401(tmp_path: Path) -> None:
    """AGG-32: the same for the key server's analytics fetch token, also a UTF-8 one."""
    app = FastAPI()
    app.include_router(analytics_ingest.router)
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'ingest.sqlite3'}")
    migrate(engine)  # the key server's tables, the sealed reports' among them
    app.state.analytics_ingest = IngestStore(engine, fetch_token="tøken-0123456789")
    query = {"role": "leader", "day": "20000", "metric": "notified"}
    with serve(app) as url:
        wrong = httpx.get(
            f"{url}/v1/analytics/shares",
            params=query,
            headers={"Authorization": "Bearer é".encode()},
        )
        right = httpx.get(
            f"{url}/v1/analytics/shares",
            params=query,
            headers={"Authorization": "Bearer tøken-0123456789".encode()},
        )
    assert wrong.status_code == 401, wrong.text
    assert right.status_code == 200, right.text


def _connect(url: str) -> socket.socket:
    parts = urlsplit(url)
    return socket.create_connection((parts.hostname or "", parts.port or 80), timeout=10)


def _response(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def _stream(url: str, path: str, headers: str, total: int) -> tuple[int, bytes]:
    """POST ``total`` bytes chunked; (bytes the server took, status line and headers)."""
    chunk = b"[" + b"0," * 32767 + b"0"  # 64 KiB of a JSON array
    frame = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    sent = 0
    with _connect(url) as sock:
        head = f"POST {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n{headers}\r\n"
        sock.sendall(head.encode())
        sock.setblocking(False)
        while sent < total:
            readable, writable, _ = select.select([sock], [sock], [], 10)
            if readable:
                break
            if not writable:
                raise AssertionError("the server neither reads nor answers")
            try:
                sent += sock.send(frame)
            except (BlockingIOError, InterruptedError):
                continue
            except (BrokenPipeError, ConnectionResetError):
                break
        sock.setblocking(True)
        try:
            answer = _response(sock)
        except ConnectionResetError:
            answer = b""
    return sent, answer


def test_streamed_oversized_body_is_refused_after_the_limit(helper_url: str) -> None:
    """AGG-33: a 200 MB chunked body is cut off at the endpoint's limit with a 413."""
    total = 200 * 2**20
    auth = f"Authorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n"
    sent, answer = _stream(helper_url, PREPARE, auth, total)
    # What the server took is its limit plus what the loopback socket buffers hold.
    assert sent < BODY_LIMITS[PREPARE] + 16 * 2**20 < total
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]


def test_unauthenticated_streamed_body_is_refused_unread(helper_url: str) -> None:
    """AGG-33: without the peer token the body is not read at all: 401 at once."""
    sent, answer = _stream(helper_url, PREPARE, "Authorization: Bearer wrong\r\n", 64 * 2**20)
    assert answer.startswith(b"HTTP/1.1 401"), answer[:200]
    assert sent < 16 * 2**20


@pytest.mark.parametrize(
    "path", [PREPARE, "/v1/aggregator/pull", "/v1/aggregator/aggregate_share", "/v1/aggregates"]
)
def test_declared_oversized_body_is_413_before_anything(helper_url: str, path: str) -> None:
    """AGG-33: a Content-Length over the path's limit is answered before a byte is read."""
    with _connect(helper_url) as sock:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 300000000\r\n\r\n".encode()
        )
        answer = _response(sock)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b'"code":"payload_too_large"' in answer or b"content-length" in answer.lower()


def test_a_valid_prepare_still_passes(helper_url: str) -> None:
    """The limits leave room for the largest valid request (an empty prepare here)."""
    r = httpx.post(
        f"{helper_url}{PREPARE}",
        json={"day": 20000, "metric": "notified", "items": []},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert r.status_code == 200, r.text
    assert r.json() == {"results": []}
