"""The one in-process server runner (``phe_trace.serving``): start, answer, stop."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from phe_trace.serving import LoopbackServer, ServingError, free_port, serve


def _app() -> FastAPI:
    app = FastAPI()

    @app.get("/ping")
    def ping() -> dict[str, str]:
        return {"ok": "yes"}

    return app


def test_stop_before_start_returns_quietly() -> None:
    """A server whose start never ran (Ctrl-C before it) is stopped without an error."""
    server = LoopbackServer(_app())
    server.stop()
    assert not server.thread.is_alive()


def test_stop_after_start_ends_the_thread() -> None:
    """A started server answers, and after stop its thread has ended."""
    server = LoopbackServer(_app())
    url = server.start()
    assert httpx.get(f"{url}/ping").json() == {"ok": "yes"}
    server.stop()
    assert not server.thread.is_alive()


def test_port_zero_names_the_port_bound() -> None:
    """Port 0 picks a free loopback port; url and port name it before and after start."""
    with LoopbackServer(_app()) as server:
        assert server.port > 0
        assert server.url == f"http://127.0.0.1:{server.port}"
        assert httpx.get(f"{server.url}/ping").status_code == 200
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{server.url}/ping")


def test_a_given_port_is_served_again_after_stop() -> None:
    """A server on a port another one used just before (a service back after an outage)."""
    with LoopbackServer(_app()) as first:
        port = first.port
    with LoopbackServer(_app(), port=port) as again:
        assert again.url == f"http://127.0.0.1:{port}"
        assert httpx.get(f"{again.url}/ping").json() == {"ok": "yes"}


def test_serve_yields_the_url_for_the_block() -> None:
    with serve(_app()) as url:
        assert httpx.get(f"{url}/ping").json() == {"ok": "yes"}


def test_a_port_in_use_is_refused_at_once() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        with pytest.raises(OSError):
            LoopbackServer(_app(), port=busy.getsockname()[1])


def test_a_failing_start_up_is_an_error_not_a_hang() -> None:
    """An application whose start-up fails makes start raise, and leaves no thread."""

    @contextlib.asynccontextmanager
    async def broken(_app: FastAPI) -> AsyncIterator[None]:
        raise RuntimeError("no database")
        yield

    server = LoopbackServer(FastAPI(lifespan=broken), log_level="critical")
    with pytest.raises(ServingError, match="stopped while starting"):
        server.start()
    server.stop()
    assert not server.thread.is_alive()


def test_free_port_gives_consecutive_ports_free_together() -> None:
    """``count`` ports from the first one returned are all free (a radio room's links)."""
    first = free_port(count=3)
    held = []
    try:
        for port in range(first, first + 3):
            sock = socket.socket()
            held.append(sock)
            sock.bind(("127.0.0.1", port))
    finally:
        for sock in held:
            sock.close()
