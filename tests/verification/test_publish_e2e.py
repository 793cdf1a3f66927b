"""The whole chain in one combined server (``phe_trace.hosting``, role ``all``): a portal
code becomes a certificate that the key server's ``POST /v1/publish`` accepts — and the
failures a key server must catch: keys other than the certified ones (HMAC mismatch),
a wrong audience, an unknown ``kid``. The device side (TEKs, TEK HMAC) is computed here
from the GAEN verification protocol's definition, independently of phe-trace's code.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from phe_trace.hosting import create_app as create_hosting_app
from phe_trace.server import load_settings, register_health_authority
from phe_trace.serving import LoopbackServer, serve
from phe_trace.verification import VerificationService

from .conftest import WORKER_PASSWORD, issue_code, portal_client


@dataclass
class Combined:
    url: str
    app: Any
    service: VerificationService
    api_key: str


@pytest.fixture
def combined(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Combined]:
    monkeypatch.setenv("PHE_TRACE_VERIFICATION_COOKIE_SECURE", "false")
    monkeypatch.setenv("PHE_TRACE_VERIFICATION_DATABASE_URL", database_url)
    settings = load_settings(
        data_dir=tmp_path / "data", database_url=database_url, export_min_records=0
    )
    app = create_hosting_app(settings, role="all")
    service: VerificationService = app.state.verification
    realm = service.accounts.create_realm("county")
    service.accounts.create_user(realm.id, "worker", WORKER_PASSWORD, is_admin=False, actor="t")
    _, api_key = service.accounts.create_api_key(realm.id, "app", "t")
    running = LoopbackServer(app)
    url = running.start()
    try:
        yield Combined(url, app, service, api_key)
    finally:
        running.__exit__(None, None, None)
        app.state.keyserver.close()
        service.close()


def _keys(n: int = 3) -> list[dict[str, Any]]:
    today = int(time.time()) // 600 // 144 * 144
    return [
        {
            "key": base64.b64encode(os.urandom(16)).decode(),
            "rollingStartNumber": today - 144 * (i + 1),
            "rollingPeriod": 144,
            "transmissionRisk": 0,
        }
        for i in range(n)
    ]


def _tek_hmac(hmac_key: bytes, keys: list[dict[str, Any]]) -> str:
    """GAEN verification protocol: sorted 'key.start.period.risk' strings joined by ','."""
    parts = sorted(
        f"{k['key']}.{k['rollingStartNumber']}.{k['rollingPeriod']}.{k['transmissionRisk']}"
        for k in keys
    )
    mac = hmac.new(hmac_key, ",".join(parts).encode(), hashlib.sha256).digest()
    return base64.b64encode(mac).decode()


def _certify(c: Combined, keys: list[dict[str, Any]], hmac_key: bytes) -> str:
    with portal_client(c) as portal:  # type: ignore[arg-type]
        issued = issue_code(portal)
    with httpx.Client(base_url=c.url, headers={"X-API-Key": c.api_key}) as device:
        verified = device.post("/api/verify", json={"code": issued.code, "accept": ["confirmed"]})
        assert verified.status_code == 200, verified.text
        cert = device.post(
            "/api/certificate",
            json={"token": verified.json()["token"], "ekeyhmac": _tek_hmac(hmac_key, keys)},
        )
        assert cert.status_code == 200, cert.text
    return str(cert.json()["certificate"])


def _publish(
    c: Combined, keys: list[dict[str, Any]], certificate: str, hmac_key: bytes
) -> httpx.Response:
    body = {
        "temporaryExposureKeys": keys,
        "healthAuthorityID": "org.example.exposure",
        "verificationPayload": certificate,
        "hmacKey": base64.b64encode(hmac_key).decode(),
        "padding": base64.b64encode(os.urandom(1024)).decode(),
    }
    with httpx.Client(base_url=c.url, timeout=30) as device:
        return device.post("/v1/publish", json=body)


def test_portal_code_to_accepted_publish(combined: Combined) -> None:
    """Code → token → certificate → POST /v1/publish accepted by the key server.

    (SPEC VER-6, VER-8)
    """
    keys, hmac_key = _keys(), os.urandom(32)
    response = _publish(combined, keys, _certify(combined, keys, hmac_key), hmac_key)
    assert response.status_code == 200, response.text
    assert response.json()["insertedExposures"] == len(keys)


def test_combined_metrics_carry_both_services(combined: Combined) -> None:
    """VER-14, PUB-34: one process, one ``/metrics``: the key server's series and the
    verification service's counts, an invalid attempt included."""
    keys, hmac_key = _keys(), os.urandom(32)
    _certify(combined, keys, hmac_key)
    with httpx.Client(base_url=combined.url, headers={"X-API-Key": combined.api_key}) as c:
        refused = c.post("/api/verify", json={"code": "12345678"})
        text = c.get("/metrics").text
    assert refused.json()["errorCode"] == "code_invalid"
    series = dict(line.rsplit(" ", 1) for line in text.splitlines() if line[:1] != "#")
    assert series["phe_trace_keys_stored"] == "0"  # the key server's own series
    assert series['phe_trace_verification_invalid_attempts_total{realm="county"}'] == "1"
    assert series['phe_trace_verification_certificates_total{realm="county"}'] == "1"


