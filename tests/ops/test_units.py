"""The shipped systemd units pass ``systemd-analyze verify``.

Each unit is checked as shipped, with only its ``ExecStart`` program replaced by one that
exists here (``/opt/phe-trace/…`` is where the READMEs install it; verify refuses a
missing executable). Where ``systemd-analyze`` is not installed the test is skipped.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SYSTEM_UNITS = ["server/phe-trace-server.service", "device/phe-trace-agent.service"]
USER_UNITS = ["device/phe-trace-agent-user.service"]
#: Where the READMEs install the ``phe-trace`` command.
INSTALLED = re.compile(r"/opt/phe-trace/\.venv/bin/phe-trace")

pytestmark = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed here"
)


def _adapted(unit: str, where: Path) -> Path:
    text = (ROOT / unit).read_text()
    assert INSTALLED.search(text), f"{unit} does not start {INSTALLED.pattern}"
    program = Path(sys.executable).with_name("phe-trace")
    if not program.exists():  # the tests' interpreter without the console script
        program = Path(sys.executable)
    target = where / Path(unit).name
    target.write_text(INSTALLED.sub(str(program), text))
    return target


def _verify(unit: Path, *, user: bool, runtime: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, XDG_RUNTIME_DIR=str(runtime), SYSTEMD_LOG_COLOR="0")
    args = ["systemd-analyze", *(["--user"] if user else []), "verify", str(unit)]
    return subprocess.run(args, capture_output=True, text=True, timeout=60, check=False, env=env)


@pytest.mark.parametrize(
    ("unit", "user"), [(u, False) for u in SYSTEM_UNITS] + [(u, True) for u in USER_UNITS]
)
def test_shipped_unit_passes_systemd_analyze_verify(tmp_path: Path, unit: str, user: bool) -> None:
    """(SPEC OPS-7) No error and no warning (an unknown or misspelt setting is only a
    warning with exit status 0, so the output must be empty too)."""
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    result = _verify(_adapted(unit, tmp_path), user=user, runtime=runtime)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "" and result.stderr.strip() == "", result.stderr


def test_verify_reports_a_misspelt_setting(tmp_path: Path) -> None:
    """(SPEC OPS-7) The check above would see a mistake: a misspelt setting is reported."""
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    unit = _adapted(SYSTEM_UNITS[1], tmp_path)
    unit.write_text(unit.read_text().replace("NoNewPrivileges=", "NoNewPrivilege="))
    result = _verify(unit, user=False, runtime=runtime)
    assert "NoNewPrivilege" in result.stderr
