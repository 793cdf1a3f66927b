"""One whole report, as deployed, then everything the server kept and logged is searched.

``phe-trace server run --role all`` (key server + verification service in one process,
JSON logs on stderr) runs as a subprocess; a case worker's code is issued, one agent
reports through ``/api/verify`` → ``/api/certificate`` → ``/v1/publish``; exports are
written by ``phe-trace server export``; a second agent that met the first syncs and
matches. Afterwards every log line and every row of every table of every database in
the data directory is searched for what must never be kept: key material beyond the
published diagnosis keys, the verification code, tokens, certificates, HMAC keys, and
client addresses. The same flow shows that codes, tokens and certificates work once.
(SPEC PUB-7, PUB-10, PUB-35, SEAL-4, AGENT-16, AGENT-18, VER-2, VER-5, HMAC-1)
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import random
import secrets
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from phe_trace.agent import Agent, AgentConfig
from phe_trace.agent.radio.sim import SimRadio
from phe_trace.protocol.tekmac import TekHmacKey, tek_hmac
from phe_trace.verification import VerificationService, VerificationSettings
from tests.reliability.serverproc import ServerProcess

SECRET = "flow-test-secret-" + "x7" * 12


@dataclass
class Flow:
    server: ServerProcess
    api_key: str
    codes: list[str]
    long_codes: list[str]
    published: list[bytes]
    requests: list[httpx.Request]
    agent_logs: list[str]
    secrets_seen: dict[str, str] = field(default_factory=dict)
    sync_matches: int = 0


class _Collect(logging.Handler):
    def __init__(self, into: list[str]) -> None:
        super().__init__(logging.DEBUG)
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        self.into.append(record.getMessage())


def _agent(directory: Path, server: ServerProcess, api_key: str, now: float, seed: int) -> Agent:
    config = AgentConfig(
        data_dir=directory, radio="sim", key_server_url=server.url,
        verification_url=server.url, verification_api_key=api_key,
        export_public_keys=str(server.data_dir.parent / "export.pub.pem"),
        download_backoff_s=0.0, desktop_notifications=False,
    )  # fmt: skip
    return Agent.open(config, now=now, radio=SimRadio(), rng=random.Random(seed))


@pytest.fixture(scope="module")
def flow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flow]:
    root = tmp_path_factory.mktemp("flow")
    data = root / "data"
    service = VerificationService(VerificationSettings(data_dir=data, secret=SECRET))
    realm = service.accounts.create_realm("flow-realm")
    _, api_key = service.accounts.create_api_key(realm.id, "agent-app", "test")
    worker = service.accounts.create_user(
        realm.id, "worker", "a-long-worker-password-77", is_admin=False, actor="test"
    )
    today = dt.datetime.now(dt.UTC).date()
    issued = [service.issue_code(worker, "confirmed", today, today) for _ in range(2)]
    service.close()
    server = ServerProcess(
        data, role="all", PHE_TRACE_EXPORT_MIN_RECORDS="0",
        PHE_TRACE_VERIFICATION_SECRET=SECRET,
    )  # fmt: skip
    server.start()
    logs: list[str] = []
    handler = _Collect(logs)
    logging.getLogger("phe_trace").addHandler(handler)
    requests: list[httpx.Request] = []
    try:
        (root / "export.pub.pem").write_bytes(
            httpx.get(server.url + "/v1/exports/signing-key.pem").content
        )
        now = time.time()
        start = now - 30 * 3600
        a = _agent(root / "a", server, api_key, start, 1)
        b = _agent(root / "b", server, api_key, start, 2)
        t = start
        while t < start + 3600:
            a.tick(t)
            b.tick(t)
            b.radio.inject(a.radio.current_payload(), rssi=-55, unix_time=t)  # type: ignore[union-attr]
            t += 300
        a.tick(now)
        b.tick(now)
        with httpx.Client(event_hooks={"request": [requests.append]}, timeout=30) as client:
            a.report(issued[0].code, now, client=client)
        published = [k.key_data for k in a.store.teks()]
        server.export(now + 2 * 86400)
        result = b.sync(now + 60)
        flow = Flow(
            server, api_key, [c.code for c in issued], [c.long_code for c in issued],
            published, requests, logs,
        )  # fmt: skip
        flow.sync_matches = result.matched_sightings
        a.close()
        b.close()
        yield flow
    finally:
        logging.getLogger("phe_trace").removeHandler(handler)
        server.stop()


def _forms(data: bytes) -> set[str]:
    """Every text form a byte string could take in a log line or a text column."""
    b64 = base64.b64encode(data).decode()
    url = base64.urlsafe_b64encode(data).decode()
    return {data.hex(), data.hex().upper(), b64, b64.rstrip("="), url, url.rstrip("=")}


def _publish_body(flow: Flow) -> dict[str, Any]:
    (publish,) = [r for r in flow.requests if r.url.path == "/v1/publish"]
    return json.loads(publish.content)


def _secrets(flow: Flow) -> dict[str, str]:
    """What must never be stored or logged, by name."""
    body = _publish_body(flow)
    token_request = next(r for r in flow.requests if r.url.path == "/api/certificate")
    found = {
        "code": flow.codes[0],
        "long code": flow.long_codes[0],
        "client address": "127.0.0.1",
        "certificate": body["verificationPayload"],
        "certificate signature": body["verificationPayload"].rsplit(".", 1)[1],
        "verification token": json.loads(token_request.content)["token"],
        "api key": flow.api_key,
    }
    for form in _forms(base64.b64decode(body["hmacKey"])):
        found[f"hmac key {form[:6]}"] = form
    return found


def _tek_forms(flow: Flow) -> dict[str, str]:
    return {f"TEK {i} {form[:6]}": form for i, k in enumerate(flow.published) for form in _forms(k)}


def test_the_flow_reported_and_matched(flow: Flow) -> None:
    """Sanity: keys published through the real services were matched by the contact."""
    assert len(flow.published) >= 2
    assert flow.sync_matches > 0


def test_no_secret_or_key_material_in_any_log_line(flow: Flow) -> None:
    """Server JSON logs and agent logs name events and counts only (SPEC PUB-35, SEAL-4)."""
    # The start-up line names the server's own listening address (which on loopback is also
    # the clients'); it is printed before any request, so it cannot hold a client's.
    startup = [line for line in flow.server.log_lines() if line.startswith("phe-trace server:")]
    assert len(startup) == 1 and f"on {flow.server.url} " in startup[0]
    lines = [line for line in flow.server.log_lines() if line not in startup] + flow.agent_logs
    assert any('"event":"publish"' in line for line in lines), "no server log to search"
    for line in lines:
        if line.startswith("{"):
            json.loads(line)
    for name, value in {**_secrets(flow), **_tek_forms(flow)}.items():
        leaks = [line[:120] for line in lines if value in line]
        assert not leaks, f"{name} appears in the logs: {leaks}"


def _tables(path: Path) -> Iterator[tuple[str, str, object]]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in names:
            cursor = conn.execute(f'SELECT * FROM "{table}"')
            columns = [d[0] for d in cursor.description]
            for row in cursor:
                for column, value in zip(columns, row, strict=True):
                    yield table, column, value
    finally:
        conn.close()


def test_no_secret_in_any_server_table(flow: Flow) -> None:
    """Every cell of every table: diagnosis keys only in exposures.key_data (SPEC PUB-10)."""
    databases = sorted(flow.server.data_dir.rglob("*.sqlite3"))
    assert len(databases) >= 2, databases  # key server and verification service
    secret_values = _secrets(flow)
    teks = set(flow.published)
    tek_text = _tek_forms(flow)
    cells = 0
    where_teks: set[tuple[str, str]] = set()
    for database in databases:
        for table, column, value in _tables(database):
            cells += 1
            if isinstance(value, bytes):
                if value in teks:
                    where_teks.add((table, column))
                text = value.decode("latin-1")
                for tek in teks:
                    assert tek not in value or value == tek, f"TEK inside {table}.{column}"
            else:
                text = str(value)
            for name, secret in {**secret_values, **tek_text}.items():
                assert secret not in text, f"{name} stored in {database.name}:{table}.{column}"
    assert {(t.removeprefix("ks_"), c) for t, c in where_teks} == {("exposures", "key_data")}
    assert cells > 50


def test_code_token_and_certificate_work_once(flow: Flow) -> None:
    """Second use of a code, a token, a certificate is refused (SPEC VER-2, VER-5, PUB-7)."""
    api = {"X-API-Key": flow.api_key}
    with httpx.Client(base_url=flow.server.url, timeout=30) as http:
        first = http.post("/api/verify", json={"code": flow.codes[1]}, headers=api)
        assert first.status_code == 200, first.text
        token = first.json()["token"]
        again = http.post("/api/verify", json={"code": flow.codes[1]}, headers=api)
        assert again.status_code == 400 and again.json()["errorCode"] == "code_invalid"
        by_long = http.post("/api/verify", json={"code": flow.long_codes[1]}, headers=api)
        assert by_long.status_code == 400
        today = int(time.time() // 600) // 144 * 144
        keys = [TekHmacKey(secrets.token_bytes(16), today - 144 * d, 144, 0) for d in (1, 2)]
        hmac_key = secrets.token_bytes(32)
        mac = base64.b64encode(tek_hmac(hmac_key, keys)).decode()
        cert = http.post("/api/certificate", json={"token": token, "ekeyhmac": mac}, headers=api)
        assert cert.status_code == 200, cert.text
        reuse = http.post("/api/certificate", json={"token": token, "ekeyhmac": mac}, headers=api)
        assert reuse.status_code == 400 and reuse.json()["errorCode"] == "token_invalid"
        body = {
            "temporaryExposureKeys": [
                {"key": base64.b64encode(k.key).decode(), "rollingStartNumber":
                 k.rolling_start_number, "rollingPeriod": 144, "transmissionRisk": 0}
                for k in keys
            ],
            "healthAuthorityID": "",
            "verificationPayload": cert.json()["certificate"],
            "hmacKey": base64.b64encode(hmac_key).decode(),
        }  # fmt: skip
        assert http.post("/v1/publish", json=body).json()["insertedExposures"] == 2
        replay = http.post("/v1/publish", json=body)
        assert replay.status_code == 401
        assert replay.json()["code"] == "health_authority_verification_certificate_invalid"


#: The fields of a GAEN v1 publish request; anything else could carry a device identifier.
GAEN_FIELDS = {
    "temporaryExposureKeys", "healthAuthorityID", "verificationPayload", "hmacKey",
    "symptomOnsetInterval", "traveler", "revisionToken", "padding",
}  # fmt: skip


def test_upload_carries_no_linkable_metadata(flow: Flow) -> None:
    """Only GAEN fields; fresh HMAC key; no cookie, API key or device id (SPEC AGENT-18, HMAC-1)."""
    body = _publish_body(flow)
    assert set(body) <= GAEN_FIELDS
    assert {k for key in body["temporaryExposureKeys"] for k in key} <= {
        "key", "rollingStartNumber", "rollingPeriod", "transmissionRisk",
    }  # fmt: skip
    assert all(k["transmissionRisk"] == 0 for k in body["temporaryExposureKeys"])
    assert len(base64.b64decode(body["hmacKey"])) >= 16
    assert body["padding"], "the upload is not padded"
    assert body["revisionToken"] == ""  # a first report links to nothing
    for request in flow.requests:
        headers = {k.lower() for k in request.headers}
        assert "cookie" not in headers and "authorization" not in headers
        assert not any("device" in h or "install" in h for h in headers)
        if request.url.path == "/v1/publish":
            assert "x-api-key" not in headers  # the key server cannot tie the upload to an app key
    claims = json.loads(base64.urlsafe_b64decode(body["verificationPayload"].split(".")[1] + "=="))
    assert not {"sub", "email", "phone", "name"} & set(claims), claims
    assert flow.published and all(
        base64.b64encode(k).decode() not in json.dumps(claims) for k in flow.published
    )
