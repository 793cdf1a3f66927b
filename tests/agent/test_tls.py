"""A server whose TLS certificate the device does not trust: named as such, not retried."""

from __future__ import annotations

import base64
import datetime as dt
import http.server
import os
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from phe_trace.agent import AgentStore

EXPORT_KEY = base64.b64encode(
    ec.generate_private_key(ec.SECP256R1())
    .public_key()
    .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
).decode()


def _self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture
def untrusted_https(tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    """An HTTPS server on loopback with a self-signed certificate; yields its URL and
    the paths it was asked for."""
    cert, key = _self_signed(tmp_path)
    asked: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.append(self.path)
            self.send_response(404)
            self.end_headers()

        do_POST = do_GET

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://localhost:{server.server_address[1]}", asked
    finally:
        server.shutdown()
        server.server_close()


def _run(data_dir: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PHE_TRACE_AGENT_")}
    environ.update({"PHE_TRACE_AGENT_DATA_DIR": str(data_dir), **env})
    environ.pop("SSL_CERT_FILE", None)
    return subprocess.run(
        [sys.executable, "-m", "phe_trace.cli", "agent", *args],
        capture_output=True, text=True, timeout=120, check=False, env=environ,
    )  # fmt: skip


def test_sync_names_an_untrusted_certificate_and_does_not_retry(
    tmp_path: Path, untrusted_https: tuple[str, list[str]]
) -> None:
    """(SPEC OPS-3)"""
    url, asked = untrusted_https
    AgentStore.open(tmp_path / "agent").close()
    done = _run(
        tmp_path / "agent",
        "sync",
        PHE_TRACE_AGENT_KEY_SERVER_URL=url,
        PHE_TRACE_AGENT_EXPORT_PUBLIC_KEYS=EXPORT_KEY,
        PHE_TRACE_AGENT_DOWNLOAD_RETRIES="4",
        PHE_TRACE_AGENT_DOWNLOAD_BACKOFF_S="5",  # a retry would take > 5 s
    )
    assert done.returncode != 0
    [line] = done.stderr.strip().splitlines()
    assert "TLS: the server's certificate is not trusted" in line, line
    assert "self-signed certificate" in line, line
    assert "kept failing" not in line
    assert asked == []  # the handshake failed: no request reached the server


def test_report_names_an_untrusted_certificate(
    tmp_path: Path, untrusted_https: tuple[str, list[str]]
) -> None:
    """(SPEC OPS-3)"""
    url, _ = untrusted_https
    AgentStore.open(tmp_path / "agent").close()
    done = _run(
        tmp_path / "agent",
        "report",
        "--code",
        "12345678",
        PHE_TRACE_AGENT_KEY_SERVER_URL=url,
        PHE_TRACE_AGENT_VERIFICATION_URL=url,
    )
    assert done.returncode != 0
    [line] = done.stderr.strip().splitlines()
    assert "TLS: the server's certificate is not trusted" in line, line
