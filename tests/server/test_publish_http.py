"""Publish over HTTP against a real uvicorn server, on SQLite and PostgreSQL (SPEC §11)."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import httpx
import sqlalchemy as sa

from phe_trace.clock import SettableClock
from phe_trace.server import ServerContext
from phe_trace.server.storage.tables import exposures, used_certificates
from phe_trace.serving import LoopbackServer

from .helpers import NOW, Authority, day_keys, publish_body


def _rows(ctx: ServerContext) -> list[sa.Row]:
    with ctx.engine.connect() as conn:
        return list(conn.execute(sa.select(exposures)))


def test_publish_stores_keys(
    client: httpx.Client, ctx: ServerContext, authority: Authority
) -> None:
    """A verified upload is stored with protocol fields only; the answer is padded.

    (SPEC PUB-1, PUB-10, PUB-22)
    """
    keys = day_keys(NOW, 14)
    response = client.post("/v1/publish", json=publish_body(authority, keys, NOW))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["insertedExposures"] == 14
    assert body["code"] == ""
    assert len(body["revisionToken"]) >= 28
    assert 1024 <= len(body["padding"]) <= 2048
    rows = _rows(ctx)
    assert {bytes(r.key_data) for r in rows} == {base64.b64decode(k["key"]) for k in keys}
    hour = int(NOW) - int(NOW) % 3600
    assert {r.created_at for r in rows} == {hour}
    assert {r.transmission_risk_level for r in rows} == {2}  # confirmed back-fill
    assert {r.report_type for r in rows} == {1}
    columns = set(exposures.c.keys())
    assert not columns & {"ip", "ip_address", "user_agent", "request_id", "certificate"}


def test_certificate_single_use(
    client: httpx.Client, ctx: ServerContext, authority: Authority
) -> None:
    """A certificate is accepted once; a replay is refused and stores nothing (SPEC PUB-7)."""
    body = publish_body(authority, day_keys(NOW, 3), NOW)
    assert client.post("/v1/publish", json=body).status_code == 200
    body["temporaryExposureKeys"] = body["temporaryExposureKeys"]  # same request again
    replay = client.post("/v1/publish", json=body)
    assert replay.status_code == 401
    assert replay.json()["code"] == "health_authority_verification_certificate_invalid"
    assert len(_rows(ctx)) == 3
    with ctx.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(used_certificates)).scalar() == 1


def test_hmac_mismatch_refused(
    client: httpx.Client, ctx: ServerContext, authority: Authority
) -> None:
    """Keys changed after the certificate was issued fail the TEK HMAC (SPEC PUB-6)."""
    body = publish_body(authority, day_keys(NOW, 3), NOW)
    body["temporaryExposureKeys"][0]["transmissionRisk"] = 7
    response = client.post("/v1/publish", json=body)
    assert response.status_code == 401
    assert response.json()["code"] == "health_authority_verification_certificate_invalid"
    assert _rows(ctx) == []


def test_forged_and_expired_certificates(
    client: httpx.Client, ctx: ServerContext, authority: Authority
) -> None:
    """A certificate signed by another key, or expired, is refused (SPEC PUB-5)."""
    forger = Authority()
    forged = client.post("/v1/publish", json=publish_body(forger, day_keys(NOW, 2), NOW))
    assert forged.status_code == 401
    expired = publish_body(
        authority,
        day_keys(NOW, 2),
        NOW,
        exp=int(NOW) - 3600,
        iat=int(NOW) - 7200,
        nbf=int(NOW) - 7200,
    )
    response = client.post("/v1/publish", json=expired)
    assert response.status_code == 401
    assert "expired" in response.json()["error"]
    assert _rows(ctx) == []


def test_partial_failure(client: httpx.Client, ctx: ServerContext, authority: Authority) -> None:
    """A bad key is dropped with a warning, the others stored (SPEC PUB-12)."""
    keys = day_keys(NOW, 3)
    keys.append({**day_keys(NOW, 1, first_day_back=20)[0]})  # too old
    response = client.post("/v1/publish", json=publish_body(authority, keys, NOW))
    assert response.status_code == 200
    body = response.json()
    assert body["code"] == "partial_failure"
    assert body["insertedExposures"] == 3
    assert len(body["warnings"]) == 1 and "key 3" in body["warnings"][0]
    assert len(_rows(ctx)) == 3


def test_bad_inputs_are_4xx(client: httpx.Client, ctx: ServerContext) -> None:
    """Malformed requests get 4xx with a stable code and store nothing (SPEC PUB-2)."""
    cases = [
        b"{not json",
        b"[]",
        b'{"temporaryExposureKeys": "x"}',
        b'{"temporaryExposureKeys": [], "verificationPayload": "a", "hmacKey": "b"}',
        b'{"temporaryExposureKeys": [{"key": 5, "rollingStartNumber": 1, "rollingPeriod": 1}],'
        b' "verificationPayload": "a", "hmacKey": "b"}',
    ]
    for raw in cases:
        response = client.post(
            "/v1/publish", content=raw, headers={"content-type": "application/json"}
        )
        assert response.status_code == 400, raw
        assert response.json()["code"] == "bad_request"
    bad_jwt = {
        "temporaryExposureKeys": day_keys(NOW, 1),
        "verificationPayload": "x.y.z",
        "hmacKey": base64.b64encode(b"k" * 32).decode(),
    }
    response = client.post("/v1/publish", json=bad_jwt)
    assert response.status_code == 401
    assert _rows(ctx) == []


def test_oversized_body_413(client: httpx.Client, ctx: ServerContext) -> None:
    """A body over the limit is refused with 413 (SPEC PUB-3)."""
    big = b'{"padding": "' + b"A" * 100_000 + b'"}'
    response = client.post("/v1/publish", content=big, headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"

    def chunks():  # no Content-Length: streamed
        yield b'{"padding": "'
        for _ in range(20):
            yield b"A" * 10_000
        yield b'"}'

    response = client.post(
        "/v1/publish", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413

    def streamed(size: int) -> Iterator[bytes]:  # exactly ``size`` bytes, no Content-Length
        head, tail = b'{"padding": "', b'"}'
        left = size - len(head) - len(tail)
        yield head
        while left > 0:
            yield b"A" * min(left, 10_000)
            left -= 10_000
        yield tail

    limit = ctx.settings.max_body_bytes
    for size in (limit - 16, limit + 1):
        response = client.post(
            "/v1/publish", content=streamed(size), headers={"content-type": "application/json"}
        )
        assert (response.status_code == 413) == (size > limit), size


def test_oversized_chaff_gets_the_413_of_a_real_publish(
    client: httpx.Client, ctx: ServerContext
) -> None:
    """A chaff publish over the limit, declared or streamed, is refused exactly as a real
    one is: the same 413 and code; it is not counted as chaff (SPEC PUB-3, PUB-23)."""
    big = b'{"padding": "' + b"A" * 100_000 + b'"}'

    def chunks() -> Iterator[bytes]:  # no Content-Length: streamed
        for start in range(0, len(big), 10_000):
            yield big[start : start + 10_000]

    chaff_before = ctx.metrics.chaff.value()
    for content in (big, chunks):
        answers = [
            client.post(
                "/v1/publish",
                content=content() if callable(content) else content,
                headers={"content-type": "application/json", **extra},
            )
            for extra in ({}, {"X-Chaff": "1"})
        ]
        real, chaff = answers
        assert chaff.status_code == real.status_code == 413
        assert chaff.json()["code"] == real.json()["code"] == "payload_too_large"
        assert chaff.json()["error"] == real.json()["error"]
    assert ctx.metrics.chaff.value() == chaff_before


def test_chaff_is_indistinguishable_and_not_stored(
    client: httpx.Client, ctx: ServerContext, authority: Authority
) -> None:
    """Chaff gets a success-shaped answer and is never stored (SPEC PUB-23)."""
    real = client.post("/v1/publish", json=publish_body(authority, day_keys(NOW, 5), NOW))
    before = len(_rows(ctx))
    chaff_body = publish_body(authority, day_keys(NOW, 5), NOW)
    chaff = client.post("/v1/publish", json=chaff_body, headers={"X-Chaff": "1"})
    assert chaff.status_code == real.status_code == 200
    assert set(chaff.json()) == set(real.json())
    assert chaff.headers["content-type"] == real.headers["content-type"]
    assert chaff.json()["insertedExposures"] == 5
    assert abs(len(chaff.json()["revisionToken"]) - len(real.json()["revisionToken"])) <= 8
    assert len(_rows(ctx)) == before
    # the chaff certificate was not consumed: the same request really publishes afterwards
    assert client.post("/v1/publish", json=chaff_body).status_code == 200
    garbage = client.post("/v1/publish", content=b"\x00garbage", headers={"X-Chaff": "1"})
    assert garbage.status_code == 200


def test_embargo_of_still_valid_key(
    client: httpx.Client, ctx: ServerContext, authority: Authority, clock: SettableClock
) -> None:
    """Today's key is accepted but created_at is pushed past its expiry (SPEC PUB-16)."""
    today = int(NOW // 600) - int(NOW // 600) % 144
    keys = [
        {
            "key": base64.b64encode(b"\x01" * 16).decode(),
            "rollingStartNumber": today,
            "rollingPeriod": 144,
            "transmissionRisk": 0,
        }
    ]
    response = client.post("/v1/publish", json=publish_body(authority, keys, NOW))
    assert response.status_code == 200
    (row,) = _rows(ctx)
    assert row.created_at == (today + 144) * 600  # midnight is already on the hour


def test_revision_flow(client: httpx.Client, ctx: ServerContext, authority: Authority) -> None:
    """likely → confirmed needs the token; repeated revisions are refused (PUB-19, PUB-21)."""
    keys = day_keys(NOW, 3)
    first = client.post("/v1/publish", json=publish_body(authority, keys, NOW, reportType="likely"))
    assert first.status_code == 200
    token = first.json()["revisionToken"]
    missing = client.post("/v1/publish", json=publish_body(authority, keys, NOW))
    assert missing.json()["code"] == "missing_revision_token"
    assert missing.status_code == 400
    bad = client.post(
        "/v1/publish", json=publish_body(authority, keys, NOW, revision_token="A" * 40)
    )
    assert bad.json()["code"] == "invalid_revision_token"
    revised = client.post(
        "/v1/publish", json=publish_body(authority, keys, NOW, revision_token=token)
    )
    assert revised.status_code == 200, revised.text
    rows = _rows(ctx)
    assert {r.revised_report_type for r in rows} == {1}
    assert {r.report_type for r in rows} == {2}
    again = client.post(
        "/v1/publish",
        json=publish_body(
            authority,
            keys,
            NOW,
            reportType="negative",
            revision_token=revised.json()["revisionToken"],
        ),
    )
    assert again.json()["code"] == "key_already_revised"


def test_illegal_transition(client: httpx.Client, ctx: ServerContext, authority: Authority) -> None:
    """confirmed → likely is not a legal revision (SPEC PUB-20)."""
    keys = day_keys(NOW, 2)
    first = client.post("/v1/publish", json=publish_body(authority, keys, NOW))
    token = first.json()["revisionToken"]
    response = client.post(
        "/v1/publish",
        json=publish_body(authority, keys, NOW, reportType="likely", revision_token=token),
    )
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_report_type_transition"


def test_unknown_health_authority_id(tmp_path, database_url, authority: Authority) -> None:
    """With an allow-list, another healthAuthorityID is refused with 401 (SPEC PUB-4)."""
    from phe_trace.server import create_app, register_health_authority

    from .conftest import make_settings

    settings = make_settings(tmp_path, database_url, allowed_health_authority_ids=["org.other"])
    ctx = ServerContext.open(settings, clock=SettableClock(NOW))
    register_health_authority(
        ctx.engine,
        issuer=authority.issuer,
        audience=authority.audience,
        name="HA",
        public_keys={authority.kid: authority.public_pem},
    )
    try:
        with LoopbackServer(create_app(context=ctx)) as live:
            response = httpx.post(
                f"{live.url}/v1/publish", json=publish_body(authority, day_keys(NOW, 2), NOW)
            )
        assert response.status_code == 401
        assert response.json()["code"] == "unknown_health_authority_id"
        assert _rows(ctx) == []
    finally:
        ctx.close()


def test_negative_first_upload_and_repeats(
    client: httpx.Client, ctx: ServerContext, authority: Authority
) -> None:
    """A first "negative" upload stores nothing; an unchanged re-upload is a no-op (PUB-24)."""
    keys = day_keys(NOW, 2)
    negative = client.post(
        "/v1/publish", json=publish_body(authority, keys, NOW, reportType="negative")
    )
    assert negative.status_code == 200 and negative.json()["insertedExposures"] == 0
    assert _rows(ctx) == []
    assert (
        client.post("/v1/publish", json=publish_body(authority, keys, NOW)).json()[
            "insertedExposures"
        ]
        == 2
    )
    again = client.post("/v1/publish", json=publish_body(authority, keys, NOW))
    assert again.status_code == 200 and again.json()["insertedExposures"] == 0
    assert len(_rows(ctx)) == 2
