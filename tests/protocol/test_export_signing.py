"""Signing, verification and the export zip, with real ECDSA P-256 keys."""

from __future__ import annotations

import base64
import io
import struct
import zipfile

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from phe_trace.protocol import export
from phe_trace.protocol.diagnosis_key import DiagnosisKey, ReportType

KEYS = (
    DiagnosisKey(b"\x09" * 16, 2_700_000, 144, 3, ReportType.CONFIRMED_TEST, -2),
    DiagnosisKey(b"\x01" * 16, 2_700_007, 100, 0),
)
CONTENT = export.TemporaryExposureKeyExport(
    1_620_000_000, 1_620_003_600, "DE", keys=KEYS, batch_num=1, batch_size=1
)


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _signer(
    key_id: str = "hA", version: str = "v1"
) -> tuple[export.EcdsaSigner, ec.EllipticCurvePrivateKey]:
    private = _key()
    return export.EcdsaSigner(private, export.SignatureInfo(key_id, version)), private


def _public(private: ec.EllipticCurvePrivateKey) -> ec.EllipticCurvePublicKey:
    return private.public_key()


def test_our_signature_verifies_with_cryptography_over_the_whole_file() -> None:
    """EXP-6: ECDSA P-256 / SHA-256, DER, over export.bin with its header."""
    signer, private = _signer()
    files = export.build_export_files(CONTENT, [signer])
    assert files.export_sig is not None
    (signature,) = export.decode_signature_list(files.export_sig)
    assert signature.signature_info == export.SignatureInfo("hA", "v1", "1.2.840.10045.4.3.2")
    assert (signature.batch_num, signature.batch_size) == (1, 1)
    assert files.export_bin.startswith(b"EK Export v1    ")
    private.public_key().verify(signature.signature, files.export_bin, ec.ECDSA(hashes.SHA256()))
    assert signature.signature[0] == 0x30  # X9.62 DER SEQUENCE
    content = export.decode_export_bin(files.export_bin)
    assert content.signature_infos == (signer.signature_info,)


def test_rotation_writes_one_signature_per_key_and_either_key_verifies() -> None:
    """EXP-5, EXP-6, EXP-11: two signers → two infos, two signatures; each key suffices."""
    old, old_private = _signer("hA", "v1")
    new, new_private = _signer("hA", "v2")
    data = export.build_export_zip(CONTENT, [old, new])
    files = export.unpack_export_zip(data)
    assert files.export_sig is not None
    signatures = export.decode_signature_list(files.export_sig)
    assert [s.signature_info.verification_key_version for s in signatures] == ["v1", "v2"]
    for signature, private in zip(signatures, (old_private, new_private), strict=True):
        private.public_key().verify(
            signature.signature, files.export_bin, ec.ECDSA(hashes.SHA256())
        )
    assert export.verify_export_zip(data, {("hA", "v1"): _public(old_private)}).keys == tuple(
        sorted(KEYS, key=lambda k: k.key_data)
    )
    export.verify_export_zip(data, {("hA", "v2"): _public(new_private)})
    export.verify_export_zip(data, _public(new_private))


def test_zip_is_deterministic_and_ordered() -> None:
    """EXP-8: export.bin then export.sig, deflated, zero DOS dates; same input, same bytes."""
    first = export.pack_export_zip(b"EK Export v1    x", b"sig")
    assert first == export.pack_export_zip(b"EK Export v1    x", b"sig")
    infos = zipfile.ZipFile(io.BytesIO(first)).infolist()
    assert [i.filename for i in infos] == ["export.bin", "export.sig"]
    assert all(i.compress_type == zipfile.ZIP_DEFLATED for i in infos)
    # local file header: signature, version, flags, method, time, date (all by offset)
    header = struct.unpack("<IHHHHH", first[:14])
    assert header[0] == 0x04034B50 and header[3] == 8 and header[4:] == (0, 0)


