"""Verification certificates: real ES256 JWTs signed with a fresh P-256 key (SPEC PUB-5 … PUB-8)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from phe_trace.protocol import certificate as cert
from phe_trace.protocol.diagnosis_key import ReportType
from phe_trace.protocol.tekmac import TekHmacKey

NOW = 1_795_000_000
KEY = ec.generate_private_key(ec.SECP256R1())
ISS, AUD = "ha", "ks"


def token(**overrides: object) -> str:
    claims = {
        "iss": ISS,
        "aud": AUD,
        "iat": NOW - 10,
        "nbf": NOW - 10,
        "exp": NOW + 900,
        "reportType": "confirmed",
        "tekmac": base64.b64encode(b"m" * 32).decode(),
    }
    claims.update(overrides)
    return jwt.encode(
        {k: v for k, v in claims.items() if v is not None},
        KEY,
        algorithm="ES256",
        headers={"kid": "v1"},
    )


def verify(tok: str, now: float = NOW, keys=None) -> cert.VerificationClaims:
    return cert.verify_certificate(
        tok,
        public_keys=keys or [KEY.public_key()],
        issuer=ISS,
        audience=AUD,
        now=now,
        clock_skew_seconds=60,
    )


def test_valid_certificate() -> None:
    """A well-formed ES256 certificate verifies and its claims read back (SPEC PUB-5)."""
    claims = verify(token(symptomOnsetInterval=2_990_000, jti="abc"))
    assert claims.report_type == "confirmed"
    assert claims.export_report_type == ReportType.CONFIRMED_TEST
    assert claims.symptom_onset_interval == 2_990_000
    assert claims.jti == "abc"
    assert cert.peek_certificate(token()) == (ISS, "v1")


@pytest.mark.parametrize(
    ("overrides", "now", "fragment"),
    [
        ({"exp": NOW - 61}, NOW, "expired"),
        ({}, NOW + 900 + 61, "expired"),
        ({"nbf": NOW + 120}, NOW, "not yet valid"),
        ({"iat": NOW + 120}, NOW, "future"),
        ({"aud": "other"}, NOW, "audience"),
        ({"reportType": "positive"}, NOW, "reportType"),
        ({"tekmac": None}, NOW, "tekmac"),
        ({"exp": None}, NOW, "exp"),
    ],
)
def test_claim_checks(overrides: dict, now: int, fragment: str) -> None:
    """exp/nbf/iat with clock skew, aud, reportType, tekmac are all enforced (PUB-5)."""
    with pytest.raises(cert.CertificateError, match=fragment):
        verify(token(**overrides), now=now)


def test_clock_skew_tolerated() -> None:
    """Within the skew an expired-by-seconds certificate is still accepted."""
    verify(token(exp=NOW - 30))


def test_forgeries_refused() -> None:
    """Other keys, HS256, alg none, wrong issuer and garbage are refused (SPEC PUB-5)."""
    other = ec.generate_private_key(ec.SECP256R1())
    forged = jwt.encode(
        {"iss": ISS, "aud": AUD, "exp": NOW + 60, "iat": NOW},
        other,
        algorithm="ES256",
        headers={"kid": "v1"},
    )
    with pytest.raises(cert.CertificateError, match="signature"):
        verify(forged)
    hs = jwt.encode(
        {"iss": ISS}, "secret-secret-secret-secret-32b!", algorithm="HS256", headers={"kid": "v1"}
    )
    with pytest.raises(cert.CertificateError, match="ES256"):
        verify(hs)
    none = jwt.encode({"iss": ISS}, None, algorithm="none", headers={"kid": "v1"})
    with pytest.raises(cert.CertificateError):
        verify(none)
    with pytest.raises(cert.CertificateError, match="issuer"):
        cert.verify_certificate(
            token(), public_keys=[KEY.public_key()], issuer="x", audience=AUD, now=NOW
        )
    for garbage in ("", "a.b.c", "x" * 100):
        with pytest.raises(cert.CertificateError):
            verify(garbage)


def test_sign_certificate_round_trip() -> None:
    """sign_certificate produces what verify_certificate accepts (the service's side)."""
    claims = cert.VerificationClaims(ISS, AUD, "likely", "dGVzdA==", NOW, NOW, NOW + 60)
    back = verify(cert.sign_certificate(claims, KEY, "v1"))
    assert back.report_type == "likely" and back.expires_at == NOW + 60


def _independent_hmac(hmac_key: bytes, keys: list[TekHmacKey], with_risk: bool) -> bytes:
    """The GAEN cleartext written out independently of the code under test."""
    parts = []
    for k in keys:
        fields = [
            base64.b64encode(k.key).decode(),
            str(k.rolling_start_number),
            str(k.rolling_period),
        ]
        if with_risk:
            fields.append(str(k.transmission_risk))
        parts.append(".".join(fields))
    return hmac.new(hmac_key, ",".join(sorted(parts)).encode(), hashlib.sha256).digest()


def test_tekmac_check() -> None:
    """tekmac is compared with the HMAC recomputed over the uploaded keys (SPEC PUB-6)."""
    keys = [TekHmacKey(secrets.token_bytes(16), 2_990_000 - 144 * i, 144, i % 3) for i in range(5)]
    hmac_key = secrets.token_bytes(32)
    mac = base64.b64encode(_independent_hmac(hmac_key, keys, True)).decode()
    claims = cert.VerificationClaims(ISS, AUD, "confirmed", mac, NOW, NOW, NOW + 60)
    cert.verify_tekmac(claims, hmac_key, keys)
    with pytest.raises(cert.CertificateError):
        cert.verify_tekmac(claims, hmac_key, keys[:-1])
    with pytest.raises(cert.CertificateError):
        cert.verify_tekmac(claims, secrets.token_bytes(32), keys)
    zero = [TekHmacKey(k.key, k.rolling_start_number, k.rolling_period, 0) for k in keys]
    legacy = base64.b64encode(_independent_hmac(hmac_key, zero, False)).decode()
    cert.verify_tekmac(
        cert.VerificationClaims(ISS, AUD, "confirmed", legacy, NOW, NOW, NOW + 60), hmac_key, zero
    )
    with pytest.raises(cert.CertificateError):  # legacy form only when all risks are 0
        cert.verify_tekmac(
            cert.VerificationClaims(ISS, AUD, "confirmed", legacy, NOW, NOW, NOW), hmac_key, keys
        )


def test_single_use_digest() -> None:
    """The single-use marker is SHA-256 of header.payload, whatever the signature's spelling.

    (SPEC PUB-7)
    """
    tok = token()
    head, payload, _ = tok.split(".")
    assert cert.certificate_digest(tok) == hashlib.sha256(f"{head}.{payload}".encode()).digest()
    assert cert.certificate_digest(f"{head}.{payload}.AAAA") == cert.certificate_digest(tok)
    assert cert.certificate_digest(token(jti="other")) != cert.certificate_digest(tok)
