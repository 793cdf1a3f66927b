"""The health authority's published analytics configuration (SPEC AGG-25 … AGG-27).

What a device needs to take part in the aggregate statistics, as one JSON document the
health authority writes and the key server signs and serves at
``GET /v1/analytics/config``::

    {"format": "phe-trace-analytics-config/1",
     "leader": {"url": "https://…", "public_key": "<base64 X25519, 32 bytes>"},
     "helper": {"url": "https://…", "public_key": "<base64 X25519, 32 bytes>"},
     "min_batch_size": 100,
     "budget_period_days": 14,
     "metrics": {"notified": {"epsilon_per_day": 1.0, "budget": 14.0}, …}}

``epsilon_per_day`` is the ε of the day's release of that metric (each aggregator's noise
alone gives it, AGG-23); ``budget`` is the most ε a device lets one metric's reports cost
over ``budget_period_days`` days (basic composition). The signature is ECDSA P-256 with
SHA-256 over :data:`SIGNED_PREFIX` followed by the document's exact bytes, by the health
authority's export signing key: a device checks it with the export keys it already pins.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from .errors import EncodingError
from .metrics import METRICS

__all__ = [
    "CONFIG_FORMAT",
    "SIGNED_PREFIX",
    "AggregatorInfo",
    "AnalyticsConfig",
    "MetricParams",
    "parse_config",
    "sign_config",
    "verify_signed_config",
]

#: The ``format`` value of the document this code reads.
CONFIG_FORMAT = "phe-trace-analytics-config/1"
#: Signed bytes are this prefix, then the document (no signature covers anything else).
SIGNED_PREFIX = b"phe-trace analytics config\x00"


@dataclass(frozen=True, slots=True)
class AggregatorInfo:
    """One aggregator as the health authority publishes it."""

    url: str
    public_key: bytes

    def fingerprint(self) -> str:
        """SHA-256 of the public key, first 16 hex digits (what a person compares)."""
        return hashlib.sha256(self.public_key).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class MetricParams:
    """ε of one day's release of a metric, and its budget over the period."""

    epsilon_per_day: float
    budget: float


@dataclass(frozen=True, slots=True)
class AnalyticsConfig:
    """A verified configuration (only :func:`verify_signed_config` should make one)."""

    leader: AggregatorInfo
    helper: AggregatorInfo
    min_batch_size: int
    budget_period_days: int
    metrics: dict[str, MetricParams]
    #: The document's exact bytes (what was signed).
    raw: bytes

    def pin(self) -> dict[str, str]:
        """What a device pins when it opts in: both aggregators' URLs and keys."""
        return {
            "leader_url": self.leader.url,
            "leader_public_key": base64.b64encode(self.leader.public_key).decode(),
            "helper_url": self.helper.url,
            "helper_public_key": base64.b64encode(self.helper.public_key).decode(),
        }


def _positive(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise EncodingError(f"{name} must be a number")
    if not (math.isfinite(value) and value > 0):
        raise EncodingError(f"{name} must be positive")
    return float(value)


def _aggregator(value: Any, name: str) -> AggregatorInfo:
    if not isinstance(value, dict) or not isinstance(value.get("url"), str):
        raise EncodingError(f"{name} must have a url and a public_key")
    url = value["url"]
    if not url.startswith(("https://", "http://")):
        raise EncodingError(f"{name}.url must be an http(s) URL")
    try:
        key = base64.b64decode(str(value.get("public_key", "")), validate=True)
    except (binascii.Error, ValueError):
        raise EncodingError(f"{name}.public_key is not base64") from None
    if len(key) != 32:
        raise EncodingError(f"{name}.public_key must be 32 bytes (X25519)")
    return AggregatorInfo(url.rstrip("/"), key)


def _metrics(value: Any) -> dict[str, MetricParams]:
    if not isinstance(value, dict) or not value:
        raise EncodingError("metrics must be a non-empty object")
    out = {}
    for name, params in value.items():
        if name not in METRICS:
            raise EncodingError(f"unknown metric {name!r}")
        if not isinstance(params, dict):
            raise EncodingError(f"metrics.{name} must be an object")
        eps = _positive(params.get("epsilon_per_day"), f"metrics.{name}.epsilon_per_day")
        budget = _positive(params.get("budget"), f"metrics.{name}.budget")
        out[name] = MetricParams(eps, budget)
    return out


def parse_config(raw: bytes) -> AnalyticsConfig:
    """Parse and check a configuration document (EncodingError names the bad field)."""
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise EncodingError("the analytics configuration is not JSON") from None
    if not isinstance(doc, dict) or doc.get("format") != CONFIG_FORMAT:
        raise EncodingError(f"the analytics configuration is not {CONFIG_FORMAT}")
    leader, helper = (
        _aggregator(doc.get("leader"), "leader"),
        _aggregator(doc.get("helper"), "helper"),
    )
    if leader.public_key == helper.public_key:
        raise EncodingError("leader and helper must have different keys")
    batch, period = doc.get("min_batch_size"), doc.get("budget_period_days")
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise EncodingError("min_batch_size must be a positive integer")
    if isinstance(period, bool) or not isinstance(period, int) or not 1 <= period <= 366:
        raise EncodingError("budget_period_days must be an integer in 1 … 366")
    return AnalyticsConfig(leader, helper, batch, period, _metrics(doc.get("metrics")), raw)


def sign_config(raw: bytes, key: ec.EllipticCurvePrivateKey) -> bytes:
    """The health authority's signature over a document (DER ECDSA P-256 / SHA-256)."""
    return key.sign(SIGNED_PREFIX + raw, ec.ECDSA(hashes.SHA256()))


def verify_signed_config(body: Any, trusted: list[ec.EllipticCurvePublicKey]) -> AnalyticsConfig:
    """Check the served ``{"config", "signatures"}`` body against the pinned keys.

    EncodingError when no signature verifies with any of ``trusted``, or when the signed
    document is malformed: a device sends nothing under such a configuration.
    """
    if not isinstance(body, dict) or not isinstance(body.get("config"), str):
        raise EncodingError("the analytics configuration answer is malformed")
    try:
        raw = base64.b64decode(body["config"], validate=True)
        signatures = [
            base64.b64decode(str(s.get("signature", "")), validate=True)
            for s in body.get("signatures", [])
            if isinstance(s, dict)
        ]
    except (binascii.Error, ValueError):
        raise EncodingError("the analytics configuration answer is not base64") from None
    for key in trusted:
        for signature in signatures:
            try:
                key.verify(signature, SIGNED_PREFIX + raw, ec.ECDSA(hashes.SHA256()))
            except InvalidSignature:
                continue
            return parse_config(raw)
    raise EncodingError(
        "the analytics configuration's signature does not verify with the pinned export keys"
    )
