"""Certificate signing keys (ES256, sealed at rest), the JWKS and the certificate itself.

``protocol_spec/SPEC.md`` §13 (VER-6 … VER-8). The certificate is the GAEN verification
certificate any GAEN key server accepts: an ES256 JWT whose header carries ``kid`` and
``typ: JWT``, with claims ``iss``, ``aud``, ``iat = nbf = now − allowed skew``, ``exp``,
``reportType``, ``tekmac`` (the device's base64 HMAC, passed through unchanged) and, when
known, ``symptomOnsetInterval`` / ``testDateInterval`` (ENIN of the UTC midnight of the
date).
"""

from __future__ import annotations

import secrets
import threading
from datetime import UTC, date, datetime
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm
from sqlalchemy import Engine

from phe_trace.crypto import SealingKey, en_interval_number

from .storage import signing_keys as queries

__all__ = ["CERTIFICATE_ALGORITHM", "SigningKeys", "date_interval", "make_certificate"]

#: The only algorithm of GAEN verification certificates.
CERTIFICATE_ALGORITHM = "ES256"
_SEAL_KIND = "verification-signing-key"


def date_interval(day: date) -> int:
    """ENIntervalNumber of the UTC midnight that starts ``day`` (VER-7)."""
    midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return en_interval_number(int(midnight.timestamp()))


def make_certificate(
    *,
    private_key: ec.EllipticCurvePrivateKey,
    kid: str,
    issuer: str,
    audience: str,
    now: datetime,
    skew_seconds: int,
    lifetime_seconds: int,
    report_type: str,
    tekmac: str,
    symptom_date: date | None,
    test_date: date | None,
) -> str:
    """Sign a verification certificate (VER-6, VER-7)."""
    unix = int(now.timestamp())
    claims: dict[str, Any] = {
        "iss": issuer,
        "aud": audience,
        "iat": unix - skew_seconds,
        "nbf": unix - skew_seconds,
        "exp": unix + lifetime_seconds,
        "reportType": report_type,
        "tekmac": tekmac,
    }
    if symptom_date is not None:
        claims["symptomOnsetInterval"] = date_interval(symptom_date)
    if test_date is not None:
        claims["testDateInterval"] = date_interval(test_date)
    return jwt.encode(
        claims, private_key, algorithm=CERTIFICATE_ALGORITHM, headers={"kid": kid, "typ": "JWT"}
    )


class SigningKeys:
    """The service's certificate signing keys, stored sealed with a key from the secret."""

    def __init__(self, engine: Engine, sealing_key: SealingKey) -> None:
        self._engine = engine
        self._sealing_key = sealing_key
        self._lock = threading.Lock()
        self._active: tuple[str, ec.EllipticCurvePrivateKey] | None = None

    def _unseal(self, sealed: bytes) -> ec.EllipticCurvePrivateKey:
        der = self._sealing_key.open(_SEAL_KIND, sealed)
        key = serialization.load_der_private_key(der, password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise TypeError("stored signing key is not an EC key")
        return key

    def ensure_active(self, now: datetime) -> str:
        """Create the first signing key if none is active; return the active ``kid``."""
        with self._engine.connect() as conn:
            kid = queries.active_kid(conn)
        return kid if kid is not None else self.rotate(now)

    def rotate(self, now: datetime) -> str:
        """Make a new active key; older keys stay in the JWKS (inactive) until retired."""
        key = ec.generate_private_key(ec.SECP256R1())
        der = key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        with self._engine.begin() as conn:
            count = queries.key_count(conn)
            # Sequence number plus randomness: a rebuilt database never reuses a kid that a
            # key server may still associate with an older public key.
            kid = f"v{count + 1}-{secrets.token_hex(4)}"
            queries.deactivate_all(conn)
            queries.insert_key(
                conn,
                kid=kid,
                sealed_private_key=self._sealing_key.seal(_SEAL_KIND, der),
                active=True,
                created_at=int(now.timestamp()),
                retired_at=None,
            )
        with self._lock:
            self._active = None
        return kid

    def retire_inactive(self, now: datetime) -> list[str]:
        """Remove inactive keys from the JWKS; returns their ``kid``s."""
        with self._engine.begin() as conn:
            return queries.retire_inactive(conn, int(now.timestamp()))

    def active(self) -> tuple[str, ec.EllipticCurvePrivateKey]:
        """``(kid, private key)`` of the active key (cached after the first load)."""
        with self._lock:
            if self._active is not None:
                return self._active
        with self._engine.connect() as conn:
            row = queries.active_key(conn)
        if row is None:
            raise LookupError("no active signing key")
        loaded = (str(row.kid), self._unseal(bytes(row.sealed_private_key)))
        with self._lock:
            self._active = loaded
        return loaded

    def jwks(self) -> dict[str, Any]:
        """The public keys of every unretired key as a JWK Set (RFC 7517)."""
        with self._engine.connect() as conn:
            rows = queries.unretired_keys(conn)
        keys = []
        for row in rows:
            public = self._unseal(bytes(row.sealed_private_key)).public_key()
            jwk: dict[str, Any] = ECAlgorithm.to_jwk(public, as_dict=True)
            jwk.update({"kid": row.kid, "use": "sig", "alg": CERTIFICATE_ALGORITHM})
            keys.append(jwk)
        return {"keys": keys}

    def public_pems(self) -> dict[str, str]:
        """``kid`` → PEM public key of every unretired key (for key servers without JWKS)."""
        out: dict[str, str] = {}
        for jwk in self.jwks()["keys"]:
            public = ECAlgorithm.from_jwk(jwk)
            assert isinstance(public, ec.EllipticCurvePublicKey)
            out[jwk["kid"]] = public.public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ).decode("ascii")
        return out
