"""The daemon loop on the bumble radio, and desktop notifications."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from phe_trace.agent import Agent, AgentConfig
from phe_trace.agent.notify import notify
from phe_trace.agent.radio.bumble import BumbleLink
from phe_trace.agent.risk import Assessment

from .conftest import T0
from .exports import new_signer, spki
from .scenario import FAST


async def test_run_loop_advertises_scans_and_stops(tmp_path: Path) -> None:
    """The daemon loop on an accelerated clock: advertises, scans, stops cleanly.

    (SPEC AGENT-1, AGENT-5, AGENT-6)
    """
    link = BumbleLink()
    peer = link.radio("peer", (1.0, 0.0), interval_ms=FAST)
    await peer.start_advertising(bytes(range(20)))
    radio = link.radio("agent", (0.0, 0.0), interval_ms=FAST)
    config = AgentConfig(
        data_dir=tmp_path / "a",
        radio="bumble",
        scan_period_s=60,
        scan_jitter_s=0,
        scan_duration_s=0.1,
        # A key server that is down: the periodic check fails, the radio work goes on.
        key_server_url="http://127.0.0.1:9",
        export_public_keys=spki(new_signer()),
        download_retries=0,
    )
    agent = Agent.open(config, now=T0, radio=radio)
    speed, start = 600.0, time.monotonic()

    def clock() -> float:
        return T0 + (time.monotonic() - start) * speed

    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(1.5, stop.set)
    await agent.run(clock=clock, stop=stop, sync_every_s=3600)
    try:
        assert not radio.advertising  # stopped on the way out
        assert radio.rotations >= 1
        heard = agent.store.sightings()
        assert heard and {s.rpi + s.aem for s in heard} == {bytes(range(20))}
        assert {s.rssi_max for s in heard} == {-55}  # 1 m in the link's model
        # The clock it ran on was recorded for the next start's backwards-clock check.
        assert agent.store.get_meta("state")["last_now"] >= T0 + 600
        assert "kept failing" in agent.status(clock())["last_check_error"]
    finally:
        agent.close()
        await radio.close()
        await peer.close()


def _fake_notify_send(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    log = tmp_path / "notifications.txt"
    script = tmp_path / "bin" / "notify-send"
    script.parent.mkdir()
    script.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> {log}\n')
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{script.parent}:/usr/bin:/bin")
    return log


def test_notification_uses_notify_send_when_present(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """(SPEC AGENT-16)"""
    log = _fake_notify_send(tmp_path, monkeypatch)
    high = Assessment("high", "2026-11-02", 3, {"2026-11-02": ("high", 20.0)})
    assert notify(high) is True
    text = log.read_text()
    assert "Possible exposure" in text and "2026-11-02" in text
    assert notify(high, enabled=False) is False
    assert log.read_text() == text
    monkeypatch.setenv("PATH", str(tmp_path / "nothing-here"))
    assert notify(high) is False  # no notify-send: the log line is all
