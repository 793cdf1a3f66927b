"""What the checker needs to talk to a key server: settings, HTTP, test certificates.

The checker plays two roles on the wire (``ARCHITECTURE.md``, layer 2): a device that uploads
keys, and the health authority that certifies them. It mints its certificates with a
private key that the operator of the server under test registered for a *conformance
test* health authority (issuer, audience, key id), so nothing real is ever published:
every uploaded key is 16 fresh random bytes.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass, field
from typing import Any

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from phe_trace.crypto import INTERVAL_SECONDS, TEK_ROLLING_PERIOD
from phe_trace.protocol.certificate import VerificationClaims, sign_certificate
from phe_trace.protocol.tekmac import TekHmacKey, tek_hmac

from .errors import ConformanceConfigError

__all__ = ["ConformanceConfig", "KeyServerClient", "TestKey", "load_private_key"]

#: Seconds a minted certificate stays valid (GAEN verification servers: 15 minutes).
CERTIFICATE_LIFETIME = 900


def load_private_key(pem: bytes) -> ec.EllipticCurvePrivateKey:
    """The certificate-issuing key: a PEM ECDSA P-256 private key (PKCS#8 or SEC1)."""
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):
        raise ConformanceConfigError("--ha-key is not a readable PEM private key") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ConformanceConfigError("--ha-key must be an ECDSA P-256 private key (ES256)")
    return key


@dataclass(frozen=True)
class ConformanceConfig:
    """Everything the battery needs; see ``phe-trace conformance --help``."""

    server: str
    ha_key: ec.EllipticCurvePrivateKey
    issuer: str
    audience: str
    kid: str
    health_authority_id: str = ""
    export_base_url: str | None = None
    region: str = "ZZ"
    export_keys: tuple[ec.EllipticCurvePublicKey, ...] = ()
    max_keys: int = 30
    min_export_records: int | None = None
    max_files: int = 20
    timeout_s: float = 15.0
    expect_published: tuple[str, ...] = ()
    extra_headers: dict[str, str] = field(default_factory=dict)

    @property
    def exports_url(self) -> str:
        """Base URL of the export store (ends with ``/``)."""
        base = self.export_base_url or self.server.rstrip("/") + "/v1/exports/"
        return base if base.endswith("/") else base + "/"


@dataclass(frozen=True, slots=True)
class TestKey:
    """One synthetic key as the publish API carries it."""

    key_data: bytes
    rolling_start_number: int
    rolling_period: int = TEK_ROLLING_PERIOD
    transmission_risk: int = 0

    def wire(self) -> dict[str, Any]:
        """The JSON object of ``temporaryExposureKeys``."""
        return {
            "key": base64.b64encode(self.key_data).decode("ascii"),
            "rollingStartNumber": self.rolling_start_number,
            "rollingPeriod": self.rolling_period,
            "transmissionRisk": self.transmission_risk,
        }

    def hmac_key(self) -> TekHmacKey:
        """The fields the TEK HMAC covers."""
        return TekHmacKey(
            self.key_data, self.rolling_start_number, self.rolling_period, self.transmission_risk
        )


def today_start(now: float) -> int:
    """Interval number of UTC midnight of ``now``."""
    interval = int(now // INTERVAL_SECONDS)
    return interval - interval % TEK_ROLLING_PERIOD


def day_keys(now: float, days: int, *, first_day_back: int = 1) -> list[TestKey]:
    """``days`` full-day random keys for the days before ``now``, most recent first."""
    start = today_start(now)
    return [
        TestKey(secrets.token_bytes(16), start - TEK_ROLLING_PERIOD * d)
        for d in range(first_day_back, first_day_back + days)
    ]


class KeyServerClient:
    """HTTP to the server under test, and certificates of the test health authority."""

    def __init__(self, config: ConformanceConfig, http: httpx.Client) -> None:
        self.config = config
        self.http = http

    def certificate(
        self,
        keys: list[TestKey],
        hmac_key: bytes,
        now: float,
        *,
        report_type: str = "confirmed",
        signing_key: ec.EllipticCurvePrivateKey | None = None,
        lifetime: int = CERTIFICATE_LIFETIME,
        issued_at: float | None = None,
    ) -> str:
        """An ES256 certificate binding ``keys`` through their TEK HMAC."""
        cfg = self.config
        issued = int(issued_at if issued_at is not None else now)
        claims = VerificationClaims(
            issuer=cfg.issuer,
            audience=cfg.audience,
            report_type=report_type,
            tekmac=base64.b64encode(tek_hmac(hmac_key, [k.hmac_key() for k in keys])).decode(),
            issued_at=issued,
            not_before=issued,
            expires_at=issued + lifetime,
        )
        return sign_certificate(claims, signing_key or cfg.ha_key, cfg.kid)

    def body(
        self,
        keys: list[TestKey],
        now: float,
        *,
        revision_token: str = "",
        **certificate_options: Any,
    ) -> dict[str, Any]:
        """A complete publish request for ``keys`` with a fresh HMAC key and certificate."""
        hmac_key = secrets.token_bytes(32)
        return {
            "temporaryExposureKeys": [k.wire() for k in keys],
            "healthAuthorityID": self.config.health_authority_id,
            "verificationPayload": self.certificate(keys, hmac_key, now, **certificate_options),
            "hmacKey": base64.b64encode(hmac_key).decode("ascii"),
            "revisionToken": revision_token,
            "padding": base64.b64encode(secrets.token_bytes(secrets.randbelow(512) + 512)).decode(),
        }

    def publish(
        self, body: dict[str, Any] | bytes, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        """``POST /v1/publish`` with a JSON body (or raw bytes)."""
        url = self.config.server.rstrip("/") + "/v1/publish"
        merged = {**self.config.extra_headers, **(headers or {})}
        if isinstance(body, bytes):
            merged.setdefault("content-type", "application/json")
            return self.http.post(url, content=body, headers=merged)
        return self.http.post(url, json=body, headers=merged)

    def get_export(self, path: str) -> httpx.Response:
        """GET an object of the export store by its path relative to the base URL."""
        return self.http.get(self.config.exports_url + path, headers=self.config.extra_headers)
