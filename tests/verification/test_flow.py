"""The device flow over real HTTP: portal code → /api/verify → /api/certificate → JWKS check.

Known answers come from GAEN (claim names, ENIN of UTC midnight computed here with
``calendar.timegm``) and from Google's verification server v1 (field names, error codes).
"""

from __future__ import annotations

import base64
import calendar
import concurrent.futures
import hashlib
import hmac
import os
from collections.abc import Iterator
from datetime import timedelta

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from .conftest import Live, issue_code, portal_client


def _enin_of_midnight(day: str) -> int:
    y, m, d = (int(x) for x in day.split("-"))
    return calendar.timegm((y, m, d, 0, 0, 0, 0, 0, 0)) // 600


#: Padded device-API answers are 3–4 KiB (SPEC VER-2); base64 whole groups may end 3 short.
PADDED_MIN, PADDED_MAX = 3072, 4096


def _tekmac() -> str:
    """A device-side TEK HMAC: HMAC-SHA256 over one key's cleartext (GAEN verification protocol)."""
    key = base64.b64encode(os.urandom(16)).decode()
    cleartext = f"{key}.2700000.144.0".encode()
    return base64.b64encode(hmac.new(os.urandom(16), cleartext, hashlib.sha256).digest()).decode()


def _api(live: Live) -> httpx.Client:
    return httpx.Client(base_url=live.url, headers={"X-API-Key": live.api_key}, timeout=30)


def _verify(live: Live, code: str, accept: list[str] | None = None) -> httpx.Response:
    body: dict[str, object] = {"code": code}
    if accept is not None:
        body["accept"] = accept
    with _api(live) as api:
        return api.post("/api/verify", json=body)


def _certificate(live: Live, token: str, ekeyhmac: str) -> httpx.Response:
    with _api(live) as api:
        return api.post("/api/certificate", json={"token": token, "ekeyhmac": ekeyhmac})


def test_whole_flow_certificate_verifies_with_the_jwks(live: Live) -> None:
    """Portal code → token → certificate whose claims follow GAEN.

    (SPEC VER-1, VER-2, VER-5, VER-6, VER-7, VER-8)
    """
    now = live.clock.now()
    test_day = (now - timedelta(days=1)).date().isoformat()
    onset_day = (now - timedelta(days=3)).date().isoformat()
    with portal_client(live) as portal:
        issued = issue_code(portal, "confirmed", test_day, onset_day)
    assert len(issued.code) == 8 and issued.code.isdigit()

    verified = _verify(live, issued.code, ["confirmed"])
    assert verified.status_code == 200, verified.text
    body = verified.json()
    assert body["testtype"] == "confirmed"
    assert body["testDate"] == test_day and body["symptomDate"] == onset_day
    assert "error" not in body and "errorCode" not in body
    assert len(base64.b64decode(body["padding"])) >= 1024
    assert PADDED_MIN - 3 <= len(verified.content) <= PADDED_MAX

    mac = _tekmac()
    response = _certificate(live, body["token"], mac)
    assert response.status_code == 200, response.text
    certificate = response.json()["certificate"]

    header = jwt.get_unverified_header(certificate)
    assert header["alg"] == "ES256" and header["typ"] == "JWT"
    jwks = jwt.PyJWKClient(live.url + "/.well-known/jwks.json", cache_keys=False)
    signing_key = jwks.get_signing_key_from_jwt(certificate)
    assert signing_key.key_id == header["kid"]
    claims = jwt.decode(
        certificate,
        signing_key.key,
        algorithms=["ES256"],
        audience=live.service.settings.audience,
        issuer=live.service.settings.issuer,
    )
    unix = int(now.timestamp())
    skew = live.service.settings.allowed_clock_skew_seconds
    assert claims["iat"] == claims["nbf"] == unix - skew
    assert claims["exp"] == unix + 15 * 60
    assert claims["reportType"] == "confirmed"
    assert claims["tekmac"] == mac
    assert claims["symptomOnsetInterval"] == _enin_of_midnight(onset_day)
    assert claims["testDateInterval"] == _enin_of_midnight(test_day)


