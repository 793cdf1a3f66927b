"""A damaged export signing key stops the server at start, or shows in /healthz (PUB-36)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from phe_trace.clock import SettableClock
from phe_trace.server import ServerContext, create_app
from phe_trace.serving import LoopbackServer

from .conftest import make_settings
from .helpers import NOW


def _garbage(pem: Path) -> None:
    pem.write_bytes(b"-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")


def _directory(pem: Path) -> None:
    pem.unlink()
    pem.mkdir()


def _truncated(pem: Path) -> None:
    pem.write_bytes(pem.read_bytes()[:40])


def _rsa(pem: Path) -> None:
    subprocess.run(
        ["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024",
         "-out", str(pem)],
        check=True,
        capture_output=True,
    )  # fmt: skip


DAMAGES: dict[str, Callable[[Path], None]] = {
    "garbage": _garbage,
    "directory": _directory,
    "truncated": _truncated,
}
if shutil.which("openssl"):
    DAMAGES["rsa"] = _rsa


def _first_start(data: Path) -> Path:
    ServerContext.open(make_settings(data, None), clock=SettableClock(NOW)).close()
    return data / "data" / "signing-keys" / "v1.pem"


@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_server_run_refuses_a_damaged_key_on_one_line(tmp_path: Path, damage: str) -> None:
    """PUB-36: ``server run`` with a damaged v1.pem exits non-zero, one line naming it."""
    pem = _first_start(tmp_path)
    DAMAGES[damage](pem)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PHE_TRACE_")}
    exe = Path(sys.executable).parent / "phe-trace"
    proc = subprocess.run(
        [str(exe), "server", "run", "--port", "0", "--data-dir", str(tmp_path / "data")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode != 0
    assert len(lines) == 1, proc.stderr
    assert "v1.pem" in lines[0] and "Traceback" not in proc.stderr


def test_healthz_reports_a_key_damaged_while_running(tmp_path: Path) -> None:
    """PUB-34, PUB-36: a key damaged after start turns /healthz into 503."""
    ctx = ServerContext.open(make_settings(tmp_path, None), clock=SettableClock(NOW))
    pem = ctx.settings.signing_key_dir / "v1.pem"
    try:
        with LoopbackServer(create_app(context=ctx)) as server:
            before = httpx.get(f"{server.url}/healthz")
            _garbage(pem)
            after = httpx.get(f"{server.url}/healthz")
    finally:
        ctx.close()
    assert before.status_code == 200 and before.json()["signing_keys"] == "ok"
    assert after.status_code == 503
    assert after.json() == {"status": "unavailable", "database": "ok", "signing_keys": "error"}
