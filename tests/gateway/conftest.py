"""Fixtures: a gateway on a real database (SQLite, and PostgreSQL where configured) with
two onboarded members, served by uvicorn on a loopback port."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from phe_trace.clock import SettableClock
from phe_trace.gateway import GatewaySettings, create_app
from phe_trace.gateway.app import open_gateway
from phe_trace.gateway.service import Gateway
from phe_trace.serving import LoopbackServer
from tests.gateway.support import NOW, Country, Operator


@pytest.fixture
def clock() -> SettableClock:
    return SettableClock(NOW)


@pytest.fixture
def operator(tmp_path: Path) -> Operator:
    return Operator.create(tmp_path)


@pytest.fixture
def countries() -> dict[str, Country]:
    return {code: Country.create(code) for code in ("DE", "FR", "NL")}


@pytest.fixture
def gateway(
    tmp_path: Path,
    database_url: str,
    operator: Operator,
    clock: SettableClock,
    countries: dict[str, Country],
) -> Iterator[Gateway]:
    settings = GatewaySettings(
        database_url=database_url,
        trust_anchor=operator.anchor_file,
        max_upload_keys=50,
        download_batch_keys=100,
        callback_allow_private=True,
        callback_max_failures=2,
    )
    gw = open_gateway(settings, clock)
    for code in ("DE", "FR"):
        countries[code].onboard(gw.engine, operator)
    yield gw
    gw.engine.dispose()


@pytest.fixture
def client(gateway: Gateway) -> Iterator[httpx.Client]:
    with LoopbackServer(create_app(gateway=gateway)) as server:
        with httpx.Client(base_url=server.url, timeout=10) as c:
            yield c
