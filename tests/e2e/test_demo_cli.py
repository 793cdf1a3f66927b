"""``phe-trace demo`` as a user runs it: a short city from the command line."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

PHE_TRACE = [sys.executable, "-m", "phe_trace.cli"]


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PHE_TRACE, *args], cwd=cwd, capture_output=True, text=True, timeout=600)


def test_short_demo_writes_a_report(tmp_path: Path) -> None:
    done = _run("demo", "--people", "200", "--days", "3", "--out", "rep", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    out = tmp_path / "rep"
    assert "report.html" in done.stdout
    assert str((out / "report.html").resolve()) in done.stdout  # whole, on one line
    summary = json.loads((out / "summary.json").read_text())
    assert summary["config"]["people"] == 200 and summary["config"]["days"] == 3
    assert summary["city"]["people"] == 200
    html = (out / "report.html").read_text()
    for ref in re.findall(r'(?:src|href)="([^"]+)"', html):
        assert (out / ref).is_file(), ref
    assert (out / "outbreak.png").is_file()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--people", "5"], "--people"),
        (["--people", "abc"], "--people"),
        (["--uptake", "1.5"], "--uptake"),
        (["--radio", "carrier-pigeon"], "--radio"),
        (["--days", "0"], "--days"),
    ],
)
def test_bad_arguments_get_one_clear_line(tmp_path: Path, args: list[str], needle: str) -> None:
    done = _run("demo", *args, "--out", "rep", cwd=tmp_path)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "rep").exists()
