"""The real nginx with ``server/nginx.conf.example`` in front of a real ``phe-trace server run``.

The example is used as shipped, with only its ports, log directory, certificate paths and
upstream port substituted (each substitution must match, so a changed example fails here
rather than being tested half). A test nginx.conf around it gives nginx what its own
``/etc/nginx/nginx.conf`` would: a main error log (at ``info``, so that anything about a
client that reached it would be seen), an ``http`` block and temporary paths. Through
nginx, over HTTPS with a self-signed certificate made here: the portal (sign-in with its
Secure cookie, a code issued), the device API, the JWKS, a publish and the export that
carries its keys. Then nginx's logs must name no client address.

``.ci/run`` installs nginx (``nginx-light``) and runs these tests after ``make test``
(``PHE_TRACE_DEPLOYMENT_TESTS=1``); where the ``nginx`` binary is missing they are skipped.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import ipaddress
import os
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from phe_trace.protocol.export_naming import parse_index
from phe_trace.protocol.export_signing import load_public_key_pem, verify_export_zip
from tests.reliability.serverproc import PHE_TRACE, ServerProcess, free_port
from tests.verification.conftest import issue_code, sign_in

from .gates import deployment

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "server" / "nginx.conf.example"
NGINX = shutil.which("nginx") or next(
    (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if Path(p).exists()), None
)
PASSWORD = "a long enough password"
CLIENT = "127.0.0.1"

pytestmark = [
    deployment,
    pytest.mark.skipif(
        NGINX is None, reason="nginx is not installed (.ci/run installs nginx-light)"
    ),
]


def _certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for keys.health.example and 127.0.0.1, and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "keys.health.example")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("keys.health.example"),
                    x509.IPAddress(ipaddress.ip_address(CLIENT)),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "fullchain.pem", directory / "privkey.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def _substitute(text: str, old: str, new: str) -> str:
    assert old in text, f"nginx.conf.example no longer has {old!r}"
    return text.replace(old, new)


@dataclass
class Proxy:
    https: str
    http: str
    ca: Path
    logs: Path
    main_error_log: Path
    process: subprocess.Popen[bytes]

    def client(self, **kwargs: Any) -> httpx.Client:
        context = ssl.create_default_context(cafile=str(self.ca))
        return httpx.Client(base_url=self.https, verify=context, timeout=30, **kwargs)

    def log_text(self) -> str:
        """Everything nginx wrote: the example's logs and the main error log."""
        files = [*sorted(self.logs.iterdir()), self.main_error_log]
        return "\n".join(f.read_text(errors="replace") for f in files if f.is_file())


