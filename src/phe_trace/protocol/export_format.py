"""``export.bin`` and ``export.sig``: the GAEN key export records, encoded and decoded.

``protocol_spec/SPEC.md`` §12 (EXP-1 … EXP-9). ``export.bin`` is the 16-byte header
``"EK Export v1    "`` followed by a serialized ``TemporaryExposureKeyExport`` (proto2,
``protocol_spec/export.proto``); ``export.sig`` is a serialized ``TEKSignatureList``.

The writer is bit-exact with the reference key server (EXP-3): keys sorted by key
bytes, ``rolling_start_interval_number`` omitted when 0, ``rolling_period`` omitted
when 144, ``transmission_risk_level`` always written, ``report_type`` only when known,
``days_since_onset_of_symptoms`` only when set, ``SignatureInfo`` fields 3, 4 and 5 only.

The reader is strict about the header and tolerant about the body (EXP-4): unknown
fields, the old ``SignatureInfo.android_package`` (field 2) and absent fields are
accepted; absent fields take their proto2 defaults. It returns keys as they are on the
wire — :meth:`DiagnosisKey.check` says whether one is usable. Any failure raises
:class:`~phe_trace.protocol.errors.ExportFormatError` (or its subclass
:class:`~phe_trace.protocol.errors.ExportTruncatedError`), never anything else.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from google.protobuf.message import DecodeError, Message

from phe_trace.crypto import KEY_LENGTH, TEK_ROLLING_PERIOD

from . import export_pb2 as pb
from .diagnosis_key import (
    MAX_TRANSMISSION_RISK_LEVEL,
    DiagnosisKey,
    DiagnosisKeyColumns,
    ReportType,
)
from .errors import ExportFormatError, ExportTruncatedError
from .export_keys import read_key_columns

if TYPE_CHECKING:
    from google.protobuf.internal.containers import RepeatedCompositeFieldContainer

__all__ = [
    "ECDSA_P256_SHA256_OID",
    "ECDSA_P256_SHA512_OID",
    "EXPORT_BIN_HEADER",
    "SignatureInfo",
    "TEKSignature",
    "TemporaryExposureKeyExport",
    "decode_export_bin",
    "decode_signature_list",
    "encode_export_bin",
    "encode_signature_list",
]

#: The 16-byte header that starts every export.bin (EXP-2).
EXPORT_BIN_HEADER = b"EK Export v1    "
#: ASN.1 OID of ECDSA with SHA-256 — the algorithm phe-trace signs with (EXP-6).
ECDSA_P256_SHA256_OID = "1.2.840.10045.4.3.2"
#: ASN.1 OID of ECDSA with SHA-512, which GAEN devices also accept when verifying.
ECDSA_P256_SHA512_OID = "1.2.840.10045.4.3.4"

_INT32_MAX = 2**31 - 1
_UINT64_MAX = 2**64 - 1
_REPORT_TYPES = frozenset(ReportType)
_REPORT_TYPE_BY_VALUE = {int(t): t for t in ReportType}
_REPORT_TYPE_VALUES = np.array(sorted(_REPORT_TYPE_BY_VALUE), dtype=np.int64)
_PB_REPORT_TYPE = pb.TemporaryExposureKey.ReportType.ValueType


@dataclass(frozen=True, slots=True)
class SignatureInfo:
    """Which key signs an export (``SignatureInfo``, EXP-5).

    ``android_package`` is the obsolete field 2, kept only so that old files read back
    faithfully; the writer never emits it.
    """

    verification_key_id: str
    verification_key_version: str
    signature_algorithm: str = ECDSA_P256_SHA256_OID
    android_package: str | None = None


@dataclass(frozen=True, slots=True)
class TemporaryExposureKeyExport:
    """The content of one export.bin: a time window of one region's diagnosis keys.

    Timestamps are UTC seconds. ``batch_num`` (1-based) and ``batch_size`` number the
    files of a split batch. ``signature_infos`` names, in order, the keys whose
    signatures are in the accompanying export.sig; when building a signed export the
    signers provide them. Decoded, ``keys`` and ``revised_keys`` are tuples, or
    :class:`~phe_trace.protocol.diagnosis_key.DiagnosisKeyColumns` when asked for
    (:func:`decode_export_bin`); either compares equal to the other holding the same keys.
    """

    start_timestamp: int
    end_timestamp: int
    region: str
    keys: Sequence[DiagnosisKey] = ()
    revised_keys: Sequence[DiagnosisKey] = ()
    batch_num: int = 1
    batch_size: int = 1
    signature_infos: tuple[SignatureInfo, ...] = ()


@dataclass(frozen=True, slots=True)
class TEKSignature:
    """One signature of export.sig (``TEKSignature``): who signed, which batch, DER bytes."""

    signature_info: SignatureInfo
    batch_num: int
    batch_size: int
    signature: bytes


# --- writing ------------------------------------------------------------------------


def _key_problem(key: DiagnosisKey) -> str | None:
    problem = key.check()
    if problem is not None:
        return problem
    if key.rolling_start_interval_number > _INT32_MAX:
        return "rolling_start_interval_number does not fit the export's int32"
    onset = key.days_since_onset_of_symptoms
    if onset is not None and not -(2**31) <= onset <= _INT32_MAX:
        return "days_since_onset_of_symptoms does not fit the export's sint32"
    return None


def _fill_key(message: pb.TemporaryExposureKey, key: DiagnosisKey) -> None:
    """Set the fields exactly as the reference server does (EXP-3)."""
    message.key_data = key.key_data
    message.transmission_risk_level = key.transmission_risk_level
    if key.rolling_start_interval_number != 0:
        message.rolling_start_interval_number = key.rolling_start_interval_number
    if key.rolling_period != TEK_ROLLING_PERIOD:
        message.rolling_period = key.rolling_period
    if key.report_type != ReportType.UNKNOWN:
        message.report_type = _PB_REPORT_TYPE(int(key.report_type))
    if key.days_since_onset_of_symptoms is not None:
        message.days_since_onset_of_symptoms = key.days_since_onset_of_symptoms


def _exportable(key: DiagnosisKey) -> bool:
    """Fast path of :func:`_key_problem` (same verdict): the writer's hot loop."""
    data, start, onset = (
        key.key_data,
        key.rolling_start_interval_number,
        key.days_since_onset_of_symptoms,
    )
    return (
        isinstance(data, bytes)
        and len(data) == KEY_LENGTH
        and 0 <= start <= _INT32_MAX
        and 1 <= key.rolling_period <= TEK_ROLLING_PERIOD
        and 0 <= key.transmission_risk_level <= MAX_TRANSMISSION_RISK_LEVEL
        and key.report_type in _REPORT_TYPES
        and (onset is None or -(2**31) <= onset <= _INT32_MAX)
    )


