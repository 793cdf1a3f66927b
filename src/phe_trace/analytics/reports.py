"""Client reports: shard, seal to the two aggregators, and open (SPEC AGG-15, AGG-16).

A report for one (metric, day) is two sealed boxes (X25519 + XSalsa20-Poly1305, pynacl
``SealedBox``), one per aggregator. Inside each, after a version byte::

    metric_id (1) ‖ day (4, big-endian) ‖ nonce (16) ‖ len(public) (2) ‖ public ‖ input share

Metric and day are inside the box as well as beside it (for routing), and the
aggregator refuses a box whose inner labels differ from the outer ones, so the server
that relays the boxes cannot move a report to another day or metric. The key server
sees only the two ciphertexts, the metric name and the day.
"""

from __future__ import annotations

import base64
import os
import struct
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from nacl.exceptions import CryptoError as NaclCryptoError
from nacl.public import PrivateKey, PublicKey, SealedBox

from .batch import shard_batch
from .errors import EncodingError, ReportRejectedError
from .metrics import METRICS, DailyObservation, Metric, context_for, encode_daily
from .prio3 import NONCE_SIZE, InputShare

__all__ = [
    "PAYLOAD_VERSION",
    "OpenedShare",
    "SealedReport",
    "daily_reports",
    "daily_reports_batch",
    "make_report",
    "make_reports",
    "open_share",
    "upload_body",
]

#: Version byte of the sealed payload.
PAYLOAD_VERSION = 1
_HEADER = struct.Struct(">BBI16sH")


@dataclass(frozen=True)
class SealedReport:
    """What a device uploads for one metric and day."""

    metric: str
    day: int
    leader_share: bytes
    helper_share: bytes


@dataclass(frozen=True)
class OpenedShare:
    """One aggregator's view of a report after opening its box."""

    metric: str
    day: int
    nonce: bytes
    public_share: list[bytes] | None
    input_share: InputShare
    #: The two shares exactly as they came in the box (what an aggregator stores).
    encoded_public_share: bytes = b""
    encoded_input_share: bytes = b""


def _payload(metric_id: int, day: int, nonce: bytes, public: bytes, share: bytes) -> bytes:
    return _HEADER.pack(PAYLOAD_VERSION, metric_id, day, nonce, len(public)) + public + share


def _checked_spec(metric: str, day: int) -> Metric:
    """The metric's specification, refusing an unknown metric or a day out of range."""
    spec = METRICS.get(metric)
    if spec is None:
        raise EncodingError(f"unknown metric {metric!r}")
    if not 0 <= day < 2**32:
        raise EncodingError("day out of range")
    return spec


def make_report(
    metric: str,
    measurement: Any,
    day: int,
    leader_public_key: bytes,
    helper_public_key: bytes,
    rand: bytes | None = None,
    nonce: bytes | None = None,
) -> SealedReport:
    """Shard ``measurement`` of ``metric`` for ``day`` and seal each share (device side)."""
    spec = _checked_spec(metric, day)
    vdaf = spec.vdaf()
    nonce = nonce if nonce is not None else os.urandom(NONCE_SIZE)
    rand = rand if rand is not None else os.urandom(vdaf.rand_size)
    public, shares = vdaf.shard(context_for(metric, day), measurement, nonce, rand)
    public_bytes = vdaf.encode_public_share(public)
    boxes = []
    for share, key in zip(shares, (leader_public_key, helper_public_key), strict=True):
        payload = _payload(spec.metric_id, day, nonce, public_bytes, vdaf.encode_input_share(share))
        boxes.append(SealedBox(PublicKey(key)).encrypt(payload))
    return SealedReport(metric, day, boxes[0], boxes[1])


