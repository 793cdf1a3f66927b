"""Ctrl-C during ``phe-trace demo`` stops it cleanly: servers down, temporary files gone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def test_ctrl_c_stops_the_demo_and_its_servers(tmp_path: Path) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {**os.environ, "TMPDIR": str(scratch)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "phe_trace.cli",
            "demo",
            "--people",
            "300",
            "--days",
            "30",
            "--out",
            str(tmp_path / "rep"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,  # its own process group, as a job in a terminal
    )
    try:
        deadline = time.monotonic() + 120
        while not any(scratch.glob("phe-trace-demo-*")):  # the servers are up
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the demo never started its servers"
            time.sleep(0.1)
        time.sleep(1.0)
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole group
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err
    assert "interrupted" in err
    assert "Traceback" not in err
    assert not list(scratch.glob("phe-trace-demo-*")), "temporary server files left behind"
