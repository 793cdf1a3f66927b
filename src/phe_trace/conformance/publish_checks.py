"""Checks of ``POST /v1/publish`` (SPEC §11, PUB): validation, errors, certificates, chaff.

Every check uploads fresh random keys, so checks are independent of each other and of
whatever the server already holds. A refusal is followed, where it matters, by the same
keys under a valid certificate: ``insertedExposures`` equal to the number of keys then
shows from the outside that the refused request stored nothing.
"""

from __future__ import annotations

import secrets
from dataclasses import replace
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric import ec

from phe_trace.crypto import TEK_ROLLING_PERIOD

from .client import KeyServerClient, TestKey, day_keys, today_start
from .model import Battery, Check, expect, expect_refusal, json_of

__all__ = ["PUBLISH_CHECKS"]

BAD_REQUEST = "bad_request"
CERT_INVALID = "health_authority_verification_certificate_invalid"
UNKNOWN_HA = "unknown_health_authority_id"
#: Keys of a GAEN success response (ENS ``PublishResponse``).
RESPONSE_FIELDS = {"revisionToken", "insertedExposures", "padding"}
#: Fields every publish answer carries, success or error (GAEN v1, PUB-1).
RESPONSE_FIELDS_ALL = RESPONSE_FIELDS | {"error", "code"}


def _accepted(
    b: Battery, keys: list[TestKey], *, expect_inserted: int | None = None
) -> dict[str, Any]:
    response = b.client.publish(b.client.body(keys, b.now))
    body = json_of(response)
    expect(response.status_code == 200, f"valid upload got HTTP {response.status_code}: {body}")
    inserted = body.get("insertedExposures")
    wanted = len(keys) if expect_inserted is None else expect_inserted
    expect(inserted == wanted, f"insertedExposures {inserted}, expected {wanted}")
    return body


def valid_publish(b: Battery) -> str:
    keys = day_keys(b.now, 3)
    body = _accepted(b, keys)
    token = str(body.get("revisionToken") or "")
    expect(len(token) > 0, "no revisionToken in the success answer")
    expect(not body.get("code"), f"success carries error code {body.get('code')!r}")
    b.published.extend(keys)
    return f"3 keys inserted, revision token {len(token)} chars"


def response_padding(b: Battery) -> str:
    ok = json_of(b.client.publish(b.client.body(day_keys(b.now, 1), b.now)))
    refused = json_of(b.client.publish(b"{"))
    for name, body in (("success", ok), ("refusal", refused)):
        missing = RESPONSE_FIELDS_ALL - set(body)
        expect(not missing, f"{name} answer lacks {sorted(missing)}")
    sizes = [len(str(ok.get("padding", ""))), len(str(refused.get("padding", "")))]
    expect(sizes[0] > 0, "success answer is not padded")
    expect(sizes[1] > 0, "error answer is not padded")
    return f"padding {sizes[0]} chars (success), {sizes[1]} chars (refusal)"


def malformed_json(b: Battery) -> None:
    expect_refusal(b.client.publish(b'{"temporaryExposureKeys": ['), 400, {BAD_REQUEST})


def wrong_types(b: Battery) -> None:
    body = b.client.body(day_keys(b.now, 1), b.now)
    body["temporaryExposureKeys"][0]["rollingStartNumber"] = "yesterday"
    expect_refusal(b.client.publish(body), 400, {BAD_REQUEST})


def oversized_body(b: Battery) -> None:
    body = b.client.body(day_keys(b.now, 1), b.now)
    body["padding"] = "A" * (1 << 20)
    response = b.client.publish(body)
    expect(response.status_code == 413, f"1 MiB body got HTTP {response.status_code}")


def _refused_then_clean(
    b: Battery, keys: list[TestKey], response: httpx.Response, status: int, codes: set[str]
) -> None:
    expect_refusal(response, status, codes)
    _accepted(b, keys)  # every key is new: the refusal stored nothing


def foreign_signature(b: Battery) -> None:
    keys = day_keys(b.now, 2)
    other = ec.generate_private_key(ec.SECP256R1())
    response = b.client.publish(b.client.body(keys, b.now, signing_key=other))
    _refused_then_clean(b, keys, response, 401, {CERT_INVALID})


def expired_certificate(b: Battery) -> None:
    keys = day_keys(b.now, 2)
    response = b.client.publish(b.client.body(keys, b.now, issued_at=b.now - 7200))
    _refused_then_clean(b, keys, response, 401, {CERT_INVALID})