def _add_keys(
    field: Iterable[DiagnosisKey],
    target: RepeatedCompositeFieldContainer[pb.TemporaryExposureKey],
    what: str,
) -> None:
    keys = list(field)
    for index, key in enumerate(keys):  # before sorting: key_data must be comparable bytes
        if not _exportable(key):
            problem = _key_problem(key) or "a field is out of range"
            raise ExportFormatError(f"{what}[{index}] cannot be exported: {problem}")
    add = target.add
    for key in sorted(keys, key=lambda k: k.key_data):
        _fill_key(add(), key)


def _check_header_fields(export: TemporaryExposureKeyExport) -> None:
    if not 0 <= export.start_timestamp <= export.end_timestamp <= _UINT64_MAX:
        raise ExportFormatError(
            f"time window {export.start_timestamp}..{export.end_timestamp} is not "
            "0 <= start <= end < 2**64"
        )
    if not 1 <= export.batch_num <= export.batch_size <= _INT32_MAX:
        raise ExportFormatError(
            f"batch {export.batch_num} of {export.batch_size} is not 1 <= num <= size"
        )


def _fill_signature_info(message: pb.SignatureInfo, info: SignatureInfo) -> None:
    message.verification_key_version = info.verification_key_version
    message.verification_key_id = info.verification_key_id
    message.signature_algorithm = info.signature_algorithm


