"""Fixtures of the key-server tests: settings on SQLite/PostgreSQL, a context, a live server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from phe_trace.clock import SettableClock
from phe_trace.server import (
    ServerContext,
    ServerSettings,
    create_app,
    load_settings,
    register_health_authority,
)
from phe_trace.serving import LoopbackServer

from .helpers import NOW, Authority


@pytest.fixture
def clock() -> SettableClock:
    return SettableClock(NOW)


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
def ctx(
    settings: ServerSettings, clock: SettableClock, authority: Authority
) -> Iterator[ServerContext]:
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


@pytest.fixture
def live(ctx: ServerContext) -> Iterator[LoopbackServer]:
    with LoopbackServer(create_app(context=ctx)) as server:
        yield server


@pytest.fixture
def client(live: LoopbackServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live.url, timeout=10) as c:
        yield c