def unknown_issuer(b: Battery) -> None:
    config = replace(b.client.config, issuer="https://unregistered.conformance.invalid")
    stranger = KeyServerClient(config, b.client.http)
    body = stranger.body(day_keys(b.now, 2), b.now)
    expect_refusal(b.client.publish(body), 401, {CERT_INVALID, UNKNOWN_HA})


def tekmac_mismatch(b: Battery) -> None:
    keys = day_keys(b.now, 3)
    body = b.client.body(keys, b.now)
    body["temporaryExposureKeys"][1]["transmissionRisk"] = 7
    _refused_then_clean(b, keys, b.client.publish(body), 401, {CERT_INVALID})


def certificate_replay(b: Battery) -> str:
    keys = day_keys(b.now, 2)
    body = b.client.body(keys, b.now)
    first = b.client.publish(body)
    expect(first.status_code == 200, f"first use got HTTP {first.status_code}")
    replay = dict(body, temporaryExposureKeys=[k.wire() for k in reversed(keys)])
    expect_refusal(b.client.publish(replay), 401, {CERT_INVALID})
    return "second use refused"


def too_many_keys(b: Battery) -> None:
    keys = day_keys(b.now, b.client.config.max_keys + 1)
    expect_refusal(b.client.publish(b.client.body(keys, b.now)), 400, {BAD_REQUEST})


def bad_key_dropped(b: Battery) -> str:
    start = today_start(b.now)
    bad = [
        *day_keys(b.now, 1, first_day_back=20),  # ended before now − 15 days
        TestKey(secrets.token_bytes(16), start + TEK_ROLLING_PERIOD),  # starts tomorrow
        TestKey(secrets.token_bytes(16), start - 5 * TEK_ROLLING_PERIOD, 144, 9),  # risk 9
        TestKey(secrets.token_bytes(16), start - 6 * TEK_ROLLING_PERIOD, 0),  # period 0
    ]
    keys = day_keys(b.now, 2) + bad
    response = b.client.publish(b.client.body(keys, b.now))
    body = json_of(response)
    expect(response.status_code == 200, f"got HTTP {response.status_code}, expected 200")
    expect(body.get("insertedExposures") == 2, f"insertedExposures {body.get('insertedExposures')}")
    expect(body.get("code") == "partial_failure", f"code {body.get('code')!r}, not partial_failure")
    warnings = body.get("warnings") or []
    expect(len(warnings) >= len(bad), f"{len(warnings)} warnings for {len(bad)} dropped keys")
    return "old, future, risk 9 and period 0 keys dropped with warnings; 2 stored"


def repeated_upload(b: Battery) -> str:
    keys = day_keys(b.now, 2)
    _accepted(b, keys)
    again = _accepted(b, keys, expect_inserted=0)
    expect(not again.get("code"), f"re-upload answered code {again.get('code')!r}")
    return "the same keys again: 200, insertedExposures 0"


def odd_bodies(b: Battery) -> str:
    cases: list[bytes] = [
        b"", b"[]", b"null", b'"text"', b'{"temporaryExposureKeys": null}',
        b'{"temporaryExposureKeys": [{"key": 1}]}',
        b'{"temporaryExposureKeys": [], "verificationPayload": "x", "hmacKey": "y"}',
        b'{"temporaryExposureKeys": [{"key": "AAAA", "rollingStartNumber": 1e400}]}',
        b'{"temporaryExposureKeys": [{"key": "%%%", "rollingStartNumber": -1,'
        b' "rollingPeriod": 144}], "verificationPayload": "a.b.c", "hmacKey": "!!"}',
    ]  # fmt: skip
    statuses = []
    for raw in cases:
        response = b.client.publish(raw)
        statuses.append(response.status_code)
        expect(400 <= response.status_code < 500, f"{raw[:40]!r} got HTTP {response.status_code}")
        expect(bool(json_of(response).get("code")), f"{raw[:40]!r}: no code in the answer")
    return f"{len(cases)} malformed bodies: {sorted(set(statuses))}"


def overlapping_keys(b: Battery) -> None:
    start = today_start(b.now) - TEK_ROLLING_PERIOD
    keys = [
        TestKey(secrets.token_bytes(16), start),
        TestKey(secrets.token_bytes(16), start + 72, 72),
    ]
    expect_refusal(b.client.publish(b.client.body(keys, b.now)), 400, {BAD_REQUEST})


def duplicate_key(b: Battery) -> None:
    (key,) = day_keys(b.now, 1)
    expect_refusal(b.client.publish(b.client.body([key, key], b.now)), 400, {BAD_REQUEST})


