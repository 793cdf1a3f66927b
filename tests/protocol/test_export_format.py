"""export.bin / export.sig encoding against an independent protobuf wire encoder.

The reference encoder below writes the GAEN records by hand from the protobuf wire
format (varints, zigzag, fixed64, length-delimited) and the reference server's rules
(GAEN facts §3); it shares no code with ``phe_trace.protocol``.
"""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from phe_trace.protocol import export
from phe_trace.protocol.diagnosis_key import DiagnosisKey, ReportType

# --- an independent encoder ----------------------------------------------------------


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # negative int32 → ten-byte two's complement varint
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _tag(field: int, wire: int) -> bytes:
    return _varint(field << 3 | wire)


def _int(field: int, value: int) -> bytes:
    return _tag(field, 0) + _varint(value)


def _bytes(field: int, value: bytes) -> bytes:
    return _tag(field, 2) + _varint(len(value)) + value


def _zigzag32(value: int) -> int:
    return ((value << 1) ^ (value >> 31)) & 0xFFFFFFFF


def _ref_key(key: DiagnosisKey) -> bytes:
    out = _bytes(1, key.key_data) + _int(2, key.transmission_risk_level)
    if key.rolling_start_interval_number:
        out += _int(3, key.rolling_start_interval_number)
    if key.rolling_period != 144:
        out += _int(4, key.rolling_period)
    if key.report_type:
        out += _int(5, int(key.report_type))
    if key.days_since_onset_of_symptoms is not None:
        out += _int(6, _zigzag32(key.days_since_onset_of_symptoms))
    return out


def _ref_info(info: export.SignatureInfo) -> bytes:
    return (
        _bytes(3, info.verification_key_version.encode())
        + _bytes(4, info.verification_key_id.encode())
        + _bytes(5, info.signature_algorithm.encode())
    )


def _ref_export_bin(content: export.TemporaryExposureKeyExport) -> bytes:
    out = b"EK Export v1    "
    out += _tag(1, 1) + struct.pack("<Q", content.start_timestamp)
    out += _tag(2, 1) + struct.pack("<Q", content.end_timestamp)
    out += _bytes(3, content.region.encode())
    out += _int(4, content.batch_num) + _int(5, content.batch_size)
    out += b"".join(_bytes(6, _ref_info(i)) for i in content.signature_infos)
    for field, keys in ((7, content.keys), (8, content.revised_keys)):
        for key in sorted(keys, key=lambda k: k.key_data):
            out += _bytes(field, _ref_key(key))
    return out


# --- strategies ---------------------------------------------------------------------

_INT32_MAX = 2**31 - 1


@st.composite
def diagnosis_keys(draw: st.DrawFn) -> DiagnosisKey:
    period = draw(st.integers(1, 144))
    return DiagnosisKey(
        key_data=draw(st.binary(min_size=16, max_size=16)),
        rolling_start_interval_number=draw(
            st.one_of(st.just(0), st.integers(0, 3_000_000), st.integers(0, _INT32_MAX))
        ),
        rolling_period=period,
        transmission_risk_level=draw(st.integers(0, 8)),
        report_type=draw(st.sampled_from(ReportType)),
        days_since_onset_of_symptoms=draw(
            st.one_of(st.none(), st.integers(-14, 14), st.integers(-(2**31), _INT32_MAX))
        ),
    )


signature_infos = st.builds(
    export.SignatureInfo,
    verification_key_id=st.text(max_size=12),
    verification_key_version=st.text(max_size=4),
    signature_algorithm=st.sampled_from(
        [export.ECDSA_P256_SHA256_OID, export.ECDSA_P256_SHA512_OID]
    ),
)


@st.composite
def exports(draw: st.DrawFn) -> export.TemporaryExposureKeyExport:
    start = draw(st.integers(0, 2**64 - 1))
    size = draw(st.integers(1, 1000))
    return export.TemporaryExposureKeyExport(
        start_timestamp=start,
        end_timestamp=draw(st.integers(start, 2**64 - 1)),
        region=draw(st.text(max_size=8)),
        keys=tuple(draw(st.lists(diagnosis_keys(), max_size=20))),
        revised_keys=tuple(draw(st.lists(diagnosis_keys(), max_size=5))),
        batch_num=draw(st.integers(1, size)),
        batch_size=size,
        signature_infos=tuple(draw(st.lists(signature_infos, max_size=3))),
    )


def _sorted(content: export.TemporaryExposureKeyExport) -> export.TemporaryExposureKeyExport:
    return export.TemporaryExposureKeyExport(
        start_timestamp=content.start_timestamp,
        end_timestamp=content.end_timestamp,
        region=content.region,
        keys=tuple(sorted(content.keys, key=lambda k: k.key_data)),
        revised_keys=tuple(sorted(content.revised_keys, key=lambda k: k.key_data)),
        batch_num=content.batch_num,
        batch_size=content.batch_size,
        signature_infos=content.signature_infos,
    )


