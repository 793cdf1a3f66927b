"""Sync against real loopback servers that answer with hostile or broken HTTP.

Each failure is one file's (or the index's) failed check: recorded, reported, never a
crash with the HTTP client's own exception, and the other files are still matched.
"""

from __future__ import annotations

import asyncio
import gzip
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from phe_trace.agent import Agent, SyncError
from phe_trace.protocol import export
from phe_trace.serving import serve

from .conftest import T0
from .exports import REGION, confirmed, export_zip, new_signer, spki
from .http_host import Receive, Scope, Send
from .test_sync import NOW, _pair

DAY = 86_400


async def _start(send: Send, status: int, headers: list[tuple[bytes, bytes]]) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})


@dataclass
class HostileHost:
    """Serves ``files``; the paths in ``behaviour`` answer in a hostile way instead."""

    files: dict[str, bytes] = field(default_factory=dict)
    behaviour: dict[str, str] = field(default_factory=dict)
    url: str = ""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"].removeprefix("/v1/exports/")
        kind = self.behaviour.get(path)
        if kind == "bad-gzip":  # says gzip, is not
            body = b"this is not gzip data at all" * 10
            await _start(send, 200, [(b"content-encoding", b"gzip")])
            await send({"type": "http.response.body", "body": body})
        elif kind == "redirect-loop":
            await _start(
                send, 302, [(b"location", scope["path"].encode()), (b"content-length", b"0")]
            )
            await send({"type": "http.response.body", "body": b""})
        elif kind == "trickle":  # one byte every 50 ms: 10 s for the whole body
            await _start(send, 200, [(b"content-length", b"200")])
            for _ in range(200):
                await send({"type": "http.response.body", "body": b"x", "more_body": True})
                await asyncio.sleep(0.05)
            await send({"type": "http.response.body", "body": b""})
        elif kind == "announced-huge":
            await _start(send, 200, [(b"content-length", str(10**12).encode())])
            await send({"type": "http.response.body", "body": b"x" * 10, "more_body": True})
            raise RuntimeError("connection cut")
        elif kind == "endless":  # chunked, no length, 5 MiB: over either cap
            await _start(send, 200, [])
            for _ in range(80):
                await send({"type": "http.response.body", "body": bytes(65536), "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        elif kind == "gzip-bomb":  # small on the wire, over the cap once decoded
            await _start(send, 200, [(b"content-encoding", b"gzip")])
            await send({"type": "http.response.body", "body": gzip.compress(bytes(200_000))})
        elif path in self.files:
            body = self.files[path]
            await _start(send, 200, [(b"content-length", str(len(body)).encode())])
            await send({"type": "http.response.body", "body": body})
        else:
            await _start(send, 404, [(b"content-length", b"0")])
            await send({"type": "http.response.body", "body": b""})


@pytest.fixture
def hostile() -> Iterator[HostileHost]:
    h = HostileHost()
    with serve(h) as url:
        h.url = url
        yield h


def _configure(agent: Agent, host: HostileHost, key: str, **extra: Any) -> None:
    agent.config = agent.config.model_copy(
        update={
            "key_server_url": host.url,
            "export_public_keys": key,
            "download_backoff_s": 0.0,
            "download_retries": 2,
            "download_deadline_s": 1.0,
            "download_max_bytes": 64 * 1024,
            "desktop_notifications": False,
            **extra,
        }
    )


def _serve_good_and(host: HostileHost, a: Agent, kind: str, hostile_path: str) -> str:
    """A good file with ``a``'s key first, then a file that answers ``kind``."""
    signer = new_signer()
    [a_key] = a.store.teks()
    start = int(T0 + DAY)
    good = export.export_file_name(REGION, start, start + 3600, 1)
    host.files[good] = export_zip(
        signer, [confirmed(a_key.key_data, a_key.rolling_start_interval_number)], 0, 1
    )
    host.behaviour[hostile_path] = kind
    host.files[export.index_file_name(REGION)] = export.format_index([good, hostile_path])
    return spki(signer)


HOSTILE_FILES = [
    ("bad-gzip", "download_failed"),
    ("redirect-loop", "download_failed"),
    ("announced-huge", "download_too_large"),
    ("endless", "download_too_large"),
    ("gzip-bomb", "download_too_large"),
]


@pytest.mark.parametrize(("kind", "code"), HOSTILE_FILES)
def test_a_hostile_file_fails_alone_and_is_recorded(
    make_agent: Callable[..., Agent], hostile: HostileHost, kind: str, code: str
) -> None:
    """Invalid Content-Encoding data, a redirect loop, a body over the size cap (announced,
    streamed or decompressed): that file is refused with a stable code, recorded in the
    status, and the good file is still matched. (SPEC AGENT-13, AGENT-14, AGENT-16)"""
    a, b = _pair(make_agent)
    path = f"{REGION}/{kind}.zip"
    _configure(b, hostile, _serve_good_and(hostile, a, kind, path))
    result = b.sync(NOW)
    assert result.rejected_files == {path: code}
    assert result.matched_sightings == 12
    assert b.status(NOW)["last_check_rejected_files"] == {path: code}


def test_a_huge_index_entry_is_refused_not_crashed(
    make_agent: Callable[..., Agent], hostile: HostileHost
) -> None:
    """An index entry of 70,000 characters (a URL the HTTP client refuses) is one refused
    file; its name is shortened in the record. (SPEC AGENT-13, AGENT-14)"""
    a, b = _pair(make_agent)
    path = f"{REGION}/{'a' * 70_000}.zip"
    _configure(b, hostile, _serve_good_and(hostile, a, "none", path))
    result = b.sync(NOW)
    assert list(result.rejected_files.values()) == ["download_failed"]
    assert all(len(p) <= 200 for p in result.rejected_files)
    assert result.matched_sightings == 12


def test_a_trickling_server_does_not_hold_the_check(
    make_agent: Callable[..., Agent], hostile: HostileHost
) -> None:
    """A file trickling one byte per 50 ms (10 s in all) meets the 1 s whole-request
    deadline: the check ends interrupted, keeps what it matched, resumes next time.
    (SPEC AGENT-13)"""
    a, b = _pair(make_agent)
    path = f"{REGION}/trickle.zip"
    _configure(b, hostile, _serve_good_and(hostile, a, "trickle", path))
    result = b.sync(NOW)
    assert result.interrupted is not None and "not complete within 1 s" in result.interrupted
    assert result.rejected_files == {} and result.matched_sightings == 12
    assert path not in (b.store.get_meta("sync") or {})["processed"]


@pytest.mark.parametrize("kind", ["bad-gzip", "redirect-loop", "endless"])
def test_a_hostile_index_is_a_recorded_failed_check(
    make_agent: Callable[..., Agent], hostile: HostileHost, kind: str
) -> None:
    """The index itself answering badly fails the check with the agent's own error, and
    the failure is what ``status`` shows. (SPEC AGENT-13, AGENT-16)"""
    b = make_agent("b", now=T0)
    hostile.behaviour[export.index_file_name(REGION)] = kind
    _configure(b, hostile, spki(new_signer()))
    with pytest.raises(SyncError) as caught:
        b.sync(NOW)
    assert b.status(NOW)["last_check_error"] == str(caught.value)
    assert os.path.basename(export.index_file_name(REGION)) in str(caught.value)
