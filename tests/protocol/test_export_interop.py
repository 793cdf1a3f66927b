"""Real GAEN export files: our reader parses and verifies them, our writer reproduces them.

Files and their independently decoded contents: ``protocol_spec/vectors/gaen_export_files.json``
(Google's key server example, the EN SDK sample, two unsigned SDK files).
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from phe_trace.protocol import export
from phe_trace.protocol.diagnosis_key import DiagnosisKey, ReportType
from tests.vectors import VECTORS_DIR, load_vectors

VECTORS = load_vectors("gaen_export_files")
SERVER = VECTORS["server_example"]
SDK = VECTORS["sdk_sample"]
UNSIGNED = VECTORS["unsigned_samples"]


def _file(relative: str, sha256: str | None = None) -> bytes:
    data = (VECTORS_DIR / relative).read_bytes()
    if sha256 is not None:
        assert hashlib.sha256(data).hexdigest() == sha256, f"{relative} is not the published file"
    return data


def _server_zip() -> bytes:
    return _file(SERVER["zip_file"], SERVER["zip_sha256"])


def _sdk_zip() -> bytes:
    return _file(SDK["zip_file"], SDK["zip_sha256"])


def _server_public_key() -> ec.EllipticCurvePublicKey:
    return export.load_public_key_pem(_file(SERVER["public_key_pem_file"]))


def _sdk_public_key() -> ec.EllipticCurvePublicKey:
    return export.load_public_key_spki_base64(SDK["public_key_spki_base64_310_v1"])


def _key_from_json(entry: dict[str, Any]) -> DiagnosisKey:
    return DiagnosisKey(
        key_data=bytes.fromhex(entry["key_data"]),
        rolling_start_interval_number=entry.get("rolling_start_interval_number", 0),
        rolling_period=entry.get("rolling_period", 144),
        transmission_risk_level=entry.get("transmission_risk_level", 0),
    )


def _info_from_json(entry: dict[str, Any]) -> export.SignatureInfo:
    return export.SignatureInfo(
        verification_key_id=entry["verification_key_id"],
        verification_key_version=entry["verification_key_version"],
        signature_algorithm=entry["signature_algorithm"],
    )


def test_server_example_members_and_signature_hex() -> None:
    """EXP-8: the zip holds export.bin then export.sig, the published bytes."""
    archive = export.unpack_export_zip(_server_zip())
    assert archive.export_bin.hex() == SERVER["export_bin_hex"]
    assert archive.export_sig is not None
    assert archive.export_sig.hex() == SERVER["export_sig_hex"]
    names = [i.filename for i in zipfile.ZipFile(io.BytesIO(_server_zip())).infolist()]
    assert names == [export.EXPORT_BIN_NAME, export.EXPORT_SIG_NAME]


def test_server_example_parses_to_the_independent_decoding() -> None:
    """EXP-2, EXP-4: header and every field as decoded independently."""
    expected = SERVER["decoded_export"]
    content = export.verify_export_zip(
        _server_zip(),
        {(SERVER["verification_key_id"], SERVER["verification_key_version"]): _server_public_key()},
    )
    assert (content.start_timestamp, content.end_timestamp) == (
        expected["start_timestamp"],
        expected["end_timestamp"],
    )
    assert content.region == expected["region"]
    assert (content.batch_num, content.batch_size) == (
        expected["batch_num"],
        expected["batch_size"],
    )
    assert content.keys == tuple(_key_from_json(k) for k in expected["keys"])
    assert content.revised_keys == ()
    assert content.signature_infos == tuple(_info_from_json(i) for i in expected["signature_infos"])
    signatures = export.decode_signature_list(bytes.fromhex(SERVER["export_sig_hex"]))
    want = SERVER["decoded_signature_list"][0]
    assert len(signatures) == 1
    assert signatures[0].signature.hex() == want["signature"]
    assert signatures[0].signature_info == _info_from_json(want["signature_info"])
    assert (signatures[0].batch_num, signatures[0].batch_size) == (1, 1)


def test_server_example_verifies_with_single_pem_and_with_cryptography() -> None:
    """EXP-10: signature over the whole export.bin, header included; not over the proto."""
    archive = export.unpack_export_zip(_server_zip())
    export.verify_export(archive, _server_public_key())
    assert archive.export_sig is not None
    signature = export.decode_signature_list(archive.export_sig)[0].signature
    key = serialization.load_pem_public_key(_file(SERVER["public_key_pem_file"]))
    assert isinstance(key, ec.EllipticCurvePublicKey)
    key.verify(signature, archive.export_bin, ec.ECDSA(hashes.SHA256()))
    body_only = export.ExportArchive(archive.export_bin[16:], archive.export_sig)
    with pytest.raises(export.ExportFormatError):
        export.verify_export(body_only, _server_public_key())


def test_writer_reproduces_the_server_example_byte_for_byte() -> None:
    """EXP-3: same keys, window, region, batch and signature info → identical export.bin.

    The input comes from the independent decoding in the vector file, keys given in
    reverse order so that the writer's sorting is exercised too.
    """
    expected = SERVER["decoded_export"]
    content = export.TemporaryExposureKeyExport(
        start_timestamp=expected["start_timestamp"],
        end_timestamp=expected["end_timestamp"],
        region=expected["region"],
        keys=tuple(_key_from_json(k) for k in reversed(expected["keys"])),
        batch_num=expected["batch_num"],
        batch_size=expected["batch_size"],
        signature_infos=tuple(_info_from_json(i) for i in expected["signature_infos"]),
    )
    assert export.encode_export_bin(content).hex() == SERVER["export_bin_hex"]


def test_writer_reproduces_the_server_example_from_the_parsed_file() -> None:
    """EXP-3, EXP-4: decode → encode is the identity on the reference server's output."""
    archive = export.unpack_export_zip(_server_zip())
    assert export.encode_export_bin(export.decode_export_bin(archive.export_bin)) == (
        archive.export_bin
    )


