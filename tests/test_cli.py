"""The command line's contract: errors are one line on stderr and a non-zero exit."""

from __future__ import annotations

import subprocess
import sys

from phe_trace import __version__


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "phe_trace.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_version() -> None:
    result = _run("version")
    assert result.returncode == 0
    assert result.stdout.strip() == __version__


def test_unknown_command_is_one_line_and_non_zero() -> None:
    result = _run("no-such-command")
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("phe-trace: error:")
    assert "Traceback" not in result.stderr