def test_long_code_works_after_the_short_code_expired(live: Live) -> None:
    """Short codes expire after 1 h, long codes after 24 h (SPEC VER-1, VER-3)."""
    with portal_client(live) as portal:
        first = issue_code(portal)
        second = issue_code(portal)
    live.clock.advance(timedelta(minutes=61))
    expired = _verify(live, first.code)
    assert expired.status_code == 400 and expired.json()["errorCode"] == "code_expired"
    by_long = _verify(live, second.long_code.upper())
    assert by_long.status_code == 200, by_long.text
    live.clock.advance(timedelta(hours=24))
    assert _verify(live, first.long_code).json()["errorCode"] == "code_expired"


def test_wrong_and_reused_codes_are_invalid(live: Live) -> None:
    """A wrong code and a used code both answer code_invalid (SPEC VER-2)."""
    with portal_client(live) as portal:
        issued = issue_code(portal)
    wrong = str((int(issued.code) + 1) % 10**8).zfill(8)
    response = _verify(live, wrong)
    assert response.status_code == 400 and response.json()["errorCode"] == "code_invalid"
    assert _verify(live, issued.code).status_code == 200
    reused = _verify(live, issued.code)
    assert reused.status_code == 400 and reused.json()["errorCode"] == "code_invalid"
    assert _verify(live, issued.long_code).json()["errorCode"] == "code_invalid"


def test_code_is_claimed_once_under_concurrent_requests(live_sqlite: Live) -> None:
    """Ten parallel exchanges of one code yield exactly one token (SPEC VER-2)."""
    live = live_sqlite
    live.service.verify_limiter = type(live.service.verify_limiter)(100, 60)
    with portal_client(live) as portal:
        issued = issue_code(portal)
    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        results = list(pool.map(lambda _: _verify(live, issued.code), range(10)))
    assert sorted(r.status_code for r in results) == [200] + [400] * 9


def test_expired_and_reused_tokens_are_refused(live: Live) -> None:
    """Tokens are single-use and expire (SPEC VER-5)."""
    with portal_client(live) as portal:
        a, b = issue_code(portal), issue_code(portal)
    token_a = _verify(live, a.code).json()["token"]
    token_b = _verify(live, b.code).json()["token"]
    assert _certificate(live, token_a, _tekmac()).status_code == 200
    reused = _certificate(live, token_a, _tekmac())
    assert reused.status_code == 400 and reused.json()["errorCode"] == "token_invalid"
    live.clock.advance(timedelta(minutes=live.service.settings.token_minutes + 1))
    expired = _certificate(live, token_b, _tekmac())
    assert expired.status_code == 400 and expired.json()["errorCode"] == "token_expired"
    unknown = _certificate(live, "not-a-token", _tekmac())
    assert unknown.json()["errorCode"] == "token_invalid"


@pytest.mark.parametrize(
    "ekeyhmac",
    [base64.b64encode(b"\x01" * 31).decode(), base64.b64encode(b"\x01" * 33).decode(), "%%%", ""],
)
def test_hmac_must_decode_to_32_bytes(live_sqlite: Live, ekeyhmac: str) -> None:
    """ekeyhmac not base64 of 32 bytes answers hmac_invalid; the token survives (SPEC VER-5)."""
    live = live_sqlite
    with portal_client(live) as portal:
        issued = issue_code(portal)
    token = _verify(live, issued.code).json()["token"]
    response = _certificate(live, token, ekeyhmac)
    assert response.status_code == 400 and response.json()["errorCode"] == "hmac_invalid"
    # URL-safe unpadded base64 of 32 bytes is accepted, as the key server accepts it.
    urlsafe = base64.urlsafe_b64encode(b"\xfb" * 32).decode().rstrip("=")
    assert _certificate(live, token, urlsafe).status_code == 200