def test_unknown_key_unsigned_and_mismatch_are_refused() -> None:
    """EXP-10, EXP-11: unsigned, unknown key id, signature count mismatch."""
    signer, private = _signer()
    files = export.build_export_files(CONTENT, [signer])
    trusted = {("hA", "v1"): _public(private)}
    with pytest.raises(export.ExportUnsignedError):
        export.verify_export(export.ExportArchive(files.export_bin, None), trusted)
    with pytest.raises(export.ExportUnsignedError):
        export.verify_export(export.ExportArchive(files.export_bin, b""), trusted)
    with pytest.raises(export.ExportUnknownKeyError):
        export.verify_export(files, {("hB", "v1"): _public(private)})
    assert files.export_sig is not None
    (signature,) = export.decode_signature_list(files.export_sig)
    doubled = export.encode_signature_list([signature, signature])
    with pytest.raises(export.ExportSignatureMismatchError):
        export.verify_export(export.ExportArchive(files.export_bin, doubled), trusted)


def test_batch_numbers_must_agree() -> None:
    """EXP-10: 1 ≤ batch_num ≤ batch_size; the signature carries the export's batch."""
    signer, private = _signer()
    trusted = {("hA", "v1"): _public(private)}
    content = export.TemporaryExposureKeyExport(0, 1, "DE", batch_num=2, batch_size=3)
    files = export.build_export_files(content, [signer])
    assert export.verify_export(files, trusted).batch_num == 2
    export_bin = files.export_bin
    wrong = export.sign_export_bin(export_bin, [signer], batch_num=1, batch_size=3)
    with pytest.raises(export.ExportSignatureMismatchError):
        export.verify_export(export.ExportArchive(export_bin, wrong), trusted)


def test_tampered_key_or_signature_is_a_bad_signature() -> None:
    """EXP-11: any change to a signed byte refuses the export, opaquely."""
    signer, private = _signer()
    trusted = {("hA", "v1"): _public(private)}
    files = export.build_export_files(CONTENT, [signer])
    index = files.export_bin.index(b"\x09" * 16)
    tampered = bytearray(files.export_bin)
    tampered[index] ^= 0x01
    with pytest.raises(export.ExportBadSignatureError):
        export.verify_export(export.ExportArchive(bytes(tampered), files.export_sig), trusted)
    assert files.export_sig is not None
    (signature,) = export.decode_signature_list(files.export_sig)
    for bad in (signature.signature[:-1], b"", b"\x30\x00", bytes(len(signature.signature))):
        sig = export.encode_signature_list(
            [export.TEKSignature(signature.signature_info, 1, 1, bad)]
        )
        with pytest.raises(export.ExportBadSignatureError):
            export.verify_export(export.ExportArchive(files.export_bin, sig), trusted)


def test_unknown_algorithm_never_verifies() -> None:
    """EXP-11: only the ECDSA OIDs are accepted; another OID is a bad signature."""
    signer, private = _signer()
    files = export.build_export_files(CONTENT, [signer])
    assert files.export_sig is not None
    (signature,) = export.decode_signature_list(files.export_sig)
    info = export.SignatureInfo("hA", "v1", "1.2.840.113549.1.1.11")
    sig = export.encode_signature_list([export.TEKSignature(info, 1, 1, signature.signature)])
    with pytest.raises(export.ExportBadSignatureError):
        export.verify_export(export.ExportArchive(files.export_bin, sig), _public(private))


def test_sha512_signatures_verify() -> None:
    """EXP-11: OID 1.2.840.10045.4.3.4 (ECDSA with SHA-512) is accepted too."""
    private = _key()
    info = export.SignatureInfo("hA", "v1", export.ECDSA_P256_SHA512_OID)
    content = export.TemporaryExposureKeyExport(0, 1, "DE", signature_infos=(info,))
    export_bin = export.encode_export_bin(content)
    der = private.sign(export_bin, ec.ECDSA(hashes.SHA512()))
    sig = export.encode_signature_list([export.TEKSignature(info, 1, 1, der)])
    export.verify_export(export.ExportArchive(export_bin, sig), {("hA", "v1"): _public(private)})


