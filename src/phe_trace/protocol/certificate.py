"""The verification certificate: an ES256 JWT from the health authority's verification service.

``protocol_spec/SPEC.md`` §11 (PUB-5 … PUB-8). The certificate says "a health authority
verified a diagnosis of this report type" and binds it, through ``tekmac``, to the keys
the device will upload — without naming the person. Claims as in GAEN's verification
protocol: ``iss``, ``aud``, ``iat``, ``nbf``, ``exp``, ``reportType``, optional
``symptomOnsetInterval`` and ``testDateInterval``, ``tekmac`` (base64 HMAC-SHA256), and an
optional ``jti``; header ``alg=ES256`` with the signing key's ``kid``.

Time is passed in: :func:`verify_certificate` checks ``exp``/``nbf``/``iat`` against the
caller's ``now`` with a clock skew, never against the machine clock. Every failure raises
one :class:`CertificateError` whose message says which check failed (the certificate is
not secret material; the reason helps operators) but never echoes the token.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import jwt
from cryptography.hazmat.primitives.asymmetric import ec

from phe_trace.crypto.compare import same_text

from .diagnosis_key import ReportType
from .errors import CertificateError, TekHmacError
from .tekmac import TekHmacKey, decode_base64

__all__ = [
    "ALGORITHM",
    "REPORT_TYPES",
    "CertificateError",
    "VerificationClaims",
    "certificate_digest",
    "peek_certificate",
    "sign_certificate",
    "verify_certificate",
    "verify_tekmac",
]

#: The only signature algorithm accepted (PUB-5).
ALGORITHM: Final = "ES256"
#: ``reportType`` claim values and the export report type each maps to (GAEN).
REPORT_TYPES: Final[dict[str, ReportType]] = {
    "confirmed": ReportType.CONFIRMED_TEST,
    "likely": ReportType.CONFIRMED_CLINICAL_DIAGNOSIS,
    "negative": ReportType.REVOKED,
    "user-report": ReportType.SELF_REPORT,
}


@dataclass(frozen=True, slots=True)
class VerificationClaims:
    """The claims of a verification certificate, in the protocol's words."""

    issuer: str
    audience: str
    report_type: str
    tekmac: str
    issued_at: int
    not_before: int
    expires_at: int
    symptom_onset_interval: int | None = None
    test_date_interval: int | None = None
    jti: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_payload(self) -> dict[str, Any]:
        """The JWT payload dictionary (GAEN claim names)."""
        payload: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "iat": self.issued_at,
            "nbf": self.not_before,
            "exp": self.expires_at,
            "reportType": self.report_type,
            "tekmac": self.tekmac,
        }
        if self.symptom_onset_interval is not None:
            payload["symptomOnsetInterval"] = self.symptom_onset_interval
        if self.test_date_interval is not None:
            payload["testDateInterval"] = self.test_date_interval
        if self.jti is not None:
            payload["jti"] = self.jti
        payload.update(self.extra)
        return payload

    @property
    def export_report_type(self) -> ReportType:
        """The export ``ReportType`` of the ``reportType`` claim."""
        return REPORT_TYPES[self.report_type]


def sign_certificate(
    claims: VerificationClaims, private_key: ec.EllipticCurvePrivateKey, key_id: str
) -> str:
    """Sign ``claims`` as an ES256 JWT with header ``kid`` (the verification service's side)."""
    if not isinstance(private_key.curve, ec.SECP256R1):
        raise CertificateError("certificate signing key must be P-256")
    return jwt.encode(
        claims.to_payload(), private_key, algorithm=ALGORITHM, headers={"kid": key_id}
    )


def certificate_digest(token: str) -> bytes:
    """The single-use marker of a certificate a key server stores (PUB-7).

    SHA-256 of the signing input (``header.payload``), not of the whole text: ECDSA
    signatures are malleable (``(r, s)`` and ``(r, n − s)`` both verify), so the same
    certificate has several valid spellings, but only one signed header and payload.
    """
    signing_input = token.rsplit(".", 1)[0]
    return hashlib.sha256(signing_input.encode("utf-8", "surrogatepass")).digest()


def _b64url_json(segment: str) -> Any:
    padded = segment + "=" * (-len(segment) % 4)
    try:
        return json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (ValueError, UnicodeError, binascii.Error):
        raise CertificateError("certificate is not a well-formed JWT") from None


def peek_certificate(token: str) -> tuple[str, str]:
    """``(issuer, kid)`` of an unverified token, to find the keys to verify it with."""
    parts = token.split(".") if isinstance(token, str) else []
    if len(parts) != 3:
        raise CertificateError("certificate is not a well-formed JWT")
    header, payload = _b64url_json(parts[0]), _b64url_json(parts[1])
    if not isinstance(header, dict) or not isinstance(payload, dict):
        raise CertificateError("certificate is not a well-formed JWT")
    if header.get("alg") != ALGORITHM:
        raise CertificateError(f"certificate algorithm must be {ALGORITHM}")
    kid, iss = header.get("kid"), payload.get("iss")
    if not isinstance(kid, str) or not kid:
        raise CertificateError("certificate header has no kid")
    if not isinstance(iss, str) or not iss:
        raise CertificateError("certificate has no issuer")
    return iss, kid