def encode_export_bin(export: TemporaryExposureKeyExport) -> bytes:
    """Header + serialized ``TemporaryExposureKeyExport``, bit-exact with the reference.

    Keys and revised keys are sorted by key bytes here, whatever their order in
    ``export`` (EXP-3). Raises :class:`ExportFormatError` if a key fails
    :meth:`DiagnosisKey.check`, the window is inverted or the batch numbers are off.
    """
    _check_header_fields(export)
    message = pb.TemporaryExposureKeyExport()
    message.start_timestamp = export.start_timestamp
    message.end_timestamp = export.end_timestamp
    try:
        message.region = export.region
    except (ValueError, TypeError) as exc:
        raise ExportFormatError("region is not a valid UTF-8 string") from exc
    message.batch_num = export.batch_num
    message.batch_size = export.batch_size
    for info in export.signature_infos:
        try:
            _fill_signature_info(message.signature_infos.add(), info)
        except (ValueError, TypeError) as exc:
            raise ExportFormatError("signature info is not valid UTF-8 text") from exc
    _add_keys(export.keys, message.keys, "keys")
    _add_keys(export.revised_keys, message.revised_keys, "revised_keys")
    return EXPORT_BIN_HEADER + message.SerializeToString()


def encode_signature_list(signatures: Sequence[TEKSignature]) -> bytes:
    """Serialize ``TEKSignatureList`` — the content of export.sig (EXP-6)."""
    message = pb.TEKSignatureList()
    for signature in signatures:
        entry = message.signatures.add()
        try:
            _fill_signature_info(entry.signature_info, signature.signature_info)
            entry.batch_num = signature.batch_num
            entry.batch_size = signature.batch_size
            entry.signature = signature.signature
        except (ValueError, TypeError) as exc:
            raise ExportFormatError("a signature field is out of range or not text") from exc
    return message.SerializeToString()


# --- reading ------------------------------------------------------------------------


def _skip_varint(data: bytes, pos: int) -> int | None:
    """Position after the varint at ``pos``; None if the data ends inside it."""
    for offset in range(10):
        if pos + offset >= len(data):
            return None
        if data[pos + offset] < 0x80:
            return pos + offset + 1
    return -1  # over-long varint: malformed, not truncated


def _read_varint(data: bytes, pos: int, end: int) -> int:
    value = 0
    for shift, byte in enumerate(data[pos:end]):
        value |= (byte & 0x7F) << (7 * shift)
    return value


def _looks_truncated(data: bytes) -> bool:
    """Walk the top-level fields: does the message end inside a field (EXP-4)?"""
    pos = 0
    while pos < len(data):
        after_tag = _skip_varint(data, pos)
        if after_tag is None:
            return True
        if after_tag < 0:
            return False
        wire_type = data[pos] & 0x07
        if wire_type == 0:
            after = _skip_varint(data, after_tag)
        elif wire_type in (1, 5):
            after = after_tag + (8 if wire_type == 1 else 4)
        elif wire_type == 2:
            after_length = _skip_varint(data, after_tag)
            if after_length is None or after_length < 0:
                return after_length is None
            after = after_length + _read_varint(data, after_tag, after_length)
        else:
            return False
        if after is None or after > len(data):
            return True
        if after < 0:
            return False
        pos = after
    return False


def _parse(message: Message, body: bytes, what: str) -> None:
    try:
        message.ParseFromString(body)
    except (DecodeError, RuntimeError, ValueError) as exc:
        if _looks_truncated(body):
            raise ExportTruncatedError(f"{what} is truncated") from exc
        raise ExportFormatError(f"{what} is not a valid protobuf message") from exc


def _signature_info(message: pb.SignatureInfo) -> SignatureInfo:
    return SignatureInfo(
        verification_key_id=message.verification_key_id,
        verification_key_version=message.verification_key_version,
        signature_algorithm=message.signature_algorithm,
        android_package=(message.android_package if message.HasField("android_package") else None),
    )


def _diagnosis_key(message: pb.TemporaryExposureKey) -> DiagnosisKey:
    onset: int | None = message.days_since_onset_of_symptoms
    if onset == 0 and not message.HasField("days_since_onset_of_symptoms"):
        onset = None
    return DiagnosisKey(
        message.key_data,
        message.rolling_start_interval_number,
        message.rolling_period,
        message.transmission_risk_level,
        _REPORT_TYPE_BY_VALUE.get(message.report_type, ReportType.UNKNOWN),
        onset,
    )


