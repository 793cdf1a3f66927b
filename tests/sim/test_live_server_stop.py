"""Stopping a demo server is safe wherever Ctrl-C interrupted its start."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from phe_trace.sim.live import _Uvicorn


def _app() -> FastAPI:
    app = FastAPI()

    @app.get("/ping")
    def ping() -> dict[str, str]:
        return {"ok": "yes"}

    return app


def test_stop_before_start_returns_quietly() -> None:
    """A server whose start never ran (Ctrl-C before it) is stopped without an error."""
    server = _Uvicorn(_app())
    server.stop()
    assert not server.thread.is_alive()


def test_stop_after_start_ends_the_thread() -> None:
    """A started server answers, and after stop its thread has ended."""
    server = _Uvicorn(_app())
    url = server.start()
    assert httpx.get(f"{url}/ping").json() == {"ok": "yes"}
    server.stop()
    assert not server.thread.is_alive()