def verify_certificate(
    token: str,
    *,
    public_keys: Sequence[ec.EllipticCurvePublicKey],
    issuer: str,
    audience: str,
    now: float,
    clock_skew_seconds: float = 60.0,
) -> VerificationClaims:
    """Verify signature and claims of ``token`` at unix time ``now`` (PUB-5, PUB-6).

    ``public_keys`` are the keys the health authority registered under the token's
    ``kid``; the token verifies if any of them verifies it.
    """
    found_iss, _ = peek_certificate(token)
    if not same_text(found_iss, issuer):
        raise CertificateError("certificate issuer does not match")
    payload = _verified_payload(token, public_keys)
    return _check_claims(payload, audience=audience, now=now, skew=clock_skew_seconds)


def _verified_payload(
    token: str, public_keys: Sequence[ec.EllipticCurvePublicKey]
) -> dict[str, Any]:
    options: Any = {
        "verify_exp": False,
        "verify_nbf": False,
        "verify_iat": False,
        "verify_aud": False,
        "verify_iss": False,
    }
    for key in public_keys:
        try:
            payload: dict[str, Any] = jwt.decode(
                token, key, algorithms=[ALGORITHM], options=options
            )
        except jwt.InvalidSignatureError:
            continue
        except (jwt.PyJWTError, ValueError, TypeError):
            raise CertificateError("certificate is not a well-formed JWT") from None
        return payload
    raise CertificateError("certificate signature does not verify")


def _int_claim(payload: dict[str, Any], name: str, *, required: bool) -> int | None:
    value = payload.get(name)
    if value is None:
        if required:
            raise CertificateError(f"certificate claim {name} is missing")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CertificateError(f"certificate claim {name} must be a number")
    if not 0 <= value < 2**63:
        raise CertificateError(f"certificate claim {name} is out of range")
    return int(value)


def _check_claims(
    payload: dict[str, Any], *, audience: str, now: float, skew: float
) -> VerificationClaims:
    aud = payload.get("aud")
    audiences = aud if isinstance(aud, list) else [aud]
    if audience not in audiences:
        raise CertificateError("certificate audience does not match")
    exp = _int_claim(payload, "exp", required=True)
    nbf = _int_claim(payload, "nbf", required=False)
    iat = _int_claim(payload, "iat", required=True)
    assert exp is not None and iat is not None
    if now - skew >= exp:
        raise CertificateError("certificate has expired")
    if nbf is not None and now + skew < nbf:
        raise CertificateError("certificate is not yet valid")
    if now + skew < iat:
        raise CertificateError("certificate was issued in the future")
    report_type = payload.get("reportType")
    if not isinstance(report_type, str) or report_type not in REPORT_TYPES:
        raise CertificateError("certificate reportType is missing or unknown")
    tekmac = payload.get("tekmac")
    if not isinstance(tekmac, str) or not tekmac:
        raise CertificateError("certificate tekmac is missing")
    onset = _int_claim(payload, "symptomOnsetInterval", required=False)
    test_date = _int_claim(payload, "testDateInterval", required=False)
    jti = payload.get("jti")
    return VerificationClaims(
        issuer=str(payload.get("iss")),
        audience=audience,
        report_type=report_type,
        tekmac=tekmac,
        issued_at=iat,
        not_before=nbf if nbf is not None else iat,
        expires_at=exp,
        symptom_onset_interval=onset if onset is not None and onset <= 0xFFFFFFFF else None,
        test_date_interval=test_date if test_date is not None and test_date <= 0xFFFFFFFF else None,
        jti=jti if isinstance(jti, str) and jti else None,
    )


def verify_tekmac(claims: VerificationClaims, hmac_key: bytes, keys: Sequence[TekHmacKey]) -> None:
    """Recompute the TEK HMAC over ``keys`` and compare with ``tekmac`` in constant time.

    The legacy 3-field form is accepted when every transmission risk is 0 (PUB-6, HMAC-3).
    """
    try:
        expected = decode_base64(claims.tekmac, name="tekmac")
    except TekHmacError:
        raise CertificateError("certificate tekmac does not match the keys") from None
    candidates = [_cleartext(keys, include_risk=True)]
    if all(k.transmission_risk == 0 for k in keys):
        candidates.append(_cleartext(keys, include_risk=False))
    if len(hmac_key) < 16:
        raise CertificateError("hmacKey is shorter than 128 bits")
    ok = False
    for text in candidates:
        ok |= hmac.compare_digest(hmac.digest(hmac_key, text, "sha256"), expected)
    if not ok:
        raise CertificateError("certificate tekmac does not match the keys")


def _cleartext(keys: Sequence[TekHmacKey], *, include_risk: bool) -> bytes:
    """The HMAC-2 cleartext, tolerating keys of a wrong length (they are dropped later)."""
    parts = []
    for k in keys:
        fields = [
            base64.b64encode(k.key).decode("ascii"),
            str(k.rolling_start_number),
            str(k.rolling_period),
        ]
        if include_risk:
            fields.append(str(k.transmission_risk))
        parts.append(".".join(fields))
    return ",".join(sorted(parts)).encode("ascii")