def test_accept_hierarchy_and_unsupported_test_type(live_sqlite: Live) -> None:
    """accept follows GAEN v1's hierarchy; an unsupported type keeps the code (SPEC VER-4)."""
    live = live_sqlite
    with portal_client(live) as portal:
        likely = issue_code(portal, "likely")
        negative = issue_code(portal, "negative")
    refused = _verify(live, likely.code, ["confirmed"])
    assert refused.status_code == 412 and refused.json()["errorCode"] == "unsupported_test_type"
    assert _verify(live, negative.code, ["likely"]).status_code == 412
    assert _verify(live, likely.code, ["likely"]).json()["testtype"] == "likely"
    assert _verify(live, negative.code, []).json()["testtype"] == "negative"
    bad = _verify(live, "12345678", ["positive"])
    assert bad.status_code == 400 and bad.json()["errorCode"] == "invalid_test_type"


def test_certificate_fails_verification_for_wrong_audience_and_unknown_kid(live: Live) -> None:
    """A verifier refuses another audience and a kid not in the JWKS (SPEC VER-6, VER-8)."""
    with portal_client(live) as portal:
        issued = issue_code(portal)
    token = _verify(live, issued.code).json()["token"]
    certificate = _certificate(live, token, _tekmac()).json()["certificate"]
    jwks = jwt.PyJWKClient(live.url + "/.well-known/jwks.json", cache_keys=False)
    key = jwks.get_signing_key_from_jwt(certificate).key
    with pytest.raises(jwt.InvalidAudienceError):
        jwt.decode(certificate, key, algorithms=["ES256"], audience="some-other-key-server")
    claims = jwt.decode(certificate, options={"verify_signature": False})
    forged_key = ec.generate_private_key(ec.SECP256R1())
    forged = jwt.encode(claims, forged_key, algorithm="ES256", headers={"kid": "v99"})
    with pytest.raises(jwt.PyJWKClientError):
        jwks.get_signing_key_from_jwt(forged)
    real_kid = jwt.get_unverified_header(certificate)["kid"]
    same_kid = jwt.encode(claims, forged_key, algorithm="ES256", headers={"kid": real_kid})
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(
            same_kid,
            jwks.get_signing_key_from_jwt(same_kid).key,
            algorithms=["ES256"],
            audience=live.service.settings.audience,
        )


def test_api_key_is_required_and_revocable(live_sqlite: Live) -> None:
    """Missing, unknown or revoked X-API-Key answers 401 unauthorized (SPEC VER-9)."""
    live = live_sqlite
    with httpx.Client(base_url=live.url) as anon:
        missing = anon.post("/api/verify", json={"code": "12345678"})
        assert missing.status_code == 401 and missing.json()["errorCode"] == "unauthorized"
        wrong = anon.post(
            "/api/verify", json={"code": "12345678"}, headers={"X-API-Key": "phev1_nope"}
        )
        assert wrong.status_code == 401
    key_id = live.service.accounts.list_api_keys(live.realm.id)[0].id
    live.service.accounts.revoke_api_key(live.realm.id, key_id, "test")
    assert _verify(live, "12345678").status_code == 401


_COMMON_BAD = [b"not json", b"[]", b"", b'"code"', b"{"]


@pytest.mark.parametrize(
    ("path", "content"),
    [("/api/verify", c) for c in [*_COMMON_BAD, b'{"code": 12345678}', b'{"accept": "likely"}']]
    + [("/api/certificate", c) for c in [*_COMMON_BAD, b'{"token": 5}', b'{"ekeyhmac": []}']],
)
def test_unparsable_requests_answer_400(live_sqlite: Live, path: str, content: bytes) -> None:
    """Bad bodies answer unparsable_request, never a 5xx (SPEC VER-2)."""
    with _api(live_sqlite) as api:
        response = api.post(path, content=content, headers={"Content-Type": "application/json"})
    assert response.status_code == 400, response.text
    assert response.json()["errorCode"] == "unparsable_request"


