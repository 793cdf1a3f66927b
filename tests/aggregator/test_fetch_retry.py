"""An aggregator's fetch of boxes from the key server rides out transient failures.

The key server may be slow or restarting while a day is collected; a page that times out
or meets 502/503/504 is fetched again (the cursor makes the repeat harmless), while a
refusal (4xx) or a server that stays down ends the pull with a clear ``PeerError``.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from nacl.public import PrivateKey

from phe_trace.aggregator import Aggregator, AggregatorSettings
from phe_trace.aggregator.errors import PeerError
from phe_trace.aggregator.service import _FETCH_RETRY_PAUSES

DAY = 20_000


def _helper(tmp_path: Path, handler: httpx.MockTransport) -> Aggregator:
    settings = AggregatorSettings(
        role="helper",  # type: ignore[arg-type]
        database_url=f"sqlite:///{tmp_path / 'helper.sqlite3'}",
        private_key=bytes(PrivateKey.generate()).hex(),  # type: ignore[arg-type]
        verify_key=bytes(range(32)).hex(),  # type: ignore[arg-type]
        peer_token="x" * 24,  # type: ignore[arg-type]
        ingest_url="http://keyserver.invalid",
    )
    return Aggregator(settings, http=httpx.Client(transport=handler))


@pytest.fixture(autouse=True)
def _no_pauses(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    slept: list[float] = []
    monkeypatch.setattr("phe_trace.aggregator.service.time.sleep", slept.append)
    return slept


def _empty_page(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={"shares": [], "next_after": 0})


@pytest.mark.parametrize("failure", ["timeout", "connect", 502, 503, 504])
def test_transient_failures_are_retried(tmp_path: Path, failure: object) -> None:
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) <= 2:
            if failure == "timeout":
                raise httpx.ReadTimeout("slow", request=request)
            if failure == "connect":
                raise httpx.ConnectError("refused", request=request)
            assert isinstance(failure, int)
            return httpx.Response(failure)
        return _empty_page(request)

    helper = _helper(tmp_path, httpx.MockTransport(handler))
    try:
        assert helper.pull(DAY, "notified") == 0
    finally:
        helper.close()
    assert len(calls) == 3
    assert all(c.url.params["after"] == "0" for c in calls)  # the same page again


def test_a_server_that_stays_down_ends_the_pull(tmp_path: Path, _no_pauses: list[float]) -> None:
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(503)

    helper = _helper(tmp_path, httpx.MockTransport(handler))
    try:
        with pytest.raises(PeerError, match="503"):
            helper.pull(DAY, "notified")
    finally:
        helper.close()
    assert len(calls) == len(_FETCH_RETRY_PAUSES) + 1
    assert _no_pauses == list(_FETCH_RETRY_PAUSES)


def test_a_refusal_is_not_retried(tmp_path: Path) -> None:
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(401, json={"code": "unauthorized"})

    helper = _helper(tmp_path, httpx.MockTransport(handler))
    try:
        with pytest.raises(PeerError, match="401"):
            helper.pull(DAY, "notified")
    finally:
        helper.close()
    assert len(calls) == 1
