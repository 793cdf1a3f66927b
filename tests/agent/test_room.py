"""A radio room: separate agent processes hear each other over bumble controllers."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from phe_trace.serving import free_port

from .reference import ref_interval, ref_rpi

PHE_TRACE = [sys.executable, "-m", "phe_trace.cli"]
QUICK_SCANS = {
    "PHE_TRACE_AGENT_SCAN_PERIOD_S": "2",
    "PHE_TRACE_AGENT_SCAN_JITTER_S": "0.5",
    "PHE_TRACE_AGENT_SCAN_DURATION_S": "1",
    "PHE_TRACE_AGENT_DESKTOP_NOTIFICATIONS": "false",
}


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PHE_TRACE_AGENT_")}
    env.update(QUICK_SCANS)
    return env


def _wait_for_line(proc: subprocess.Popen[str], text: str, timeout: float) -> str:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    seen = ""
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen += line
        if text in line:
            return seen
    raise AssertionError(f"{text!r} not printed; got {seen!r}")


def _export(data_dir: Path) -> dict[str, object]:
    done = subprocess.run(
        [*PHE_TRACE, "agent", "export-data", "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env=_env(),
    )
    data: dict[str, object] = json.loads(done.stdout)
    return data


def _rpis_of(data: dict[str, object]) -> set[bytes]:
    """Every identifier the exporting agent's keys produce on the day of each key."""
    out: set[bytes] = set()
    for key in data["temporary_exposure_keys"]:  # type: ignore[attr-defined]
        tek = bytes.fromhex(key["key_data"])
        start = key["rolling_start_interval_number"]
        out |= {ref_rpi(tek, start + j) for j in range(144)}
    return out


def test_two_agent_processes_in_a_room_hear_each_other(tmp_path: Path) -> None:
    """`agent room` and two `agent run --radio bumble --hci tcp-client:…` processes:
    each agent stores identifiers derived from the other's key, never its own.

    When the room stops first, SIGTERM still stops each agent with status 0 and no
    traceback (a controller that no longer answers is given up after a few seconds).

    (SPEC OPS-2, AGENT-1, AGENT-6)
    """
    port = free_port(count=2)
    env = _env()
    room = subprocess.Popen(
        [*PHE_TRACE, "agent", "room", "--agents", "2", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    agents: list[subprocess.Popen[str]] = []
    try:
        printed = _wait_for_line(room, f"tcp-client:127.0.0.1:{port + 1}", 30)
        assert f"--hci tcp-client:127.0.0.1:{port}" in printed
        for i, name in enumerate("ab"):
            agents.append(
                subprocess.Popen(
                    [
                        *PHE_TRACE,
                        "agent",
                        "run",
                        "--radio",
                        "bumble",
                        "--hci",
                        f"tcp-client:127.0.0.1:{port + i}",
                        "--data-dir",
                        str(tmp_path / name),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=(tmp_path / f"{name}.log").open("w"),
                    text=True,
                    env=env,
                )
            )
        started = time.time()
        heard: dict[str, set[bytes]] = {}
        data: dict[str, dict[str, object]] = {}
        while time.time() - started < 90:
            time.sleep(3)
            for proc in agents:
                assert proc.poll() is None, [(tmp_path / f"{n}.log").read_text() for n in "ab"]
            if not all((tmp_path / n / "store.key").exists() for n in "ab"):
                continue
            data = {n: _export(tmp_path / n) for n in "ab"}
            heard = {
                n: {bytes.fromhex(s["rpi"]) for s in data[n]["sightings"]}  # type: ignore[attr-defined]
                for n in "ab"
            }
            if heard["a"] & _rpis_of(data["b"]) and heard["b"] & _rpis_of(data["a"]):
                break
        else:
            raise AssertionError(f"the agents did not hear each other: {heard}")
        for me, other in (("a", "b"), ("b", "a")):
            assert heard[me] & _rpis_of(data[other])
            assert not heard[me] & _rpis_of(data[me])  # never its own identifiers
            for s in data[me]["sightings"]:  # type: ignore[attr-defined]
                heard_at = dt.datetime.fromisoformat(s["time"]).timestamp()
                assert abs(ref_interval(heard_at) - ref_interval(time.time())) <= 2
        # The room goes away first: the agents still stop on SIGTERM, cleanly, saying why.
        room.send_signal(signal.SIGKILL)
        room.wait(timeout=30)
        for proc in agents:
            proc.send_signal(signal.SIGTERM)
        for name, proc in zip("ab", agents, strict=True):
            assert proc.wait(timeout=30) == 0
            log = (tmp_path / f"{name}.log").read_text()
            assert "Traceback" not in log, log
    finally:
        for proc in [*agents, room]:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait(timeout=30)


def test_a_bumble_agent_alone_runs_and_stops_cleanly(tmp_path: Path) -> None:
    """`agent run --radio bumble` without --hci: its own link, advertising and scanning
    from the first second; SIGTERM stops it with exit status 0 and its key kept.

    (SPEC OPS-2)
    """
    proc = subprocess.Popen(
        [*PHE_TRACE, "agent", "run", "--radio", "bumble", "--data-dir", str(tmp_path / "a")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "a" / "store.key").exists():
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline
            time.sleep(0.5)
        time.sleep(4)  # a few scan windows
        assert proc.poll() is None, proc.communicate()[1]
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert "Traceback" not in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    data = _export(tmp_path / "a")
    assert len(data["temporary_exposure_keys"]) == 1  # type: ignore[arg-type]
    assert data["sightings"] == []  # alone on its link; never its own identifiers