def same_start(b: Battery) -> None:
    start = today_start(b.now) - TEK_ROLLING_PERIOD
    keys = [TestKey(secrets.token_bytes(16), start, p) for p in (144, 100, 50, 10)]
    expect_refusal(b.client.publish(b.client.body(keys, b.now)), 400, {BAD_REQUEST})


def same_day_key(b: Battery) -> str:
    key = TestKey(secrets.token_bytes(16), today_start(b.now))
    _accepted(b, [key])
    b.published.append(key)
    return "still-valid key accepted (its export is checked by the embargo row)"


def revision(b: Battery) -> str:
    keys = day_keys(b.now, 2)
    first = json_of(b.client.publish(b.client.body(keys, b.now, report_type="likely")))
    token = str(first.get("revisionToken", ""))
    expect(bool(token), "likely upload returned no revision token")
    missing = b.client.publish(b.client.body(keys, b.now))
    expect_refusal(missing, 400, {"missing_revision_token"})
    revised = b.client.publish(b.client.body(keys, b.now, revision_token=token))
    expect(revised.status_code == 200, f"likely→confirmed with token got {revised.status_code}")
    again = b.client.publish(b.client.body(keys, b.now, report_type="likely", revision_token=token))
    expect(again.status_code == 400, f"a second revision got HTTP {again.status_code}")
    return "likely→confirmed needs and accepts the token; a second revision is refused"


def illegal_transition(b: Battery) -> None:
    keys = day_keys(b.now, 2)
    token = str(json_of(b.client.publish(b.client.body(keys, b.now))).get("revisionToken", ""))
    body = b.client.body(keys, b.now, report_type="likely", revision_token=token)
    expect_refusal(b.client.publish(body), 400, {"invalid_report_type_transition"})


def chaff(b: Battery) -> str:
    keys = day_keys(b.now, 3)
    body = b.client.body(keys, b.now)
    fake = b.client.publish(body, headers={"X-Chaff": "1"})
    real = b.client.publish(body)
    fake_body, real_body = json_of(fake), json_of(real)
    expect(
        fake.status_code == real.status_code == 200,
        f"chaff {fake.status_code}, real {real.status_code}",
    )
    expect(
        set(fake_body) == set(real_body),
        f"fields differ: {sorted(set(fake_body) ^ set(real_body))}",
    )
    expect(RESPONSE_FIELDS <= set(fake_body), "chaff answer lacks GAEN fields")
    expect(
        real_body.get("insertedExposures") == 3,
        "the chaff request consumed the certificate or stored keys",
    )
    return "same status and fields; the chaff stored nothing and did not use the certificate"


PUBLISH_CHECKS: tuple[Check, ...] = (
    Check(("PUB-1",), "valid upload is accepted with a revision token", valid_publish),
    Check(("PUB-1", "PUB-22"), "answers (success and refusal) are padded", response_padding),
    Check(("PUB-2",), "malformed JSON → 400 bad_request", malformed_json),
    Check(("PUB-2",), "wrong JSON types → 400 bad_request", wrong_types),
    Check(("PUB-2",), "odd bodies → 4xx with a code, never 5xx", odd_bodies),
    Check(("PUB-3",), "oversized body (1 MiB) → 413", oversized_body),
    Check(("PUB-5",), "certificate signed by another key → 401, nothing stored", foreign_signature),
    Check(("PUB-5",), "expired certificate → 401, nothing stored", expired_certificate),
    Check(("PUB-5", "PUB-8"), "certificate of an unregistered issuer → 401", unknown_issuer),
    Check(("PUB-6", "HMAC-3"), "keys changed after certification → 401", tekmac_mismatch),
    Check(("PUB-7",), "a certificate is accepted once", certificate_replay),
    Check(("PUB-11",), "more keys than the maximum → 400", too_many_keys),
    Check(("PUB-12",), "bad keys dropped with warnings, the rest stored", bad_key_dropped),
    Check(("PUB-24",), "the same keys uploaded again insert nothing", repeated_upload),
    Check(("PUB-13",), "overlapping keys → 400", overlapping_keys),
    Check(("PUB-18",), "the same key twice → 400", duplicate_key),
    Check(("PUB-14",), "four keys sharing a start → 400", same_start),
    Check(("PUB-16",), "today's (still valid) key is accepted", same_day_key),
    Check(("PUB-19", "PUB-21"), "revision needs the revision token, once", revision),
    Check(("PUB-20",), "confirmed → likely is refused", illegal_transition),
    Check(("PUB-23",), "chaff (X-Chaff) answered like a success, nothing stored", chaff),
)
