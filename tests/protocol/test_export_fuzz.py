"""The export reader on hostile input: only ExportError ever escapes (SPEC EXP-4, EXP-9–11).

Arbitrary bytes and mutations (bit flips, truncation, insertion, deletion) of valid files —
a real reference-server export and one of ours — fed to every reading entry point.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from phe_trace.protocol import export
from phe_trace.protocol.diagnosis_key import DiagnosisKey, ReportType
from tests.vectors import VECTORS_DIR, load_vectors

_SERVER = load_vectors("gaen_export_files")["server_example"]
_SERVER_ZIP = (VECTORS_DIR / _SERVER["zip_file"]).read_bytes()
_SERVER_KEY = export.load_public_key_pem(
    (VECTORS_DIR / _SERVER["public_key_pem_file"]).read_bytes()
)
_SERVER_KEYS = {("some_id", "1"): _SERVER_KEY}

_OUR_PRIVATE = ec.derive_private_key(0x5EED, ec.SECP256R1())
_OUR_SIGNER = export.EcdsaSigner(_OUR_PRIVATE, export.SignatureInfo("fuzz", "v1"))
_OUR_ZIP = export.build_export_zip(
    export.TemporaryExposureKeyExport(
        0,
        3600,
        "DE",
        keys=(
            DiagnosisKey(b"\x07" * 16, 2_700_001, 7, 2, ReportType.CONFIRMED_TEST, -3),
            DiagnosisKey(b"\x08" * 16, 2_700_000),
        ),
        revised_keys=(DiagnosisKey(b"\x06" * 16, 2_699_856, report_type=ReportType.REVOKED),),
    ),
    [_OUR_SIGNER],
)
_OUR_KEYS = {("fuzz", "v1"): _OUR_PRIVATE.public_key()}
_OUR_FILES = export.unpack_export_zip(_OUR_ZIP)

_FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def mutations(draw: st.DrawFn, original: bytes) -> bytes:
    data = bytearray(original)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "cut", "insert", "delete", "set"]))
        position = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[position] ^= 1 << draw(st.integers(0, 7))
        elif kind == "cut":
            del data[position:]
        elif kind == "insert":
            data[position:position] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete":
            del data[position : position + draw(st.integers(1, 8))]
        elif data:
            data[position] = draw(st.integers(0, 255))
    return bytes(data)


def _read_everything(data: bytes) -> None:
    for call in (
        export.decode_export_bin,
        export.decode_signature_list,
        export.unpack_export_zip,
        lambda d: export.verify_export_zip(d, _OUR_KEYS),
        lambda d: export.verify_export(export.ExportArchive(d, d), _OUR_KEYS),
    ):
        try:
            call(data)
        except export.ExportError:
            pass


@_FUZZ
@given(st.binary(max_size=600))
def test_arbitrary_bytes_raise_only_export_errors(data: bytes) -> None:
    """EXP-4, EXP-9: no input makes a reader raise anything but ExportError."""
    _read_everything(data)
    _read_everything(b"EK Export v1    " + data)
    _read_everything(b"PK\x03\x04" + data)


def _check_mutated_zip(data: bytes, original_zip: bytes, keys: export.PublicKeys) -> None:
    expected = export.verify_export_zip(original_zip, keys)
    try:
        content = export.verify_export_zip(data, keys)
    except export.ExportError:
        return
    # accepted: the signed content must be exactly the original (zip metadata may vary)
    assert content == expected


@_FUZZ
@given(mutations(_SERVER_ZIP))
def test_mutated_reference_zip_is_refused_or_unchanged(data: bytes) -> None:
    """EXP-11: a mutated real export either fails with ExportError or reads unchanged."""
    _check_mutated_zip(data, _SERVER_ZIP, _SERVER_KEYS)


@_FUZZ
@given(mutations(_OUR_ZIP))
def test_mutated_own_zip_is_refused_or_unchanged(data: bytes) -> None:
    """EXP-11: the same for a zip we wrote, with revised keys and negative onset days."""
    _check_mutated_zip(data, _OUR_ZIP, _OUR_KEYS)


@_FUZZ
@given(mutations(_OUR_FILES.export_bin))
def test_mutated_export_bin_never_verifies(data: bytes) -> None:
    """EXP-11: any change to export.bin is refused (the signature covers every byte)."""
    try:
        export.decode_export_bin(data)
    except export.ExportError:
        pass
    archive = export.ExportArchive(data, _OUR_FILES.export_sig)
    try:
        export.verify_export(archive, _OUR_KEYS)
    except export.ExportError:
        return
    assert data == _OUR_FILES.export_bin


@_FUZZ
@given(mutations(_OUR_FILES.export_sig or b""))
def test_mutated_export_sig_raises_only_export_errors(data: bytes) -> None:
    """EXP-10, EXP-11: a mutated export.sig is refused or still carries a valid signature."""
    try:
        export.verify_export(export.ExportArchive(_OUR_FILES.export_bin, data), _OUR_KEYS)
    except export.ExportError:
        pass
