"""The aggregator's log: JSON lines, and the collect loop names every failure it survives.

A leader with ``collect_interval`` collects by itself on a real uvicorn server; its helper
does not answer, so every metric fails, and each failure is one JSON line on stderr with
the day, the metric and the error's code — no token, key, URL or address (SPEC AGG-40, OPS-10).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from nacl.public import PrivateKey

from phe_trace.aggregator import Aggregator, AggregatorSettings, BatchTooSmall, create_app
from phe_trace.aggregator.app import collect_day
from phe_trace.analytics.metrics import METRICS
from phe_trace.logs import configure_logging
from phe_trace.server.analytics_ingest import IngestStore
from phe_trace.server.routers import analytics_ingest
from phe_trace.serving import LoopbackServer, free_port, serve

TOKEN = "peer-token-0123456789abcdef"


def _json_lines(err: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in err.splitlines() if line.startswith("{")]


def _leader(tmp_path: Path, ingest_url: str, helper_url: str, **extra: Any) -> Aggregator:
    key = PrivateKey.generate()
    return Aggregator(
        AggregatorSettings(
            role="leader",
            database_url=f"sqlite:///{tmp_path / 'leader.sqlite3'}",
            private_key=bytes(key).hex(),  # type: ignore[arg-type]
            verify_key=bytes(range(32)).hex(),  # type: ignore[arg-type]
            peer_token=TOKEN,  # type: ignore[arg-type]
            helper_url=helper_url,
            ingest_url=ingest_url,
            min_batch_size=1,
            **extra,
        )
    )


def test_the_collect_loop_logs_the_failure_it_survives(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """AGG-40: an unreachable helper is a ``collect_failed`` line per metric, then a retry."""
    ingest = FastAPI()
    ingest.include_router(analytics_ingest.router)
    ingest.state.analytics_ingest = IngestStore(
        sa.create_engine(f"sqlite:///{tmp_path / 'keyserver.sqlite3'}")
    )
    helper_url = f"http://127.0.0.1:{free_port()}"  # nobody answers there
    with serve(ingest) as ingest_url:
        leader = _leader(tmp_path, ingest_url, helper_url, collect_interval=0.2)
        failed: list[dict[str, Any]] = []
        with LoopbackServer(create_app(leader)):
            deadline = time.monotonic() + 60
            while len(failed) < 2 * len(METRICS) and time.monotonic() < deadline:
                time.sleep(0.05)
                err = capfd.readouterr().err
                failed += [e for e in _json_lines(err) if e["event"] == "collect_failed"]
                assert TOKEN not in err and helper_url not in err and "127.0.0.1" not in err
        leader.close()
    assert len(failed) >= 2 * len(METRICS), "the loop stopped after a failure"
    yesterday = int(time.time() // 86400) - 1
    assert {e["metric"] for e in failed} == set(METRICS)
    assert {(e["level"], e["logger"], e["code"]) for e in failed} == {
        ("WARNING", "phe_trace.aggregator", "peer_error")
    }
    assert {e["day"] for e in failed} <= {yesterday, yesterday + 1}


class _Refusing:
    """An aggregator whose collection fails in each of the ways the loop survives."""

    def __init__(self) -> None:
        self.failures = iter([BatchTooSmall("3 < 40"), RuntimeError("database gone")])

    def collect(self, day: int, metric: str) -> None:
        failure = next(self.failures, None)
        if failure is not None:
            raise failure


def test_collect_day_logs_a_small_batch_and_an_unexpected_error(
    capfd: pytest.CaptureFixture[str],
) -> None:
    """AGG-40: a too-small batch is INFO ``collect_skipped``; any other error is ERROR
    ``collect_failed`` with its class only (the message may quote what a peer answered)."""
    configure_logging("phe_trace.aggregator")
    released = collect_day(_Refusing(), 20_000)  # type: ignore[arg-type]
    assert released == len(METRICS) - 2
    lines = _json_lines(capfd.readouterr().err)
    skipped = [e for e in lines if e["event"] == "collect_skipped"]
    failed = [e for e in lines if e["event"] == "collect_failed"]
    assert [(e["level"], e["code"], e["day"]) for e in skipped] == [
        ("INFO", "batch_too_small", 20_000)
    ]
    assert [(e["level"], e["exception"]) for e in failed] == [("ERROR", "RuntimeError")]
    assert all(
        "database gone" not in json.dumps(e) and "3 < 40" not in json.dumps(e) for e in lines
    )
