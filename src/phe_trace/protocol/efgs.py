"""Federation batches: the ``DiagnosisKeyBatch`` of SPEC §17, its wire forms and signed bytes.

A batch travels as protobuf (``efgs.proto``) or as proto3 JSON; what its CMS signature
covers is neither, but the canonical byte string of FED-2 built from the decoded keys,
so the two wire forms of one batch have one signature.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import DecodeError

from . import efgs_pb2
from .errors import BatchFormatError

__all__ = [
    "CONTENT_TYPE_JSON",
    "CONTENT_TYPE_PROTOBUF",
    "REPORT_TYPES",
    "TRL_NOT_PROVIDED",
    "BatchKey",
    "batch_signing_bytes",
    "decode_json",
    "decode_protobuf",
    "encode_json",
    "encode_protobuf",
    "key_signing_bytes",
    "payload_hash",
]

#: Media types of the two wire forms (FED-1).
CONTENT_TYPE_PROTOBUF = "application/protobuf; version=1.0"
CONTENT_TYPE_JSON = "application/json; version=1.0"
#: ``transmissionRiskLevel`` meaning "not provided".
TRL_NOT_PROVIDED = 0x7FFFFFFF
#: ``ReportType`` names by number (FED-1).
REPORT_TYPES: dict[int, str] = {
    v.number: v.name for v in efgs_pb2.DESCRIPTOR.enum_types_by_name["ReportType"].values
}
_REPORT_NUMBERS = {name: number for number, name in REPORT_TYPES.items()}
_UINT32_MAX = 0xFFFFFFFF
_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1


@dataclass(frozen=True, slots=True)
class BatchKey:
    """One key of a batch, as decoded (SPEC FED-1). Values are as on the wire: ranges are
    checked by the gateway (FED-6), not here, so fixtures at edge values round-trip."""

    key_data: bytes
    rolling_start_interval_number: int
    rolling_period: int
    transmission_risk_level: int
    visited_countries: tuple[str, ...]
    origin: str
    report_type: int
    days_since_onset_of_symptoms: int


def _b64(data: bytes) -> bytes:
    return base64.b64encode(data)


def _be32(value: int) -> bytes:
    """4 big-endian bytes; uint32 values above 2^31 are the same bytes as the int32."""
    if value < 0:
        return struct.pack(">i", value)
    return struct.pack(">I", value & _UINT32_MAX)


def key_signing_bytes(key: BatchKey) -> bytes:
    """The canonical string of one key (SPEC FED-2): eight Base64 fields, each followed by ``.``."""
    fields = (
        _b64(key.key_data),
        _b64(_be32(key.rolling_start_interval_number)),
        _b64(_be32(key.rolling_period)),
        _b64(_be32(key.transmission_risk_level)),
        _b64(",".join(key.visited_countries).encode("ascii")),
        _b64(key.origin.encode("ascii")),
        _b64(_be32(key.report_type)),
        _b64(_be32(key.days_since_onset_of_symptoms)),
    )
    return b"".join(field + b"." for field in fields)


def batch_signing_bytes(keys: Iterable[BatchKey]) -> bytes:
    """The bytes a batch signature covers (SPEC FED-2): the keys' canonical strings sorted
    by their own Base64 encoding, concatenated."""
    per_key = [key_signing_bytes(k) for k in keys]
    return b"".join(sorted(per_key, key=base64.b64encode))


def payload_hash(key: BatchKey) -> str:
    """SHA-256 of the key's canonical string in hex: the gateway's duplicate key (FED-7)."""
    return hashlib.sha256(key_signing_bytes(key)).hexdigest()


def _from_message(m: efgs_pb2.DiagnosisKey) -> BatchKey:
    return BatchKey(
        key_data=bytes(m.keyData),
        rolling_start_interval_number=m.rollingStartIntervalNumber,
        rolling_period=m.rollingPeriod,
        transmission_risk_level=m.transmissionRiskLevel,
        visited_countries=tuple(m.visitedCountries),
        origin=m.origin,
        report_type=int(m.reportType),
        days_since_onset_of_symptoms=m.days_since_onset_of_symptoms,
    )


def _to_message(key: BatchKey, out: efgs_pb2.DiagnosisKey) -> None:
    out.keyData = key.key_data
    out.rollingStartIntervalNumber = key.rolling_start_interval_number
    out.rollingPeriod = key.rolling_period
    out.transmissionRiskLevel = key.transmission_risk_level
    out.visitedCountries.extend(key.visited_countries)
    out.origin = key.origin
    out.reportType = key.report_type  # type: ignore[assignment]
    out.days_since_onset_of_symptoms = key.days_since_onset_of_symptoms


def decode_protobuf(data: bytes) -> list[BatchKey]:
    """The keys of a protobuf ``DiagnosisKeyBatch``; :class:`BatchFormatError` if malformed."""
    batch = efgs_pb2.DiagnosisKeyBatch()
    try:
        batch.ParseFromString(data)
        keys = [_from_message(m) for m in batch.keys]
        for k in keys:
            _check_text(k)
    except (DecodeError, RuntimeWarning, ValueError) as exc:
        raise BatchFormatError(f"not a DiagnosisKeyBatch: {type(exc).__name__}") from None
    return keys


def encode_protobuf(keys: Sequence[BatchKey]) -> bytes:
    """A protobuf ``DiagnosisKeyBatch`` holding ``keys`` in order."""
    batch = efgs_pb2.DiagnosisKeyBatch()
    for key in keys:
        _to_message(key, batch.keys.add())
    return batch.SerializeToString(deterministic=True)


def _check_text(key: BatchKey) -> None:
    for text in (key.origin, *key.visited_countries):
        if not text.isascii() or "," in text:
            raise BatchFormatError("country codes must be ASCII without commas")


def _int_field(item: dict[str, Any], name: str, low: int, high: int) -> int:
    value = item.get(name, 0)
    if isinstance(value, str) and value.lstrip("-").isdigit():
        value = int(value)  # proto3 JSON allows integers as strings
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise BatchFormatError(f"{name} must be an integer in [{low}, {high}]")
    return value


def _report_type(item: dict[str, Any]) -> int:
    value = item.get("reportType", 0)
    if isinstance(value, str) and value in _REPORT_NUMBERS:
        return _REPORT_NUMBERS[value]
    if isinstance(value, int) and not isinstance(value, bool) and value in REPORT_TYPES:
        return value
    raise BatchFormatError("reportType must be a ReportType name or number")


def _strings(item: dict[str, Any], name: str) -> tuple[str, ...]:
    value = item.get(name, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BatchFormatError(f"{name} must be a list of strings")
    return tuple(value)


def _key_from_json(item: Any) -> BatchKey:
    if not isinstance(item, dict):
        raise BatchFormatError("each key must be a JSON object")
    raw = item.get("keyData", "")
    origin = item.get("origin", "")
    if not isinstance(raw, str) or not isinstance(origin, str):
        raise BatchFormatError("keyData and origin must be strings")
    try:
        key_data = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise BatchFormatError("keyData is not Base64") from None
    key = BatchKey(
        key_data=key_data,
        rolling_start_interval_number=_int_field(
            item, "rollingStartIntervalNumber", 0, _UINT32_MAX
        ),
        rolling_period=_int_field(item, "rollingPeriod", 0, _UINT32_MAX),
        transmission_risk_level=_int_field(item, "transmissionRiskLevel", _INT32_MIN, _INT32_MAX),
        visited_countries=_strings(item, "visitedCountries"),
        origin=origin,
        report_type=_report_type(item),
        days_since_onset_of_symptoms=_int_field(
            item, "daysSinceOnsetOfSymptoms", _INT32_MIN, _INT32_MAX
        ),
    )
    _check_text(key)
    return key


def decode_json(data: bytes) -> list[BatchKey]:
    """The keys of a proto3-JSON ``DiagnosisKeyBatch`` (``{"keys": [...]}``)."""
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise BatchFormatError("body is not JSON") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("keys", []), list):
        raise BatchFormatError('body must be {"keys": [...]}')
    return [_key_from_json(item) for item in doc.get("keys", [])]


def encode_json(keys: Sequence[BatchKey]) -> bytes:
    """A proto3-JSON ``DiagnosisKeyBatch`` (report types by name, as EFGS writes them)."""
    items = [
        {
            "keyData": base64.b64encode(k.key_data).decode("ascii"),
            "rollingStartIntervalNumber": k.rolling_start_interval_number,
            "rollingPeriod": k.rolling_period,
            "transmissionRiskLevel": k.transmission_risk_level,
            "visitedCountries": list(k.visited_countries),
            "origin": k.origin,
            "reportType": REPORT_TYPES.get(k.report_type, k.report_type),
            "daysSinceOnsetOfSymptoms": k.days_since_onset_of_symptoms,
        }
        for k in keys
    ]
    return json.dumps({"keys": items}, separators=(",", ":")).encode("ascii")