def test_maintenance_mode_refuses_device_api_and_issuance(live_sqlite: Live) -> None:
    """Maintenance mode answers 429 maintenance_mode (SPEC VER-11)."""
    live = live_sqlite
    with portal_client(live) as portal:
        issued = issue_code(portal)
        live.service.accounts.set_maintenance_mode(True, "test")
        response = _verify(live, issued.code)
        assert response.status_code == 429 and response.json()["errorCode"] == "maintenance_mode"
        form = portal.get("/portal/codes/new").text
        from .conftest import csrf_of

        refused = portal.post(
            "/portal/codes",
            data={"csrf_token": csrf_of(form), "test_type": "confirmed", "test_date": ""},
        )
        assert refused.status_code == 429 and 'data-code="maintenance_mode"' in refused.text
        live.service.accounts.set_maintenance_mode(False, "test")
    assert _verify(live, issued.code).status_code == 200


def test_verify_is_rate_limited_per_api_key(live_sqlite: Live) -> None:
    """Past the per-key limit /api/verify answers 429 too_many_requests (SPEC VER-11)."""
    live = live_sqlite
    limit = live.service.settings.verify_rate_limit
    _, other_key = live.service.accounts.create_api_key(live.realm.id, "other-app", "test")
    with _api(live) as api:
        codes = [
            api.post("/api/verify", json={"code": "00000000"}).status_code for _ in range(limit)
        ]
        assert set(codes) == {400}
        limited = api.post("/api/verify", json={"code": "00000000"})
        assert limited.status_code == 429
        assert limited.json()["errorCode"] == "too_many_requests"
        assert 1 <= int(limited.headers["Retry-After"]) <= 60
    with httpx.Client(base_url=live.url, headers={"X-API-Key": other_key}) as other:
        assert other.post("/api/verify", json={"code": "00000000"}).status_code == 400
    live.clock.advance(timedelta(seconds=live.service.settings.verify_rate_window_seconds))
    assert _verify(live, "00000000").status_code == 400


def test_chaff_requests_touch_nothing(live_sqlite: Live) -> None:
    """A request with X-Chaff gets a padded 200 and leaves the code unclaimed (SPEC VER-2)."""
    live = live_sqlite
    with portal_client(live) as portal:
        issued = issue_code(portal)
    with _api(live) as api:
        chaff = api.post("/api/verify", json={"code": issued.code}, headers={"X-Chaff": "1"})
    assert chaff.status_code == 200
    assert set(chaff.json()) == {"testtype", "symptomDate", "testDate", "token", "padding"}
    assert _verify(live, issued.code).status_code == 200
    fake_token = chaff.json()["token"]
    refused = _certificate(live, fake_token, _tekmac())  # a chaff token is worth nothing
    assert refused.status_code == 400 and refused.json()["errorCode"] == "token_invalid"


