"""The gateway's log: its scheduled work's failures as JSON lines (SPEC OPS-10, FED-8).

The gateway runs on real uvicorn with its scheduled work on; one run fails, and the loop
logs the failure as one JSON line naming the error's class, then runs again.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from phe_trace.gateway import create_app
from phe_trace.gateway.service import Gateway
from phe_trace.serving import LoopbackServer


def test_a_failed_scheduled_run_is_one_json_line_and_the_loop_goes_on(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """OPS-10: ``schedule_failed`` with the exception's class, not its message."""
    runs: list[int] = []

    def failing() -> list[str]:
        runs.append(1)
        raise RuntimeError("secret detail of the failure")

    monkeypatch.setattr(gateway, "form_batches", failing)
    quick = gateway.settings.model_copy(update={"batching_interval_seconds": 0.05})
    monkeypatch.setattr(gateway, "settings", quick)
    lines: list[dict[str, Any]] = []
    with LoopbackServer(create_app(gateway=gateway, scheduled=True)):
        deadline = time.monotonic() + 30
        while len(lines) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
            err = capfd.readouterr().err
            lines += [json.loads(x) for x in err.splitlines() if x.startswith("{")]
    assert len(runs) >= 2 and len(lines) >= 2, "the loop stopped after a failed run"
    assert {(e["event"], e["level"], e["logger"], e["exception"]) for e in lines} == {
        ("schedule_failed", "ERROR", "phe_trace.gateway", "RuntimeError")
    }
    assert all("secret detail" not in json.dumps(e) for e in lines)
