"""Test helpers for the key server: real P-256 certificates, real TEK uploads."""

from __future__ import annotations

import base64
import datetime as dt
import secrets
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from phe_trace.protocol.tekmac import TekHmacKey, tek_hmac

#: A fixed "now" for tests: 2026-11-20 12:34:56 UTC.
NOW = dt.datetime(2026, 11, 20, 12, 34, 56, tzinfo=dt.UTC).timestamp()
ISSUER = "https://ha.example/verification"
AUDIENCE = "https://keys.example/publish"
KID = "v1"


@dataclass
class Authority:
    """A health authority's signing key, able to issue certificates."""

    private_key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    issuer: str = ISSUER
    audience: str = AUDIENCE
    kid: str = KID

    @property
    def public_pem(self) -> str:
        return (
            self.private_key.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )

    def certificate(self, tekmac: bytes, now: float, **overrides: Any) -> str:
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "iat": int(now) - 60,
            "nbf": int(now) - 60,
            "exp": int(now) + 900,
            "reportType": "confirmed",
            "tekmac": base64.b64encode(tekmac).decode(),
        }
        claims.update(overrides)
        claims = {k: v for k, v in claims.items() if v is not None}
        return jwt.encode(claims, self.private_key, algorithm="ES256", headers={"kid": self.kid})


def interval(now: float) -> int:
    return int(now // 600)


def day_keys(
    now: float, days: int, *, first_day_back: int = 1, risk: int = 0
) -> list[dict[str, Any]]:
    """``days`` full-day keys for the days before ``now`` (most recent first)."""
    today = interval(now) - interval(now) % 144
    return [
        {
            "key": base64.b64encode(secrets.token_bytes(16)).decode(),
            "rollingStartNumber": today - 144 * d,
            "rollingPeriod": 144,
            "transmissionRisk": risk,
        }
        for d in range(first_day_back, first_day_back + days)
    ]


def hmac_of(keys: list[dict[str, Any]], hmac_key: bytes) -> bytes:
    """The TEK HMAC as the device computes it (phe_trace.protocol.tekmac)."""
    return tek_hmac(
        hmac_key,
        [
            TekHmacKey(
                base64.b64decode(k["key"]),
                k["rollingStartNumber"],
                k["rollingPeriod"],
                k.get("transmissionRisk", 0),
            )
            for k in keys
        ],
    )


def publish_body(
    authority: Authority,
    keys: list[dict[str, Any]],
    now: float,
    *,
    revision_token: str = "",
    **claims: Any,
) -> dict[str, Any]:
    """A complete, valid publish request for ``keys``."""
    hmac_key = secrets.token_bytes(32)
    certificate = authority.certificate(hmac_of(keys, hmac_key), now, **claims)
    return {
        "temporaryExposureKeys": keys,
        "healthAuthorityID": "org.example.app",
        "verificationPayload": certificate,
        "hmacKey": base64.b64encode(hmac_key).decode(),
        "revisionToken": revision_token,
        "padding": base64.b64encode(secrets.token_bytes(1000)).decode(),
    }