def start_nginx(directory: Path, backend_port: int, *, example: str | None = None) -> Proxy:
    """nginx with the example (or ``example``, a variant of it) on two free ports."""
    directory.mkdir(parents=True, exist_ok=True)
    logs = directory / "log"
    logs.mkdir()
    cert, key = _certificate(directory)
    https_port, http_port = free_port(), free_port()
    text = EXAMPLE.read_text() if example is None else example
    text = _substitute(text, "listen 443 ssl", f"listen {CLIENT}:{https_port} ssl")
    text = _substitute(text, "listen 80;", f"listen {CLIENT}:{http_port};")
    text = _substitute(text, "server 127.0.0.1:8080;", f"server 127.0.0.1:{backend_port};")
    text = _substitute(text, "/var/log/nginx/", f"{logs}/")
    text = _substitute(text, "/etc/ssl/keys.health.example/fullchain.pem", str(cert))
    text = _substitute(text, "/etc/ssl/keys.health.example/privkey.pem", str(key))
    (directory / "phe-trace.conf").write_text(text)
    main_error_log = directory / "main-error.log"
    temp = {n: directory / n for n in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")}
    (directory / "nginx.conf").write_text(
        f"""
daemon off;
master_process off;
pid {directory}/nginx.pid;
error_log {main_error_log} info;
events {{ worker_connections 64; }}
http {{
    access_log {logs}/default-access.log;
    client_body_temp_path {temp["client_body"]};
    proxy_temp_path {temp["proxy"]};
    fastcgi_temp_path {temp["fastcgi"]};
    uwsgi_temp_path {temp["uwsgi"]};
    scgi_temp_path {temp["scgi"]};
    include {directory}/phe-trace.conf;
}}
"""
    )
    assert NGINX is not None
    config = ["-p", str(directory), "-c", str(directory / "nginx.conf")]
    check = subprocess.run(
        [NGINX, "-t", *config], capture_output=True, text=True, timeout=30, check=False
    )
    assert check.returncode == 0, check.stderr
    process = subprocess.Popen(
        [NGINX, *config], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 20
    while True:
        assert process.poll() is None, main_error_log.read_text()
        try:
            socket.create_connection((CLIENT, https_port), timeout=1).close()
            break
        except OSError:
            assert time.monotonic() < deadline, "nginx did not start listening"
            time.sleep(0.05)
    return Proxy(
        f"https://{CLIENT}:{https_port}",
        f"http://{CLIENT}:{http_port}",
        cert,
        logs,
        main_error_log,
        process,
    )


def stop_nginx(proxy: Proxy) -> None:
    if proxy.process.poll() is None:
        proxy.process.terminate()
        try:
            proxy.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proxy.process.kill()
            proxy.process.wait(timeout=10)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    running = ServerProcess(tmp_path / "hd", role="all")
    init = subprocess.run(
        [*PHE_TRACE, "server", "init", "--data-dir", str(running.data_dir),
         "--username", "worker", "--password-stdin"],
        input=PASSWORD + "\n", env=running.env, capture_output=True, text=True, timeout=120,
        check=False,
    )  # fmt: skip
    assert init.returncode == 0, init.stderr
    running.start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def proxy(tmp_path: Path, server: ServerProcess) -> Iterator[Proxy]:
    running = start_nginx(tmp_path / "nginx", server.port)
    try:
        yield running
    finally:
        stop_nginx(running)


def _keys() -> list[dict[str, Any]]:
    today = int(time.time()) // 600 // 144 * 144
    return [
        {
            "key": base64.b64encode(os.urandom(16)).decode(),
            "rollingStartNumber": today - 144 * (i + 1),
            "rollingPeriod": 144,
            "transmissionRisk": 0,
        }
        for i in range(3)
    ]


def _tek_hmac(hmac_key: bytes, keys: list[dict[str, Any]]) -> str:
    parts = sorted(
        f"{k['key']}.{k['rollingStartNumber']}.{k['rollingPeriod']}.{k['transmissionRisk']}"
        for k in keys
    )
    return base64.b64encode(
        hmac.new(hmac_key, ",".join(parts).encode(), hashlib.sha256).digest()
    ).decode()


def test_every_public_path_through_nginx_over_https(server: ServerProcess, proxy: Proxy) -> None:
    """(SPEC OPS-6) Portal, device API, JWKS, publish and export through the example
    config over TLS; internal paths closed; plain HTTP redirected."""
    api_key = server.cli(
        "server", "admin", "api-key", "--name", "app", "--realm", "default",
        "--data-dir", str(server.data_dir),
    ).strip()  # fmt: skip
    with proxy.client() as portal:
        assert portal.get("/portal", follow_redirects=True).url.path == "/portal/login"
        signed_in = sign_in(portal, "worker", PASSWORD)  # the Secure cookies, over HTTPS
        assert signed_in.status_code == 303, signed_in.text
        code = issue_code(portal).code
    keys, hmac_key = _keys(), os.urandom(32)
    with proxy.client(headers={"X-API-Key": api_key}) as device:
        jwks = device.get("/.well-known/jwks.json")
        assert jwks.status_code == 200 and jwks.json()["keys"][0]["kty"] == "EC"
        verified = device.post("/api/verify", json={"code": code, "accept": ["confirmed"]})
        assert verified.status_code == 200, verified.text
        certified = device.post(
            "/api/certificate",
            json={"token": verified.json()["token"], "ekeyhmac": _tek_hmac(hmac_key, keys)},
        )
        assert certified.status_code == 200, certified.text
        published = device.post(
            "/v1/publish",
            json={
                "temporaryExposureKeys": keys,
                "healthAuthorityID": "org.example.app",
                "verificationPayload": certified.json()["certificate"],
                "hmacKey": base64.b64encode(hmac_key).decode(),
                "padding": base64.b64encode(os.urandom(1024)).decode(),
            },
        )
        assert published.status_code == 200, published.text
        assert published.json()["insertedExposures"] == 3
    server.export(time.time() + 4 * 3600)  # the keys' hour is then past its 2-hour wait
    with proxy.client() as cdn:
        public_key = load_public_key_pem(cdn.get("/v1/exports/signing-key.pem").content)
        index = cdn.get("/v1/exports/ZZ/index.txt")
        assert index.status_code == 200, index.text
        exported: set[str] = set()
        for name in parse_index(index.content):
            archive = cdn.get(f"/v1/exports/{name}")
            assert archive.status_code == 200
            export = verify_export_zip(archive.content, public_key)
            exported |= {base64.b64encode(k.key_data).decode() for k in export.keys}
        assert {k["key"] for k in keys} <= exported
        assert cdn.get("/v1/statistics/key-counts").status_code == 200
        assert cdn.get("/healthz").status_code == 200
        analytics = cdn.get("/v1/analytics/config")  # phe-trace's own answer, not nginx's
        assert analytics.headers["content-type"].startswith("application/json")
        assert cdn.get("/metrics").status_code == 403  # monitoring network only
        assert cdn.get("/docs").status_code == 404
        assert cdn.get("/openapi.json").status_code == 404
    redirect = httpx.get(proxy.http + "/portal/login", timeout=10)
    assert redirect.status_code == 301
    assert redirect.headers["location"].startswith("https://")


def _provoke_errors(proxy: Proxy, server: ServerProcess) -> None:
    """What writes client addresses into nginx's error log: plain HTTP sent to the TLS
    port, a broken TLS handshake, and a request while phe-trace is down (502)."""
    port = int(proxy.https.rsplit(":", 1)[1])
    plain = httpx.get(f"http://{CLIENT}:{port}/healthz", timeout=10)
    assert plain.status_code == 400
    with socket.create_connection((CLIENT, port), timeout=5) as raw:
        raw.sendall(b"\x16\x03\x01\x00\x05garbage")
        raw.recv(100)
    server.stop()
    with proxy.client() as client:
        assert client.get("/healthz").status_code == 502
    time.sleep(0.2)  # nginx writes its logs unbuffered; let the last line land


def test_nginx_logs_name_no_client_address(server: ServerProcess, proxy: Proxy) -> None:
    """(SPEC OPS-6) After ordinary requests and the errors nginx logs with "client: …",
    no log nginx wrote names the client's address; the access log has the requests."""
    with proxy.client() as client:
        assert client.get("/portal/login").status_code == 200
        assert client.get("/v1/exports/ZZ/index.txt?x=1").status_code in (200, 404)
    _provoke_errors(proxy, server)
    text = proxy.log_text()
    assert CLIENT not in text and "client:" not in text  # no address anywhere …
    assert "GET /portal/login HTTP/" in text  # … though the access log is written
    assert "upstream=502" in text
    assert "x=1" not in text  # nor the query


def test_without_its_error_log_lines_nginx_would_log_client_addresses(
    tmp_path: Path, server: ServerProcess
) -> None:
    """(SPEC OPS-6) The check above can fail: with the example's `error_log /dev/null;`
    lines taken out, the same errors put "client: 127.0.0.1" in nginx's main error log."""
    lines = EXAMPLE.read_text().splitlines(keepends=True)
    variant = "".join(line for line in lines if not line.strip().startswith("error_log"))
    proxy = start_nginx(tmp_path / "variant", server.port, example=variant)
    try:
        _provoke_errors(proxy, server)
    finally:
        stop_nginx(proxy)
    assert f"client: {CLIENT}" in proxy.main_error_log.read_text()