def _key_columns(messages: Iterable[pb.TemporaryExposureKey]) -> DiagnosisKeyColumns:
    """The keys of ``messages`` as columns: the values :func:`_diagnosis_key` reads, with
    no Python object per key."""
    data: list[bytes] = []
    starts: list[int] = []
    periods: list[int] = []
    risks: list[int] = []
    types: list[int] = []
    onsets: list[int] = []
    given: list[bool] = []
    for m in messages:
        data.append(m.key_data)
        starts.append(m.rolling_start_interval_number)
        periods.append(m.rolling_period)
        risks.append(m.transmission_risk_level)
        types.append(m.report_type)
        onset = m.days_since_onset_of_symptoms
        onsets.append(onset)
        given.append(onset != 0 or m.HasField("days_since_onset_of_symptoms"))
    kinds = np.array(types, dtype=np.int64)
    kinds[~np.isin(kinds, _REPORT_TYPE_VALUES)] = int(ReportType.UNKNOWN)
    return DiagnosisKeyColumns(data, starts, periods, risks, kinds, onsets, given)


def _columns_of(
    body: bytes, message: pb.TemporaryExposureKeyExport
) -> tuple[DiagnosisKeyColumns, DiagnosisKeyColumns]:
    """The keys and revised keys of a parsed body as columns: read in bulk from the wire
    bytes (:mod:`.export_keys`), or by the runtime when the bulk reader does not walk the
    body or counts other keys than the runtime."""
    read = read_key_columns(body, _key_columns)
    if read is None or (len(read[0]), len(read[1])) != (
        len(message.keys),
        len(message.revised_keys),
    ):
        return _key_columns(message.keys), _key_columns(message.revised_keys)
    return read


def decode_export_bin(data: bytes, *, columns: bool = False) -> TemporaryExposureKeyExport:
    """Parse export.bin: the header must match exactly; the body is read tolerantly (EXP-4).

    With ``columns``, ``keys`` and ``revised_keys`` come back as
    :class:`~phe_trace.protocol.diagnosis_key.DiagnosisKeyColumns` holding the same keys
    (what a device matching every key of a day's exports reads them as), else as tuples.
    Raises :class:`ExportTruncatedError` when the data ends early and
    :class:`ExportFormatError` for anything else that is not an export.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ExportFormatError("export.bin must be bytes")
    data = bytes(data)
    header = data[: len(EXPORT_BIN_HEADER)]
    if header != EXPORT_BIN_HEADER:
        if len(data) < len(EXPORT_BIN_HEADER) and EXPORT_BIN_HEADER.startswith(data):
            raise ExportTruncatedError("export.bin ends inside its 16-byte header")
        raise ExportFormatError("export.bin does not start with 'EK Export v1    '")
    message = pb.TemporaryExposureKeyExport()
    body = data[len(EXPORT_BIN_HEADER) :]
    _parse(message, body, "export.bin")
    keys: Sequence[DiagnosisKey]
    revised: Sequence[DiagnosisKey]
    if columns:
        keys, revised = _columns_of(body, message)
    else:
        keys = tuple(map(_diagnosis_key, message.keys))
        revised = tuple(map(_diagnosis_key, message.revised_keys))
    try:
        return TemporaryExposureKeyExport(
            start_timestamp=message.start_timestamp,
            end_timestamp=message.end_timestamp,
            region=message.region,
            keys=keys,
            revised_keys=revised,
            batch_num=message.batch_num,
            batch_size=message.batch_size,
            signature_infos=tuple(_signature_info(i) for i in message.signature_infos),
        )
    except (UnicodeError, ValueError) as exc:
        raise ExportFormatError("export.bin holds a string that is not UTF-8") from exc


def decode_signature_list(data: bytes) -> tuple[TEKSignature, ...]:
    """Parse export.sig (``TEKSignatureList``), tolerating unknown fields (EXP-7)."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ExportFormatError("export.sig must be bytes")
    message = pb.TEKSignatureList()
    _parse(message, bytes(data), "export.sig")
    try:
        return tuple(
            TEKSignature(
                signature_info=_signature_info(s.signature_info),
                batch_num=s.batch_num,
                batch_size=s.batch_size,
                signature=s.signature,
            )
            for s in message.signatures
        )
    except (UnicodeError, ValueError) as exc:
        raise ExportFormatError("export.sig holds a string that is not UTF-8") from exc