def test_certificate_for_other_keys_is_refused(combined: Combined) -> None:
    """A certificate is bound to its keys: other keys fail the HMAC check at publish.

    (SPEC VER-6)
    """
    certified, hmac_key = _keys(), os.urandom(32)
    certificate = _certify(combined, certified, hmac_key)
    response = _publish(combined, _keys(), certificate, hmac_key)
    assert response.status_code == 401, response.text
    assert response.json()["code"] == "health_authority_verification_certificate_invalid"
    assert _publish(combined, certified, certificate, os.urandom(32)).status_code == 401


def test_wrong_audience_is_refused(combined: Combined) -> None:
    """A key server expecting another audience refuses the certificate (SPEC VER-6)."""
    keys, hmac_key = _keys(), os.urandom(32)
    certificate = _certify(combined, keys, hmac_key)
    ctx = combined.app.state.keyserver
    register_health_authority(
        ctx.engine,
        issuer=combined.service.settings.issuer,
        audience="https://another-key-server.example",
        name="moved",
        public_keys=combined.service.signing.public_pems(),
    )
    ctx.directory.invalidate()
    response = _publish(combined, keys, certificate, hmac_key)
    assert response.status_code == 401, response.text


def test_unknown_kid_is_refused_until_the_jwks_url_is_registered(combined: Combined) -> None:
    """After a key rotation the new kid is unknown to the key server until it reads the JWKS.

    (SPEC VER-8)
    """
    combined.service.signing.rotate(combined.service.clock.now())
    keys, hmac_key = _keys(), os.urandom(32)
    certificate = _certify(combined, keys, hmac_key)
    refused = _publish(combined, keys, certificate, hmac_key)
    assert refused.status_code == 401, refused.text
    ctx = combined.app.state.keyserver
    register_health_authority(
        ctx.engine,
        issuer=combined.service.settings.issuer,
        audience=combined.service.settings.audience,
        name="verification service",
        jwks_url=combined.url + "/.well-known/jwks.json",
    )
    ctx.directory.invalidate()
    accepted = _publish(combined, keys, certificate, hmac_key)
    assert accepted.status_code == 200, accepted.text


def test_role_verification_serves_only_the_verification_service(
    tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--role verification``: device API, portal and JWKS without the key server (SPEC VER-8)."""
    monkeypatch.setenv("PHE_TRACE_VERIFICATION_DATABASE_URL", sqlite_url)
    app = create_hosting_app(load_settings(data_dir=tmp_path / "data"), role="verification")
    with serve(app) as url, httpx.Client(base_url=url) as client:
        jwks = client.get("/.well-known/jwks.json").json()
        assert [k["kty"] for k in jwks["keys"]] == ["EC"]
        assert client.get("/portal/login").status_code == 200
        assert client.post("/api/verify", json={"code": "1"}).json()["errorCode"] == "unauthorized"
        assert client.post("/v1/publish", json={}).status_code == 404
    app.state.verification.close()


def test_the_portal_shows_the_key_counts_of_its_own_process(combined: Combined) -> None:
    """AGG-38, AGG-37: with the key server in the same process and no key-server URL
    configured, the portal's community statistics carry that key server's released
    counts — the same as its ``GET /v1/statistics/key-counts`` — and name the missing
    leader aggregator."""
    from phe_trace.server.key_counts import release_key_counts

    keys, hmac_key = _keys(), os.urandom(32)
    assert _publish(combined, keys, _certify(combined, keys, hmac_key), hmac_key).status_code == 200
    released = release_key_counts(combined.app.state.keyserver, time.time() + 86_400)
    assert released
    with portal_client(combined) as portal:  # type: ignore[arg-type]
        doc = portal.get("/portal/statistics.json").json()
    served = httpx.get(f"{combined.url}/v1/statistics/key-counts").json()["releases"]
    rows = [r for r in doc["rows"] if r["source"] == "key_server"]
    assert [
        (r["day"], r["value"], [r["interval_95_low"], r["interval_95_high"]]) for r in rows
    ] == [(k["day"], k["value"], k["interval_95"]) for k in served]
    assert [r.value for r in released] == [k["value"] for k in served[-len(released) :]]
    assert doc["sources"] == {"leader": None, "key_server": None}
    assert doc["problems"] == [
        "No leader aggregator is configured (PHE_TRACE_VERIFICATION_STATISTICS_LEADER_URL):"
        " no Prio3 totals to show."
    ]