# --- tests --------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(exports())
def test_writer_matches_the_independent_encoder(content: export.TemporaryExposureKeyExport) -> None:
    """EXP-2, EXP-3: header, field order, presence rules, sorting, zigzag — byte for byte."""
    assert export.encode_export_bin(content) == _ref_export_bin(content)


@settings(max_examples=150, deadline=None)
@given(exports())
def test_round_trip(content: export.TemporaryExposureKeyExport) -> None:
    """EXP-3, EXP-4: write → read gives the same export, keys in key-byte order.

    Covers unaligned starts, periods below 144, negative days since onset (sint32
    zigzag), all report types and revised keys.
    """
    assert export.decode_export_bin(export.encode_export_bin(content)) == _sorted(content)


def test_negative_days_since_onset_is_zigzag() -> None:
    """EXP-3: days_since_onset_of_symptoms is sint32: −1 encodes as varint 1, not 10 bytes."""
    key = DiagnosisKey(bytes(16), 100, days_since_onset_of_symptoms=-1)
    data = export.encode_export_bin(export.TemporaryExposureKeyExport(0, 1, "DE", keys=(key,)))
    assert data.endswith(bytes.fromhex("3001"))
    assert export.decode_export_bin(data).keys[0].days_since_onset_of_symptoms == -1


def test_defaults_omitted_and_risk_always_written() -> None:
    """EXP-3: start 0 and period 144 are omitted; transmission risk 0 is still written."""
    key = DiagnosisKey(b"\x01" * 16, 0, 144, 0)
    data = export.encode_export_bin(export.TemporaryExposureKeyExport(0, 1, "DE", keys=(key,)))
    record = bytes.fromhex("0a10") + b"\x01" * 16 + bytes.fromhex("1000")
    assert data.endswith(bytes.fromhex("3a14") + record)


def test_revoked_revised_key_goes_to_field_8() -> None:
    """EXP-3: revised keys are a separate repeated field 8 carrying their new report type."""
    key = DiagnosisKey(b"\x02" * 16, 2_700_000, report_type=ReportType.REVOKED)
    content = export.TemporaryExposureKeyExport(0, 1, "DE", revised_keys=(key,))
    data = export.encode_export_bin(content)
    assert data[-(2 + len(_ref_key(key))) :] == _bytes(8, _ref_key(key))
    assert export.decode_export_bin(data).revised_keys == (key,)


@pytest.mark.parametrize(
    "key",
    [
        DiagnosisKey(bytes(15), 0),
        DiagnosisKey(bytes(16), 0, rolling_period=0),
        DiagnosisKey(bytes(16), 0, rolling_period=145),
        DiagnosisKey(bytes(16), 0, transmission_risk_level=9),
        DiagnosisKey(bytes(16), 2**31),
        DiagnosisKey(bytes(16), 0, days_since_onset_of_symptoms=2**31),
    ],
)
def test_writer_refuses_keys_it_cannot_export(key: DiagnosisKey) -> None:
    """EXP-3: a key that fails its checks or does not fit int32/sint32 is refused."""
    with pytest.raises(export.ExportFormatError):
        export.encode_export_bin(export.TemporaryExposureKeyExport(0, 1, "DE", keys=(key,)))
    with pytest.raises(export.ExportFormatError):
        export.encode_export_bin(export.TemporaryExposureKeyExport(0, 1, "DE", revised_keys=(key,)))


def test_writer_refuses_non_bytes_key_data_among_valid_keys() -> None:
    """EXP-3: key_data that is not bytes is refused as such, not as a sorting TypeError."""
    bad = DiagnosisKey("k" * 16, 0)  # type: ignore[arg-type]
    for keys in ((DiagnosisKey(bytes(16), 0), bad), (bad, DiagnosisKey(bytes(16), 0))):
        with pytest.raises(export.ExportFormatError, match=r"keys\[[01]\]"):
            export.encode_export_bin(export.TemporaryExposureKeyExport(0, 1, "DE", keys=keys))


@pytest.mark.parametrize(
    ("start", "end", "num", "size"),
    [(2, 1, 1, 1), (-1, 1, 1, 1), (0, 2**64, 1, 1), (0, 1, 0, 1), (0, 1, 2, 1), (0, 1, 1, 2**31)],
)
def test_writer_refuses_bad_window_or_batch(start: int, end: int, num: int, size: int) -> None:
    """EXP-2: 0 ≤ start ≤ end < 2^64 and 1 ≤ batch_num ≤ batch_size."""
    content = export.TemporaryExposureKeyExport(start, end, "DE", batch_num=num, batch_size=size)
    with pytest.raises(export.ExportFormatError):
        export.encode_export_bin(content)


