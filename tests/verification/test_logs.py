"""The verification service's log: JSON lines of events, nothing that identifies anyone.

A real service on uvicorn: a case worker signs in (after a wrong password, and a name
no account has), issues a code in the portal; a device trades the code for a token and
the token for a certificate, and tries a wrong code. The log holds the portal's events
as they commit and the device API's outcomes only as hourly sums, so no line carries the
second a code was claimed (SPEC VER-16, VER-17, OPS-10).
"""

from __future__ import annotations

import base64
import json
import secrets
from typing import Any

import httpx
import pytest

from .conftest import WORKER_PASSWORD, Live, issue_code, portal_client, sign_in


def _lines(err: str) -> list[dict[str, Any]]:
    lines = [line for line in err.splitlines() if line.startswith("{")]
    return [json.loads(line) for line in lines]


def test_events_are_logged_without_codes_tokens_accounts_or_addresses(
    live_sqlite: Live, capfd: pytest.CaptureFixture[str]
) -> None:
    """VER-17: portal events per commit, device outcomes in sums, no secret in any line."""
    live = live_sqlite
    capfd.readouterr()
    with httpx.Client(base_url=live.url, timeout=30) as anonymous:
        sign_in(anonymous, "worker", "a-wrong-password-123")
        sign_in(anonymous, "nobody-by-this-name", "a-wrong-password-123")
    with portal_client(live, "worker", WORKER_PASSWORD) as portal:
        issued = issue_code(portal)
    mac = base64.b64encode(secrets.token_bytes(32)).decode()
    with httpx.Client(base_url=live.url, headers={"X-API-Key": live.api_key}, timeout=30) as device:
        wrong = device.post("/api/verify", json={"code": "00000000"})
        assert wrong.json()["errorCode"] == "code_invalid"
        token = device.post("/api/verify", json={"code": issued.code}).json()["token"]
        answer = device.post("/api/certificate", json={"token": token, "ekeyhmac": mac})
        certificate = answer.json()["certificate"]
    mid_hour = capfd.readouterr().err
    live.service.device_log.flush()  # what the hourly thread writes at the full hour
    hour = capfd.readouterr().err

    events = _lines(mid_hour)
    assert all(e["logger"] == "phe_trace.verification" for e in events), events
    names = [e["event"] for e in events]
    realm = live.realm.id
    assert {(e["event"], e["realm"]) for e in events} >= {
        ("user.signin_failed", realm),
        ("user.signin_failed", None),  # no account by that name
        ("user.signin", realm),
        ("code.issue", realm),
    }
    assert "device_api_hour" not in names, "a device request was logged when it happened"
    [tally] = _lines(hour)
    assert tally["event"] == "device_api_hour"
    assert tally["verify"] == {"code_invalid": 1, "ok": 1}
    assert tally["certificate"] == {"ok": 1}

    forbidden = {
        "code": issued.code,
        "long code": issued.long_code,
        "code reference": issued.uuid,
        "token": token,
        "certificate": certificate.rsplit(".", 1)[1],
        "hmac": mac,
        "api key": live.api_key,
        "password": WORKER_PASSWORD,
        "account name": "worker",
        "unknown account name": "nobody-by-this-name",
        "realm name": live.realm.name,
        "address": "127.0.0.1",
    }
    for name, value in forbidden.items():
        assert value not in mid_hour + hour, f"the {name} is in the log"


def test_the_counts_since_the_last_line_are_written_when_the_service_closes(
    live_sqlite: Live, capfd: pytest.CaptureFixture[str]
) -> None:
    """VER-17: nothing counted is lost at shut-down; chaff is not counted."""
    live = live_sqlite
    headers = {"X-API-Key": live.api_key}
    with httpx.Client(base_url=live.url, headers=headers, timeout=30) as device:
        device.post("/api/verify", json={"code": "12345678"}, headers={"X-Chaff": "1"})
        device.post("/api/certificate", json={"token": "x" * 20, "ekeyhmac": "AA=="})
    capfd.readouterr()
    live.service.device_log.close()
    [tally] = _lines(capfd.readouterr().err)
    assert tally == {**tally, "event": "device_api_hour", "certificate": {"hmac_invalid": 1}}
    assert "verify" not in tally
