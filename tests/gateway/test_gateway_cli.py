"""``phe-trace gateway``: onboarding from the command line and a real gateway process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from cryptography.hazmat.primitives import serialization

from phe_trace.serving import free_port
from tests.gateway.support import Country, Operator, pem


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "phe_trace.cli", "gateway", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


def test_onboard_and_serve_a_gateway_process(tmp_path: Path) -> None:
    """FED-4, FED-5, FED-8: the operator countersigns member certificates offline, the
    allow-list takes them (a wrong countersignature is one line on stderr and exit 2), and
    a `gateway run` process batches a DE upload by itself and serves it to FR."""
    operator = Operator.create(tmp_path)
    key_file = tmp_path / "operator.key"
    key_file.write_bytes(
        operator.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    env = {
        **os.environ,
        "PHE_TRACE_GATEWAY_DATABASE_URL": f"sqlite:///{tmp_path / 'gw.sqlite3'}",
        "PHE_TRACE_GATEWAY_TRUST_ANCHOR": str(operator.anchor_file),
    }
    de, fr = Country.create("DE"), Country.create("FR")
    for country in (de, fr):
        for kind, cert in (
            ("authentication", country.auth_cert),
            ("signing", country.signing_cert),
        ):
            path = tmp_path / f"{country.code}-{kind}.pem"
            path.write_text(pem(cert))
            sig = _cli(
                "operator",
                "sign",
                "--operator-key",
                str(key_file),
                "--certificate",
                str(path),
                env=env,
            )
            assert sig.returncode == 0, sig.stderr
            added = _cli(
                "member",
                "add",
                "--certificate",
                str(path),
                "--type",
                kind,
                "--operator-signature",
                sig.stdout.strip(),
                env=env,
            )
            assert added.returncode == 0, added.stderr
            assert added.stdout.startswith(f"{country.code} {kind} ")
    bad = _cli(
        "member",
        "add",
        "--certificate",
        str(tmp_path / "DE-signing.pem"),
        "--type",
        "signing",
        "--operator-signature",
        "AAAA",
        env=env,
    )
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
    assert "operator signature" in bad.stderr

    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "phe_trace.cli",
            "gateway",
            "run",
            "--port",
            str(port),
            "--batching-interval",
            "0.2",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
            deadline = time.monotonic() + 30
            while True:
                try:
                    client.get("/healthz")
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline, "gateway did not start"
                    time.sleep(0.1)
            batch = [de.key(now=time.time()) for _ in range(3)]
            answer = de.upload(client, batch, "cli-1")
            assert answer.status_code == 201, answer.text
            day = time.strftime("%Y-%m-%d", time.gmtime())
            while (page := fr.download(client, day)).status_code == 404:
                assert time.monotonic() < deadline, "no download batch was formed"
                time.sleep(0.1)
            from phe_trace.protocol import efgs

            assert efgs.decode_protobuf(page.content) == batch
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