def test_reader_is_strict_about_the_header() -> None:
    """EXP-2, EXP-4: a reader refuses any other 16-byte header, down to its padding
    spaces; a header cut short is 'truncated'."""
    good = export.encode_export_bin(export.TemporaryExposureKeyExport(0, 1, "DE"))
    for header in (b"EK Export v2    ", b"EK Export v1\x00\x00\x00\x00", b"EK Export v1   \t"):
        with pytest.raises(export.ExportFormatError):
            export.decode_export_bin(header + good[16:])
    with pytest.raises(export.ExportFormatError):
        export.decode_export_bin(good[1:])
    with pytest.raises(export.ExportTruncatedError):
        export.decode_export_bin(good[:10])


def test_reader_tolerates_unknown_fields_and_absent_fields() -> None:
    """EXP-4: unknown fields are skipped; absent fields take proto2 defaults."""
    unknown = _int(15, 7) + _bytes(16, b"future")
    key = _bytes(7, _bytes(1, b"\x03" * 16) + _int(9, 1) + _int(8, 2))
    content = export.decode_export_bin(b"EK Export v1    " + unknown + key)
    assert content.keys == (DiagnosisKey(b"\x03" * 16, 0, 144, 0),)
    assert (content.start_timestamp, content.region, content.batch_num) == (0, "", 0)


def test_reader_maps_unknown_report_type_to_unknown() -> None:
    """EXP-4: a report type this version does not know reads as UNKNOWN, not an error."""
    key = _bytes(7, _bytes(1, b"\x04" * 16) + _int(5, 42))
    content = export.decode_export_bin(b"EK Export v1    " + key)
    assert content.keys[0].report_type is ReportType.UNKNOWN


def test_truncated_body_is_reported_as_truncated() -> None:
    """EXP-4: a file cut inside a field raises ExportTruncatedError."""
    key = DiagnosisKey(b"\x05" * 16, 2_700_000)
    data = export.encode_export_bin(export.TemporaryExposureKeyExport(0, 1, "DE", keys=(key,)))
    for cut in range(17, len(data)):
        try:
            export.decode_export_bin(data[:cut])
        except export.ExportTruncatedError:
            continue
        # a cut exactly between two top-level fields is a valid, shorter message
        assert cut in {16 + 9, 16 + 18, 16 + 22, 16 + 24, 16 + 26}, cut


def test_signature_list_round_trip_and_field_numbers() -> None:
    """EXP-7: TEKSignature fields 1–4, SignatureInfo fields 3–5."""
    info = export.SignatureInfo("id", "v2")
    sig = export.TEKSignature(info, 3, 4, b"\x30\x00")
    data = export.encode_signature_list([sig])
    inner = _bytes(1, _ref_info(info)) + _int(2, 3) + _int(3, 4) + _bytes(4, b"\x30\x00")
    assert data == _bytes(1, inner)
    assert export.decode_signature_list(data) == (sig,)
    assert export.decode_signature_list(b"") == ()


@st.composite
def any_keys(draw: st.DrawFn) -> DiagnosisKey:
    """Keys with every field drawn from well beyond its legal range."""
    return DiagnosisKey(
        key_data=draw(st.binary(min_size=14, max_size=18)),
        rolling_start_interval_number=draw(st.integers(-5, 2**33)),
        rolling_period=draw(st.integers(-2, 150)),
        transmission_risk_level=draw(st.integers(-2, 10)),
        report_type=draw(st.one_of(st.sampled_from(ReportType), st.integers(-1, 7))),  # type: ignore[arg-type]
        days_since_onset_of_symptoms=draw(st.one_of(st.none(), st.integers(-(2**32), 2**32))),
    )


@settings(max_examples=300, deadline=None)
@given(any_keys())
def test_writer_accepts_exactly_the_exportable_keys(key: DiagnosisKey) -> None:
    """EXP-3: a key is written iff it passes DiagnosisKey.check and fits int32/sint32."""
    fits = key.rolling_start_interval_number <= _INT32_MAX and (
        key.days_since_onset_of_symptoms is None
        or -(2**31) <= key.days_since_onset_of_symptoms <= _INT32_MAX
    )
    exportable = key.check() is None and fits
    content = export.TemporaryExposureKeyExport(0, 1, "DE", keys=(key,))
    if exportable:
        assert export.encode_export_bin(content) == _ref_export_bin(content)
    else:
        with pytest.raises(export.ExportFormatError):
            export.encode_export_bin(content)


@pytest.mark.parametrize(
    "signature",
    [
        export.TEKSignature(export.SignatureInfo("\ud800", "v1"), 1, 1, b""),
        export.TEKSignature(export.SignatureInfo("a", "v1"), 2**31, 1, b""),
    ],
)
def test_signature_list_writer_refuses_unencodable_fields(signature: export.TEKSignature) -> None:
    """EXP-7: text that is not UTF-8 or numbers beyond int32 are refused, not half-written."""
    with pytest.raises(export.ExportFormatError):
        export.encode_signature_list([signature])
