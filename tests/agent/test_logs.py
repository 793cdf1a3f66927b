"""The agent's log (``agent run``): JSON lines in the one format, no key material.

The agent reports through a recording host on real uvicorn; what it logs is captured
from stderr with the JSON handler ``agent run`` installs (SPEC OPS-10, SEAL-4).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable

import pytest

from phe_trace.agent import Agent
from phe_trace.logs import configure_logging
from phe_trace.serving import serve

from .conftest import T0
from .test_report_padding import RecordingServices


def _forms(data: bytes) -> set[str]:
    b64 = base64.b64encode(data).decode()
    return {
        data.hex(),
        data.hex().upper(),
        b64,
        b64.rstrip("="),
        base64.urlsafe_b64encode(data).decode(),
    }


def test_agent_log_lines_are_json_without_keys_or_secrets(
    make_agent: Callable[..., Agent], capfd: pytest.CaptureFixture[str]
) -> None:
    """OPS-10: a report is logged as JSON lines of ``phe_trace.agent``."""
    configure_logging("phe_trace.agent")
    recorder = RecordingServices()
    with serve(recorder) as url:
        agent = make_agent(
            "a", now=T0, key_server_url=url, verification_url=url, desktop_notifications=False
        )
        agent.report("12345678", T0 + 3600)
        teks = [k.key_data for k in agent.store.teks()]
    err = capfd.readouterr().err
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert lines and all(e["logger"].startswith("phe_trace.agent") for e in lines), err
    assert any(e["event"].startswith("published 1 keys") for e in lines), lines
    assert all(set(e) >= {"ts", "level", "logger", "event"} for e in lines)
    [body] = [json.loads(b) for b in recorder.published]
    forbidden = {"code": "12345678", "token": "t" * 40, "certificate": "c" * 600}
    forbidden |= {f"hmac key {f[:4]}": f for f in _forms(base64.b64decode(body["hmacKey"]))}
    forbidden |= {f"TEK {i} {f[:4]}": f for i, k in enumerate(teks) for f in _forms(k)}
    for name, value in forbidden.items():
        assert value not in err, f"the {name} is in the agent's log"