def test_signer_refuses_other_curves_and_algorithms() -> None:
    """EXP-6: signing keys are P-256 and the OID is ECDSA-SHA256."""
    with pytest.raises(export.ExportKeyError):
        export.EcdsaSigner(ec.generate_private_key(ec.SECP384R1()), export.SignatureInfo("a", "1"))
    with pytest.raises(export.ExportKeyError):
        export.EcdsaSigner(_key(), export.SignatureInfo("a", "1", export.ECDSA_P256_SHA512_OID))
    with pytest.raises(export.ExportKeyError):
        export.build_export_zip(CONTENT, [])
    signer, _ = _signer()
    assert isinstance(signer, export.Signer)


def test_key_loading_helpers() -> None:
    """EXP-12: PEM and base64 SPKI load to the same key; other keys are refused."""
    private = _key()
    pem = export.public_key_pem(private.public_key())
    spki = export.public_key_spki_base64(private.public_key())
    der = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert base64.b64decode(spki) == der
    assert export.load_public_key_pem(pem) == private.public_key()
    assert export.load_public_key_pem(pem.decode()) == private.public_key()
    assert export.load_public_key_spki_base64(spki) == private.public_key()
    reloaded = export.load_private_key_pem(export.private_key_pem(private))
    assert reloaded.private_numbers() == private.private_numbers()
    rsa_pem = (
        rsa.generate_private_key(65537, 2048)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    p384 = ec.generate_private_key(ec.SECP384R1()).public_key()
    for bad in (b"", b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", rsa_pem):
        with pytest.raises(export.ExportKeyError):
            export.load_public_key_pem(bad)
    for bad_b64 in ("not base64!", "", export.public_key_spki_base64(p384)):
        with pytest.raises(export.ExportKeyError):
            export.load_public_key_spki_base64(bad_b64)
    with pytest.raises(export.ExportKeyError):
        export.load_private_key_pem(b"garbage")


def _zip(members: list[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members:
            archive.writestr(name, data)
    return buffer.getvalue()


def test_zip_bomb_is_refused_before_inflating() -> None:
    """EXP-9: a member over the limit raises ExportTooLargeError (default 20 MiB)."""
    bomb = _zip([("export.bin", bytes(25 * 1024 * 1024)), ("export.sig", b"")])
    assert len(bomb) < 100_000
    with pytest.raises(export.ExportTooLargeError):
        export.unpack_export_zip(bomb)
    small = _zip([("export.bin", bytes(2000)), ("export.sig", b"")])
    with pytest.raises(export.ExportTooLargeError):
        export.unpack_export_zip(small, max_member_size=1000)
    assert export.unpack_export_zip(small, max_member_size=2000).export_bin == bytes(2000)


def test_zip_with_lying_size_is_refused() -> None:
    """EXP-9: a central directory that understates a member's size does not bypass the cap."""
    data = bytearray(_zip([("export.bin", bytes(5000))]))
    central = data.rindex(b"PK\x01\x02")
    struct.pack_into("<I", data, central + 24, 10)  # uncompressed size in the directory
    with pytest.raises(export.ExportFormatError):
        export.unpack_export_zip(bytes(data), max_member_size=100)


def test_zip_member_rules() -> None:
    """EXP-9: export.bin is required, duplicates are refused, other members ignored."""
    with pytest.raises(export.ExportFormatError):
        export.unpack_export_zip(_zip([("export.sig", b"")]))
    with pytest.warns(UserWarning):
        duplicate = _zip([("export.bin", b"a"), ("export.bin", b"b")])
    with pytest.raises(export.ExportFormatError):
        export.unpack_export_zip(duplicate)
    archive = export.unpack_export_zip(_zip([("README", b"x"), ("export.bin", b"a")]))
    assert archive == export.ExportArchive(b"a", None)
    with pytest.raises(export.ExportFormatError):
        export.unpack_export_zip(b"not a zip")


def test_truncated_zip_is_reported_as_truncated() -> None:
    """EXP-9: a download cut short is ExportTruncatedError."""
    signer, _ = _signer()
    data = export.build_export_zip(CONTENT, [signer])
    for cut in (len(data) - 1, len(data) // 2, 10):
        with pytest.raises(export.ExportTruncatedError):
            export.unpack_export_zip(data[:cut])


def test_an_export_is_a_zip_of_the_keys_and_their_signatures() -> None:
    """EXP-1: one region, one window, keys and signatures in one zip, read back whole."""
    signer, private = _signer()
    data = export.build_export_zip(CONTENT, [signer])
    names = sorted(zipfile.ZipFile(io.BytesIO(data)).namelist())
    assert names == ["export.bin", "export.sig"]
    content = export.verify_export_zip(data, {("hA", "v1"): _public(private)})
    assert (content.region, content.start_timestamp, content.end_timestamp) == (
        "DE",
        1_620_000_000,
        1_620_003_600,
    )
    assert set(content.keys) == set(KEYS)


def _part(
    num: int, size: int, start: int = 0, region: str = "DE"
) -> export.TemporaryExposureKeyExport:
    return export.TemporaryExposureKeyExport(
        start, start + 3600 + num, region, batch_num=num, batch_size=size
    )


def test_split_batches_must_be_complete() -> None:
    """EXP-11: every file of a split batch present exactly once, per region and window."""
    export.check_batches_complete([_part(2, 3), _part(1, 3), _part(3, 3), _part(1, 1, start=7200)])
    export.check_batches_complete(
        [_part(1, 2), _part(2, 2), _part(1, 2, region="FR"), _part(2, 2, region="FR")]
    )
    export.check_batches_complete([])
    for parts in (
        [_part(1, 3), _part(3, 3)],
        [_part(1, 2), _part(1, 2), _part(2, 2)],
        [_part(1, 2), _part(1, 2)],
        [_part(1, 2), _part(2, 2), _part(1, 2, region="FR")],
    ):
        with pytest.raises(export.ExportIncompleteBatchError):
            export.check_batches_complete(parts)


def test_public_surface_is_pinned() -> None:
    """The names the server and the agent build on stay importable."""
    required = {
        "TemporaryExposureKeyExport",
        "SignatureInfo",
        "TEKSignature",
        "ExportArchive",
        "EcdsaSigner",
        "Signer",
        "PublicKeys",
        "encode_export_bin",
        "decode_export_bin",
        "encode_signature_list",
        "decode_signature_list",
        "sign_export_bin",
        "build_export_files",
        "build_export_zip",
        "pack_export_zip",
        "unpack_export_zip",
        "verify_export",
        "verify_export_zip",
        "check_batches_complete",
        "load_public_key_pem",
        "load_public_key_spki_base64",
        "load_private_key_pem",
        "public_key_pem",
        "public_key_spki_base64",
        "private_key_pem",
        "export_file_name",
        "parse_export_file_name",
        "ExportFileName",
        "index_file_name",
        "format_index",
        "parse_index",
        "EXPORT_BIN_HEADER",
        "DEFAULT_MAX_MEMBER_SIZE",
    }
    assert required <= set(export.__all__)
    assert all(hasattr(export, name) for name in export.__all__)


@pytest.mark.parametrize("method", [zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA])
def test_zip_compressions_without_output_bound_are_refused(method: int) -> None:
    """EXP-9: only stored and deflated members are read (bzip2/LZMA bombs inflate unbounded)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as archive:
        archive.writestr("export.bin", b"EK Export v1    ")
    with pytest.raises(export.ExportFormatError):
        export.unpack_export_zip(buffer.getvalue())
    stored = io.BytesIO()
    with zipfile.ZipFile(stored, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("export.bin", b"EK Export v1    ")
    assert export.unpack_export_zip(stored.getvalue()).export_bin == b"EK Export v1    "
