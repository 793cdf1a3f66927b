"""Federation batches: canonical signed bytes, protobuf and JSON forms, CMS signatures.

Known answers and fixtures: ``protocol_spec/vectors/efgs_batches.json`` (the gateway's own
test data: 5,000 canonical key strings, three protobuf fixtures at integer edge values).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from phe_trace.protocol import efgs, efgs_cms
from phe_trace.protocol.errors import BatchFormatError, BatchSignatureError
from tests.vectors import VECTORS_DIR, load_vectors

VECTORS = load_vectors("efgs_batches")
NOW = dt.datetime(2026, 6, 1, tzinfo=dt.UTC).timestamp()


def _bytes(column: str) -> bytes:
    return bytes(int(v) for v in column.strip("[]").split(",") if v)


def _int(column: str) -> int:
    return int.from_bytes(_bytes(column), "big", signed=True)


def _known_answers() -> list[tuple[efgs.BatchKey, str]]:
    lines = (VECTORS_DIR / VECTORS["canonical_bytes_file"]).read_text().splitlines()
    cases = []
    for line in lines:
        c = line.split("|")
        visited = c[8].strip("[]")
        key = efgs.BatchKey(
            key_data=_bytes(c[0]),
            rolling_start_interval_number=_int(c[2]) & 0xFFFFFFFF,
            rolling_period=_int(c[4]) & 0xFFFFFFFF,
            transmission_risk_level=_int(c[6]),
            visited_countries=tuple(visited.split(",")) if visited else (),
            origin=c[10].strip("[]"),
            report_type=_int(c[12]),
            days_since_onset_of_symptoms=_int(c[14]),
        )
        cases.append((key, c[16]))
    return cases


KNOWN = _known_answers()


def _key(n: int = 0, origin: str = "DE") -> efgs.BatchKey:
    return efgs.BatchKey(bytes([n]) * 16, 2_900_000 + n, 144, 0x7FFFFFFF, ("FR",), origin, 1, -3)


def test_canonical_key_strings_reproduce_all_known_answers() -> None:
    """FED-2: each key's canonical string, Base64-encoded, equals the gateway's known answer
    for all 5,000 keys (fields taken from the byte lists, not from our own encoder)."""
    assert len(KNOWN) == 5000
    for key, expected in KNOWN:
        assert base64.b64encode(efgs.key_signing_bytes(key)).decode() == expected


def test_batch_bytes_sort_by_the_base64_of_each_key_string() -> None:
    """FED-2: the batch bytes are the key strings ordered by their Base64 (the known answers'
    last column), whatever order the keys arrive in."""
    keys = [k for k, _ in KNOWN]
    expected = b"".join(base64.b64decode(a) for a in sorted(a for _, a in KNOWN))
    assert efgs.batch_signing_bytes(keys) == expected
    assert efgs.batch_signing_bytes(reversed(keys)) == expected


def test_protobuf_fixtures_round_trip_with_their_decoded_values() -> None:
    """FED-1: the three edge-value fixtures decode to the values protoc reads and encode back
    to the same bytes."""
    for fixture in VECTORS["protobuf_fixtures"]:
        data = (VECTORS_DIR / fixture["file"]).read_bytes()
        keys = efgs.decode_protobuf(data)
        expected = efgs.decode_json(json.dumps({"keys": fixture["keys"]}).encode())
        assert keys == expected
        assert efgs.encode_protobuf(keys) == data


def test_json_and_protobuf_forms_carry_the_same_keys() -> None:
    """FED-1: a batch written as JSON (report types by name) reads back equal to its protobuf."""
    keys = [_key(i) for i in range(5)] + [k for k, _ in KNOWN[:20]]
    assert efgs.decode_json(efgs.encode_json(keys)) == keys
    assert efgs.decode_protobuf(efgs.encode_protobuf(keys)) == keys
    numeric = b'{"keys":[{"keyData":"AAAAAAAAAAAAAAAAAAAAAA==","reportType":2}]}'
    assert efgs.decode_json(numeric)[0].report_type == 2


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"keys": {}}',
        b'{"keys": [1]}',
        b'{"keys": [{"keyData": "***"}]}',
        b'{"keys": [{"rollingPeriod": "x"}]}',
        b'{"keys": [{"rollingPeriod": -1}]}',
        b'{"keys": [{"reportType": "NOPE"}]}',
        b'{"keys": [{"origin": "D,E"}]}',
        b'{"keys": [{"visitedCountries": "FR"}]}',
    ],
)
def test_malformed_json_is_refused(body: bytes) -> None:
    """FED-1: a JSON body that is not a DiagnosisKeyBatch raises BatchFormatError."""
    with pytest.raises(BatchFormatError):
        efgs.decode_json(body)


def test_malformed_protobuf_is_refused() -> None:
    """FED-1: truncated protobuf raises BatchFormatError, not a protobuf exception."""
    data = efgs.encode_protobuf([_key(1)])
    with pytest.raises(BatchFormatError):
        efgs.decode_protobuf(data[:-3])


def test_payload_hash_changes_with_any_field() -> None:
    """FED-2: the duplicate key of a gateway is the SHA-256 of the canonical string: equal keys hash
    equal, one changed field hashes differently."""
    a = _key(1)
    assert efgs.payload_hash(a) == efgs.payload_hash(_key(1))
    assert efgs.payload_hash(a) != efgs.payload_hash(_key(1, origin="FR"))


def make_signer(
    country: str = "DE", *, rsa_key: bool = False, days: int = 400
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey]:
    """A self-signed signing certificate with ``C=country`` (as members onboard them)."""
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
    if rsa_key:
        key = rsa.generate_private_key(65537, 2048)
    else:
        key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(x509.NameOID.COUNTRY_NAME, country),
            x509.NameAttribute(x509.NameOID.COMMON_NAME, f"{country} signing"),
        ]
    )
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=days))
        .sign(key, hashes.SHA256())
    )
    return cert, key


@pytest.mark.parametrize("rsa_key", [False, True])
def test_signature_verifies_and_names_its_signer(rsa_key: bool) -> None:
    """FED-3: a detached signature over the batch bytes verifies and yields the signer's
    certificate, whose thumbprint and country the gateway checks."""
    cert, key = make_signer("DE", rsa_key=rsa_key)
    data = efgs.batch_signing_bytes([_key(i) for i in range(3)])
    sig = efgs_cms.sign_batch(data, cert, key)
    signer = efgs_cms.verify_batch(data, sig, NOW)
    assert efgs_cms.certificate_thumbprint(signer) == efgs_cms.certificate_thumbprint(cert)
    assert efgs_cms.certificate_country(signer) == "DE"


def test_tampered_key_breaks_the_signature() -> None:
    """FED-3: one changed field of one key makes the signature fail."""
    cert, key = make_signer()
    keys = [_key(i) for i in range(3)]
    sig = efgs_cms.sign_batch(efgs.batch_signing_bytes(keys), cert, key)
    tampered = [*keys[:2], efgs.BatchKey(**{**_asdict(keys[2]), "transmission_risk_level": 8})]
    with pytest.raises(BatchSignatureError):
        efgs_cms.verify_batch(efgs.batch_signing_bytes(tampered), sig, NOW)


def _asdict(key: efgs.BatchKey) -> dict[str, object]:
    return {f: getattr(key, f) for f in efgs.BatchKey.__slots__}


def test_expired_certificate_and_garbage_are_refused() -> None:
    """FED-3: a certificate outside its validity and bytes that are not CMS are refused."""
    cert, key = make_signer(days=10)
    data = efgs.batch_signing_bytes([_key(1)])
    sig = efgs_cms.sign_batch(data, cert, key)
    with pytest.raises(BatchSignatureError):
        efgs_cms.verify_batch(data, sig, NOW)
    for garbage in (b"", b"\x30\x03\x02\x01\x01", sig[:-10]):
        with pytest.raises(BatchSignatureError):
            efgs_cms.verify_batch(data, garbage, NOW)
    with pytest.raises(BatchSignatureError):
        efgs_cms.decode_signature_header("@@@")


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_openssl_signatures_verify_and_ours_verify_in_openssl(tmp_path: Path) -> None:
    """FED-3: interoperability with an independent CMS implementation: a detached signature
    made by ``openssl cms`` verifies with ours (also one without signed attributes), and
    ``openssl cms -verify`` accepts ours; an attached (non-detached) one is refused."""
    cert, key = make_signer("FR")
    data = efgs.batch_signing_bytes([_key(i, "FR") for i in range(4)])
    (tmp_path / "data").write_bytes(data)
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    base = ["openssl", "cms", "-sign", "-binary", "-outform", "DER", "-md", "sha256"]
    files = ["-in", "data", "-signer", "cert.pem", "-inkey", "key.pem"]
    for extra in ([], ["-noattr"]):
        der = subprocess.run([*base, *files, *extra], cwd=tmp_path, capture_output=True, check=True)
        signer = efgs_cms.verify_batch(data, der.stdout, NOW)
        assert efgs_cms.certificate_country(signer) == "FR"
    attached = subprocess.run([*base, "-nodetach", *files], cwd=tmp_path, capture_output=True)
    with pytest.raises(BatchSignatureError):
        efgs_cms.verify_batch(data, attached.stdout, NOW)
    (tmp_path / "ours.der").write_bytes(efgs_cms.sign_batch(data, cert, key))
    verify = [
        "openssl",
        "cms",
        "-verify",
        "-binary",
        "-inform",
        "DER",
        "-in",
        "ours.der",
        "-content",
        "data",
        "-noverify",
        "-out",
        "/dev/null",
    ]
    assert subprocess.run(verify, cwd=tmp_path, capture_output=True).returncode == 0
    (tmp_path / "data").write_bytes(data[:-1] + b"!")
    assert subprocess.run(verify, cwd=tmp_path, capture_output=True).returncode != 0