def test_sdk_sample_verifies_with_key_310_v1() -> None:
    """EXP-4, EXP-10: 140 keys, header as decoded independently, signature by 310/v1."""
    content = export.verify_export_zip(_sdk_zip(), {("310", "v1"): _sdk_public_key()})
    header = SDK["header"]
    assert len(content.keys) == SDK["num_keys"] == 140
    assert (content.start_timestamp, content.end_timestamp, content.region) == (
        header["start_timestamp"],
        header["end_timestamp"],
        header["region"],
    )
    assert content.signature_infos == tuple(_info_from_json(i) for i in header["signature_infos"])
    assert content.keys[:3] == tuple(_key_from_json(k) for k in SDK["first_keys"])
    assert all(k.check() is None for k in content.keys)


def test_sdk_sample_refused_under_another_key_id_or_key() -> None:
    """EXP-11: a signature is only accepted from the configured (key id, version)."""
    with pytest.raises(export.ExportUnknownKeyError):
        export.verify_export_zip(_sdk_zip(), {("310", "v2"): _sdk_public_key()})
    with pytest.raises(export.ExportBadSignatureError):
        export.verify_export_zip(_sdk_zip(), {("310", "v1"): _server_public_key()})
    with pytest.raises(export.ExportBadSignatureError):
        export.verify_export_zip(_sdk_zip(), _server_public_key())


def test_sdk_sample_reencodes_identically() -> None:
    """EXP-3: the SDK's sample follows the same serialization rules as the server."""
    archive = export.unpack_export_zip(_sdk_zip())
    assert export.encode_export_bin(export.decode_export_bin(archive.export_bin)) == (
        archive.export_bin
    )


@pytest.mark.parametrize("sample", UNSIGNED, ids=lambda s: Path(s["bin_file"]).name)
def test_unsigned_samples_parse_with_old_signature_info(sample: dict[str, Any]) -> None:
    """EXP-4: the old SignatureInfo field 2 (android_package) is read, not refused."""
    data = _file(sample["bin_file"], sample["sha256"])
    content = export.decode_export_bin(data)
    header = sample["header"]
    assert len(content.keys) == sample["num_keys"]
    assert (content.start_timestamp, content.end_timestamp, content.region) == (
        header["start_timestamp"],
        header["end_timestamp"],
        header["region"],
    )
    assert (content.batch_num, content.batch_size) == (header["batch_num"], header["batch_size"])
    package = header["signature_infos"][0]["android_package"]
    assert [i.android_package for i in content.signature_infos] == [package]
    assert content.signature_infos[0].verification_key_id == ""
    assert all(k.check() is None for k in content.keys)
    assert all(k.report_type is ReportType.UNKNOWN for k in content.keys)
    with pytest.raises(export.ExportUnsignedError):
        export.verify_export(export.ExportArchive(data, None), _sdk_public_key())


def test_unsigned_sample_holds_the_roundtrip_key() -> None:
    """EXP-4: the key the SDK's round-trip test matches is read with its odd period."""
    sample = UNSIGNED[0]
    want = sample["roundtrip_key"]
    content = export.decode_export_bin(_file(sample["bin_file"]))
    found = [k for k in content.keys if k.key_data == bytes.fromhex(want["key_data"])]
    assert len(found) == 1
    assert found[0].rolling_start_interval_number == want["rolling_start_interval_number"]
    assert found[0].rolling_period == want["rolling_period"]


@pytest.mark.parametrize("sample", UNSIGNED, ids=lambda s: Path(s["bin_file"]).name)
def test_unsigned_samples_differ_from_our_writer_only_in_signature_info(
    sample: dict[str, Any],
) -> None:
    """EXP-3, EXP-5: with field 2 replaced by fields 3–5 the rest is byte-identical."""
    data = _file(sample["bin_file"])
    content = export.decode_export_bin(data)
    ours = export.encode_export_bin(content)
    old_info = _length_delimited(
        6, _length_delimited(2, content.signature_infos[0].android_package)
    )
    new_info = _length_delimited(
        6, _length_delimited(3, "") + _length_delimited(4, "") + _length_delimited(5, "")
    )
    assert old_info in data
    assert ours == data.replace(old_info, new_info)


def _length_delimited(field: int, value: str | bytes | None) -> bytes:
    raw = value.encode() if isinstance(value, str) else (value or b"")
    assert len(raw) < 128
    return bytes([field << 3 | 2, len(raw)]) + raw
