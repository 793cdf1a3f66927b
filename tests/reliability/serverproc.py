"""A real ``phe-trace server run`` process on a loopback port, for whole-process tests.

Start it, SIGKILL it, restart it on the same data directory, run ``phe-trace server
export`` beside it. The server's JSON log lines (stderr) are kept in a file for scanning.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from phe_trace.serving import free_port

PHE_TRACE = [sys.executable, "-m", "phe_trace.cli"]
ISSUER = "https://conformance.test/issuer"
AUDIENCE = "https://keys.test/publish"
KID = "c1"


def clean_env(**settings: str) -> dict[str, str]:
    """The environment without the caller's PHE_TRACE_* variables, plus ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PHE_TRACE_")}
    env.update(settings)
    return env


class TestAuthority:
    """A health authority for tests: a P-256 key written as PEM files."""

    __test__ = False

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.private_key = ec.generate_private_key(ec.SECP256R1())
        self.private_pem = directory / "ha.pem"
        self.public_pem = directory / "ha.pub.pem"
        self.private_pem.write_bytes(
            self.private_key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        self.public_pem.write_bytes(
            self.private_key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )


class ServerProcess:
    """``phe-trace server run`` in a subprocess, on ``data_dir``, with ``settings`` env."""

    def __init__(self, data_dir: Path, role: str = "keyserver", **settings: str) -> None:
        self.data_dir = data_dir
        self.role = role
        defaults = {"PHE_TRACE_EXPORT_INTERVAL_SECONDS": "0", "PHE_TRACE_CHAFF_MAX_DELAY_MS": "20"}
        self.env = clean_env(**{**defaults, **settings})
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = data_dir.parent / f"{data_dir.name}-server.log"
        self.process: subprocess.Popen[bytes] | None = None

    def cli(self, *args: str, check: bool = True, timeout: float = 120) -> str:
        """Run ``phe-trace ARGS`` with this server's environment; return stdout."""
        done = subprocess.run(
            [*PHE_TRACE, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"phe-trace {' '.join(args)}: {done.returncode}: {done.stderr}")
        return done.stdout

    def register(self, authority: TestAuthority) -> None:
        """Register ``authority`` (ISSUER, AUDIENCE, KID) with the key server."""
        self.cli(
            "server", "health-authority", "add", "--data-dir", str(self.data_dir),
            "--issuer", ISSUER, "--audience", AUDIENCE, "--name", "conformance test",
            "--public-key", str(authority.public_pem), "--key-version", KID,
        )  # fmt: skip

    def export(self, now: float) -> str:
        """``phe-trace server export --now``: write every due batch (``--now`` may lie in the
        future: these servers' data directories are scratch ones)."""
        return self.cli(
            "server", "export", "--data-dir", str(self.data_dir), "--now", str(now),
            "--allow-future",
        )  # fmt: skip

    def start(self, timeout: float = 30) -> ServerProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = self.log.open("ab")
        self.process = subprocess.Popen(
            [
                *PHE_TRACE, "server", "run", "--host", "127.0.0.1", "--port", str(self.port),
                "--data-dir", str(self.data_dir), "--role", self.role,
            ],
            env=self.env,
            stdout=log,
            stderr=log,
        )  # fmt: skip
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError("server did not become healthy")

    def kill(self) -> None:
        """SIGKILL: no shutdown handler runs."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def log_lines(self) -> list[str]:
        return self.log.read_text(encoding="utf-8", errors="replace").splitlines()
