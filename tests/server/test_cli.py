"""``phe-trace server …`` commands, including a real ``server run`` subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from phe_trace.cli import main
from phe_trace.hosting import create_app as hosting_create_app
from phe_trace.server import load_settings
from phe_trace.server.errors import ServerConfigError
from phe_trace.serving import free_port

from .helpers import NOW, Authority


def test_run_with_no_configuration(tmp_path: Path) -> None:
    """``server run --host --port --data-dir`` starts on SQLite with a 0600 signing key (PUB-9)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PHE_TRACE_")}
    exe = Path(sys.executable).parent / "phe-trace"
    proc = subprocess.Popen(
        [
            str(exe),
            "server",
            "run",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--data-dir",
            str(tmp_path),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
                assert time.monotonic() < deadline
                time.sleep(0.2)
        assert response.json()["status"] == "ok"
        assert (tmp_path / "keyserver.sqlite3").exists()
        pem = tmp_path / "signing-keys" / "v1.pem"
        assert pem.stat().st_mode & 0o777 == 0o600
        keys = httpx.get(f"http://127.0.0.1:{port}/v1/exports/signing-keys").json()["keys"]
        assert [k["verification_key_version"] for k in keys] == ["v1"]
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_health_authority_and_rotation_commands(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """health-authority add/list and signing-key rotate work on a data directory."""
    authority = Authority()
    pem = tmp_path / "ha.pem"
    pem.write_text(authority.public_pem)
    data = str(tmp_path / "data")
    assert (
        main(
            [
                "server",
                "health-authority",
                "add",
                "--issuer",
                "iss-1",
                "--audience",
                "aud-1",
                "--name",
                "Region HA",
                "--public-key",
                str(pem),
                "--key-version",
                "v7",
                "--data-dir",
                data,
            ]
        )
        == 0
    )
    assert main(["server", "health-authority", "list", "--data-dir", data]) == 0
    out = capsys.readouterr().out
    assert "iss-1" in out and "keys=v7" in out
    assert main(["server", "signing-key", "rotate", "--data-dir", data]) == 0
    assert "active: v1, v2" in capsys.readouterr().out
    assert main(["server", "signing-key", "rotate", "--retire-previous", "--data-dir", data]) == 0
    assert "active: v3" in capsys.readouterr().out


def test_export_command_with_now(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``server export --now`` writes the due batch at the given time."""
    data = str(tmp_path / "data")
    assert main(["server", "export", "--data-dir", data, "--now", str(int(NOW))]) == 0
    out = capsys.readouterr().out
    assert "batches: 1 written" in out
    assert (tmp_path / "data" / "exports" / "ZZ" / "index.txt").exists()
    assert main(["server", "export", "--data-dir", data, "--now", "not-a-time"]) == 2


def test_hosting_roles(tmp_path: Path) -> None:
    """role=all serves the key server; an unknown role is a configuration error."""
    settings = load_settings(data_dir=tmp_path)
    app = hosting_create_app(settings, role="all")
    assert "/v1/publish" in app.openapi()["paths"]
    with pytest.raises(ServerConfigError):
        hosting_create_app(settings, role="nonsense")  # type: ignore[arg-type]
