"""Fixtures of the key-server tests: settings on SQLite/PostgreSQL, a context, a live server."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from phe_trace.server import (
    ServerContext,
    ServerSettings,
    create_app,
    load_settings,
    register_health_authority,
)

from .helpers import Authority, Clock


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def authority() -> Authority:
    return Authority()


def make_settings(tmp_path: Path, database_url: str | None, **extra: Any) -> ServerSettings:
    values: dict[str, Any] = {
        "data_dir": tmp_path / "data",
        "database_url": database_url,
        "export_min_records": 0,
        "region": "ZZ",
        "chaff_max_delay_ms": 50,
    }
    values.update(extra)
    return load_settings(**values)


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> ServerSettings:
    return make_settings(tmp_path, database_url)


@pytest.fixture
def ctx(settings: ServerSettings, clock: Clock, authority: Authority) -> Iterator[ServerContext]:
    context = ServerContext.open(settings, clock=clock)
    register_health_authority(
        context.engine,
        issuer=authority.issuer,
        audience=authority.audience,
        name="Test HA",
        public_keys={authority.kid: authority.public_pem},
    )
    yield context
    context.close()


class LiveServer:
    """A real uvicorn server on a loopback port, in a thread."""

    def __init__(self, app: Any) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()


@pytest.fixture
def live(ctx: ServerContext) -> Iterator[LiveServer]:
    with LiveServer(create_app(context=ctx)) as server:
        yield server


@pytest.fixture
def client(live: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live.url, timeout=10) as c:
        yield c