def test_chaff_answers_have_the_shape_and_size_of_real_ones(live_sqlite: Live) -> None:
    """Over many requests chaff and real answers share status, fields and size range.

    Neither the fields nor the body size (the part TLS does not hide) tell a chaff
    answer from a real one; the chaff certificate does not verify with the service's
    keys. (SPEC VER-2, VER-5)
    """
    live = live_sqlite
    rounds = 12
    day = live.clock.now().date()
    real: dict[str, list[httpx.Response]] = {"verify": [], "certificate": []}
    chaff: dict[str, list[httpx.Response]] = {"verify": [], "certificate": []}
    with _api(live) as api:
        for _ in range(rounds):
            code = live.service.issue_code(live.worker, "confirmed", day, day).code
            mac = _tekmac()
            fake = {"X-Chaff": "1"}
            chaff["verify"].append(api.post("/api/verify", json={"code": code}, headers=fake))
            verified = api.post("/api/verify", json={"code": code})
            real["verify"].append(verified)
            token = verified.json()["token"]
            body = {"token": token, "ekeyhmac": mac}
            chaff["certificate"].append(api.post("/api/certificate", json=body, headers=fake))
            real["certificate"].append(api.post("/api/certificate", json=body))
    for endpoint in ("verify", "certificate"):
        answers = real[endpoint] + chaff[endpoint]
        assert {r.status_code for r in answers} == {200}, endpoint
        assert len({frozenset(r.json()) for r in answers}) == 1, endpoint
        assert len({frozenset(_headers(r)) for r in answers}) == 1, endpoint
        for r in answers:
            assert PADDED_MIN - 3 <= len(r.content) <= PADDED_MAX, (endpoint, len(r.content))
        # same size distribution: neither kind sits in a corner of the range
        real_sizes = sorted(len(r.content) for r in real[endpoint])
        chaff_sizes = sorted(len(r.content) for r in chaff[endpoint])
        assert real_sizes[0] < chaff_sizes[-1] and chaff_sizes[0] < real_sizes[-1], endpoint
    jwks = jwt.PyJWKClient(live.url + "/.well-known/jwks.json", cache_keys=False)
    for r in chaff["certificate"]:
        certificate = r.json()["certificate"]
        header = jwt.get_unverified_header(certificate)
        assert header["alg"] == "ES256" and header["typ"] == "JWT"
        with pytest.raises(jwt.InvalidSignatureError):
            jwt.decode(
                certificate,
                jwks.get_signing_key_from_jwt(certificate).key,
                algorithms=["ES256"],
                audience=live.service.settings.audience,
                issuer=live.service.settings.issuer,
            )


def _headers(response: httpx.Response) -> set[str]:
    return {k.lower() for k in response.headers if k.lower() not in ("date", "content-length")}


def _streamed(data: bytes) -> Iterator[bytes]:
    """``data`` in pieces, sent without a Content-Length (chunked)."""
    for start in range(0, len(data), 4096):
        yield data[start : start + 4096]


@pytest.mark.parametrize("streamed", [False, True])
def test_bodies_over_the_limit_answer_413_and_claim_nothing(
    live_sqlite: Live, streamed: bool
) -> None:
    """A device-API body over max_body_bytes is 413 unparsable_request, padded, and the code
    it carries stays unclaimed; a portal form over it is the framework's 413; a body at the
    limit is read (SPEC VER-18)."""
    live = live_sqlite
    limit = live.service.settings.max_body_bytes
    with portal_client(live) as portal:
        code = issue_code(portal).code

    def verify_body(size: int) -> bytes:
        head = b'{"code": "' + code.encode() + b'", "padding": "'
        return head + b"A" * (size - len(head) - 2) + b'"}'

    def post(api: httpx.Client, path: str, body: bytes) -> httpx.Response:
        content = _streamed(body) if streamed else body
        return api.post(path, content=content, headers={"Content-Type": "application/json"})

    with _api(live) as api:
        response = post(api, "/api/verify", verify_body(limit + 1))
        assert response.status_code == 413, response.text
        assert response.json()["errorCode"] == "unparsable_request"
        assert 3072 <= len(response.content) <= 4096  # padded like every answer (VER-2)
        big = b'{"token": "' + b"t" * limit + b'", "ekeyhmac": "' + _tekmac().encode() + b'"}'
        response = post(api, "/api/certificate", big)
        assert response.status_code == 413, response.text
        assert response.json()["errorCode"] == "unparsable_request"
        response = post(api, "/api/verify", verify_body(limit))
        assert response.status_code == 200, response.text  # the code was still unclaimed
        assert response.json()["testtype"] == "confirmed"
    form = b"username=worker&password=" + b"p" * limit
    with httpx.Client(base_url=live.url, timeout=30) as client:
        response = client.post(
            "/portal/login",
            content=_streamed(form) if streamed else form,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
    assert response.status_code == 413, response.text
    assert response.json() == {"detail": f"body exceeds {limit} bytes"}
    assert response.headers["X-Frame-Options"] == "DENY"  # a portal answer like the others