def make_reports(
    metric: str,
    measurements: list[Any],
    day: int,
    leader_public_key: bytes,
    helper_public_key: bytes,
) -> list[SealedReport]:
    """:func:`make_report` for many measurements of one metric and day, each with fresh
    nonce and randomness; sharded as one batch (:func:`batch.shard_batch`)."""
    spec = _checked_spec(metric, day)
    vdaf = spec.vdaf()
    n = len(measurements)
    nonce_bytes = os.urandom(n * NONCE_SIZE)
    rand_bytes = os.urandom(n * vdaf.rand_size)
    nonces = [nonce_bytes[i * NONCE_SIZE : (i + 1) * NONCE_SIZE] for i in range(n)]
    rands = [rand_bytes[i * vdaf.rand_size : (i + 1) * vdaf.rand_size] for i in range(n)]
    sharded = shard_batch(vdaf, context_for(metric, day), measurements, nonces, rands)
    boxes = [SealedBox(PublicKey(k)) for k in (leader_public_key, helper_public_key)]
    out = []
    for nonce, (public, shares) in zip(nonces, sharded, strict=True):
        public_bytes = vdaf.encode_public_share(public)
        sealed = [
            box.encrypt(
                _payload(spec.metric_id, day, nonce, public_bytes, vdaf.encode_input_share(share))
            )
            for share, box in zip(shares, boxes, strict=True)
        ]
        out.append(SealedReport(metric, day, sealed[0], sealed[1]))
    return out


@lru_cache(maxsize=8)
def _opener(private_key: bytes) -> SealedBox[PrivateKey]:
    """A SealedBox for ``private_key`` (deriving its public key once, not per report)."""
    return SealedBox(PrivateKey(private_key))


def open_share(
    private_key: bytes, agg_id: int, metric: str, day: int, sealed: bytes
) -> OpenedShare:
    """Open this aggregator's box and parse it; ReportRejectedError if anything is off.

    The error is deliberately opaque (wrong key, tampering, wrong labels, bad lengths).
    """
    spec = METRICS.get(metric)
    if spec is None:
        raise ReportRejectedError
    try:
        payload = _opener(private_key).decrypt(sealed)
    except (NaclCryptoError, ValueError, TypeError):
        raise ReportRejectedError from None
    if len(payload) < _HEADER.size:
        raise ReportRejectedError
    version, metric_id, inner_day, nonce, public_len = _HEADER.unpack_from(payload)
    if version != PAYLOAD_VERSION or metric_id != spec.metric_id or inner_day != day:
        raise ReportRejectedError
    rest = payload[_HEADER.size :]
    vdaf = spec.vdaf()
    if len(rest) < public_len:
        raise ReportRejectedError
    public_bytes, share_bytes = rest[:public_len], rest[public_len:]
    try:
        public = vdaf.decode_public_share(public_bytes)
        share = vdaf.decode_input_share(agg_id, share_bytes)
    except EncodingError:
        raise ReportRejectedError from None
    return OpenedShare(metric, day, nonce, public, share, public_bytes, share_bytes)


def daily_reports(
    obs: DailyObservation, day: int, leader_public_key: bytes, helper_public_key: bytes
) -> list[SealedReport]:
    """The device's four sealed reports for ``day`` (SPEC AGG-10, AGG-15)."""
    return [
        make_report(metric, value, day, leader_public_key, helper_public_key)
        for metric, value in encode_daily(obs).items()
    ]


def daily_reports_batch(
    observations: list[DailyObservation],
    day: int,
    leader_public_key: bytes,
    helper_public_key: bytes,
) -> list[list[SealedReport]]:
    """:func:`daily_reports` of many devices at once: item i is device i's four reports.

    Every device still gets its own nonces and randomness; only the arithmetic is
    batched, metric by metric (what a simulator playing many devices wants).
    """
    encoded = [encode_daily(obs) for obs in observations]
    per_metric = {
        metric: make_reports(
            metric, [e[metric] for e in encoded], day, leader_public_key, helper_public_key
        )
        for metric in METRICS
    }
    return [[per_metric[m][i] for m in encoded[i]] for i in range(len(observations))]


def upload_body(reports: list[SealedReport]) -> dict[str, object]:
    """The JSON body of ``POST /v1/analytics/reports`` for ``reports`` (SPEC AGG-18)."""
    return {
        "reports": [
            {
                "metric": r.metric,
                "day": r.day,
                "leader_share": base64.b64encode(r.leader_share).decode(),
                "helper_share": base64.b64encode(r.helper_share).decode(),
            }
            for r in reports
        ]
    }
