"""Each extra installed alone runs its role: no role imports another role's packages."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from phe_trace.agent import AgentStore

BLOCKED = Path(__file__).with_name("blocked.py")
#: What the ``device`` extra does not install (the server's and PostgreSQL's packages).
NOT_ON_A_DEVICE = (
    "jwt,fastapi,uvicorn,sqlalchemy,alembic,jinja2,multipart,opendp,matplotlib,psycopg"
)
#: What ``server,postgres`` does not install (the radios').
NOT_ON_A_SERVER = "bumble,bleak,dbus_fast"


def _run(blocked: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PHE_TRACE_")}
    return subprocess.run(
        [sys.executable, str(BLOCKED), blocked, "--", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=cwd,
        env=env,
    )


def _public_key() -> str:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode()


def _no_missing_package(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stderr, result.stderr
    assert "needs the Python package" not in result.stderr, result.stderr
    assert "No module named" not in result.stderr, result.stderr


def test_a_blocked_package_is_reported_as_a_missing_extra(tmp_path: Path) -> None:
    """(SPEC OPS-1) The blocker works: a command that needs a blocked package says which
    extra installs it, on one line."""
    result = _run("jwt", "conformance", "--help", cwd=tmp_path)
    assert result.returncode != 0
    assert "phe-trace: error: this command needs the Python package 'jwt'" in result.stderr
    assert "install phe-trace[server]" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["agent", "--help"],
        ["agent", "status", "--data-dir", "d"],
        ["agent", "export-data", "--data-dir", "d"],
        ["agent", "wipe", "--yes", "--data-dir", "d"],
    ],
)
def test_agent_commands_run_with_the_device_extra_alone(tmp_path: Path, args: list[str]) -> None:
    """(SPEC OPS-1)"""
    AgentStore.open(tmp_path / "d").close()
    result = _run(NOT_ON_A_DEVICE, *args, cwd=tmp_path)
    _no_missing_package(result)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("command", ["sync", "report --code 12345678"])
def test_agent_network_commands_fail_on_the_network_not_on_imports(
    tmp_path: Path, command: str
) -> None:
    """(SPEC OPS-1) sync and report load the export reader, the matcher and the
    certificate path; with nothing listening they fail for that reason alone."""
    env_file = tmp_path / "agent.env"
    env_file.write_text(
        "PHE_TRACE_AGENT_KEY_SERVER_URL=http://127.0.0.1:9\n"
        "PHE_TRACE_AGENT_VERIFICATION_URL=http://127.0.0.1:9\n"
        f"PHE_TRACE_AGENT_EXPORT_PUBLIC_KEYS={_public_key()}\n"
        "PHE_TRACE_AGENT_DOWNLOAD_RETRIES=0\n"
    )
    result = _run(
        NOT_ON_A_DEVICE,
        "agent",
        *command.split(),
        "--config",
        str(env_file),
        "--data-dir",
        "d",
        cwd=tmp_path,
    )
    _no_missing_package(result)
    assert result.returncode != 0
    assert result.stderr.startswith("phe-trace: error:"), result.stderr
    assert "127.0.0.1:9" in result.stderr  # it got as far as the network


@pytest.mark.parametrize(
    "args",
    [
        ["server", "--help"],
        ["server", "health-authority", "list", "--data-dir", "d"],
        ["server", "export", "--data-dir", "d"],
        ["server", "admin", "--data-dir", "d", "realms"],
    ],
)
def test_server_commands_run_without_the_device_extra(tmp_path: Path, args: list[str]) -> None:
    """(SPEC OPS-1)"""
    result = _run(NOT_ON_A_SERVER, *args, cwd=tmp_path)
    _no_missing_package(result)
    assert result.returncode == 0, result.stderr
