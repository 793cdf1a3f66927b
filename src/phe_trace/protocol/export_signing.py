"""Signing and verifying exports: ECDSA P-256 over the whole export.bin.

``protocol_spec/SPEC.md`` §12 (EXP-5 … EXP-7, EXP-10 … EXP-12). A health authority signs
every export.bin (header included) with each of its active signing keys — several
during a key rotation — and puts one ``TEKSignature`` per key in export.sig, in the
order of ``signature_infos``. A device accepts an export when the signature list
matches the export and at least one signature by a key it trusts verifies.

:class:`Signer` is the interface (a key in an HSM or a cloud KMS can implement it);
:class:`EcdsaSigner` is the one backed by a ``cryptography`` private key.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol, runtime_checkable

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from .errors import (
    ExportBadSignatureError,
    ExportFormatError,
    ExportIncompleteBatchError,
    ExportKeyError,
    ExportSignatureMismatchError,
    ExportUnknownKeyError,
    ExportUnsignedError,
)
from .export_archive import (
    DEFAULT_MAX_MEMBER_SIZE,
    ExportArchive,
    pack_export_zip,
    unpack_export_zip,
)
from .export_format import (
    ECDSA_P256_SHA256_OID,
    ECDSA_P256_SHA512_OID,
    SignatureInfo,
    TEKSignature,
    TemporaryExposureKeyExport,
    decode_export_bin,
    decode_signature_list,
    encode_export_bin,
    encode_signature_list,
)

__all__ = [
    "EcdsaSigner",
    "PublicKeys",
    "Signer",
    "build_export_files",
    "build_export_zip",
    "check_batches_complete",
    "load_private_key_pem",
    "load_public_key_pem",
    "load_public_key_spki_base64",
    "private_key_pem",
    "public_key_pem",
    "public_key_spki_base64",
    "sign_export_bin",
    "verify_export",
    "verify_export_zip",
]

#: Trusted verification keys by (verification_key_id, verification_key_version).
PublicKeys = Mapping[tuple[str, str], ec.EllipticCurvePublicKey]

_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    ECDSA_P256_SHA256_OID: hashes.SHA256,
    ECDSA_P256_SHA512_OID: hashes.SHA512,
}


@runtime_checkable
class Signer(Protocol):
    """Something that signs export.bin files under one :class:`SignatureInfo`."""

    @property
    def signature_info(self) -> SignatureInfo:
        """The key id, version and algorithm OID written next to the signature."""
        ...

    def sign(self, data: bytes) -> bytes:
        """X9.62 DER ECDSA signature of ``data`` (the whole export.bin)."""
        ...


def _check_p256(key: object, what: str) -> None:
    curve = getattr(key, "curve", None)
    if not isinstance(curve, ec.SECP256R1):
        raise ExportKeyError(f"{what} is not an ECDSA P-256 key")


class EcdsaSigner:
    """A :class:`Signer` backed by a ``cryptography`` ECDSA P-256 private key (EXP-6).

    Only the SHA-256 algorithm (OID ``1.2.840.10045.4.3.2``) is produced.
    """

    def __init__(
        self, private_key: ec.EllipticCurvePrivateKey, signature_info: SignatureInfo
    ) -> None:
        if not isinstance(private_key, ec.EllipticCurvePrivateKey):
            raise ExportKeyError("signing key is not an elliptic-curve private key")
        _check_p256(private_key, "signing key")
        if signature_info.signature_algorithm != ECDSA_P256_SHA256_OID:
            raise ExportKeyError(
                f"signature algorithm must be {ECDSA_P256_SHA256_OID}, "
                f"got {signature_info.signature_algorithm!r}"
            )
        self._private_key = private_key
        self._signature_info = dataclasses.replace(signature_info, android_package=None)

    @property
    def signature_info(self) -> SignatureInfo:
        """The key id, version and algorithm OID this signer writes."""
        return self._signature_info

    @property
    def public_key(self) -> ec.EllipticCurvePublicKey:
        """The public key that verifies this signer's signatures."""
        return self._private_key.public_key()

    def sign(self, data: bytes) -> bytes:
        """ECDSA P-256 / SHA-256 signature of ``data``, X9.62 DER."""
        return self._private_key.sign(data, ec.ECDSA(hashes.SHA256()))


# --- writing ------------------------------------------------------------------------


def sign_export_bin(
    export_bin: bytes, signers: Sequence[Signer], *, batch_num: int, batch_size: int
) -> bytes:
    """export.sig: one ``TEKSignature`` per signer, over the whole export.bin (EXP-6)."""
    return encode_signature_list(
        [
            TEKSignature(
                signature_info=signer.signature_info,
                batch_num=batch_num,
                batch_size=batch_size,
                signature=signer.sign(export_bin),
            )
            for signer in signers
        ]
    )


def build_export_files(
    export: TemporaryExposureKeyExport, signers: Sequence[Signer]
) -> ExportArchive:
    """Encode and sign: export.bin with the signers' infos, and its export.sig (EXP-5).

    ``export.signature_infos`` is replaced by the signers' infos, in signer order.
    At least one signer is required.
    """
    if not signers:
        raise ExportKeyError("an export needs at least one signer")
    export = dataclasses.replace(
        export, signature_infos=tuple(signer.signature_info for signer in signers)
    )
    export_bin = encode_export_bin(export)
    export_sig = sign_export_bin(
        export_bin, signers, batch_num=export.batch_num, batch_size=export.batch_size
    )
    return ExportArchive(export_bin=export_bin, export_sig=export_sig)


def build_export_zip(export: TemporaryExposureKeyExport, signers: Sequence[Signer]) -> bytes:
    """The signed export zip, ready to publish (EXP-5, EXP-8)."""
    files = build_export_files(export, signers)
    assert files.export_sig is not None
    return pack_export_zip(files.export_bin, files.export_sig)


# --- verifying ----------------------------------------------------------------------


def _check_batch(export: TemporaryExposureKeyExport, signatures: Sequence[TEKSignature]) -> None:
    if not 1 <= export.batch_num <= export.batch_size:
        raise ExportFormatError(
            f"batch {export.batch_num} of {export.batch_size} is not 1 <= num <= size"
        )
    for signature in signatures:
        if (signature.batch_num, signature.batch_size) != (export.batch_num, export.batch_size):
            raise ExportSignatureMismatchError(
                "a signature's batch_num/batch_size differ from the export's"
            )


def _candidates(
    signatures: Sequence[TEKSignature],
    public_keys: PublicKeys | ec.EllipticCurvePublicKey,
) -> list[tuple[TEKSignature, ec.EllipticCurvePublicKey]]:
    if isinstance(public_keys, ec.EllipticCurvePublicKey):
        return [(signature, public_keys) for signature in signatures]
    found = []
    for signature in signatures:
        info = signature.signature_info
        key = public_keys.get((info.verification_key_id, info.verification_key_version))
        if key is not None:
            found.append((signature, key))
    return found


def _verifies(signature: TEKSignature, key: ec.EllipticCurvePublicKey, data: bytes) -> bool:
    hash_type = _HASHES.get(signature.signature_info.signature_algorithm)
    if hash_type is None:
        return False
    try:
        key.verify(signature.signature, data, ec.ECDSA(hash_type()))
    except (InvalidSignature, ValueError):
        return False
    return True


def verify_export(
    archive: ExportArchive,
    public_keys: PublicKeys | ec.EllipticCurvePublicKey,
    *,
    columns: bool = False,
) -> TemporaryExposureKeyExport:
    """Check export.sig against export.bin and return the decoded export (EXP-10, EXP-11),
    its keys as columns with ``columns`` (:func:`decode_export_bin`).

    ``public_keys`` maps (key id, version) to trusted keys; a single public key is
    tried against every signature whatever its key id. Refusals, in order of checking:
    :class:`ExportFormatError` (malformed or inconsistent batch numbers),
    :class:`ExportUnsignedError`, :class:`ExportSignatureMismatchError` (count or batch),
    :class:`ExportUnknownKeyError`, :class:`ExportBadSignatureError`.
    """
    export = decode_export_bin(archive.export_bin, columns=columns)
    if archive.export_sig is None:
        raise ExportUnsignedError("export zip has no export.sig")
    signatures = decode_signature_list(archive.export_sig)
    if not signatures:
        raise ExportUnsignedError("export.sig holds no signature")
    if len(signatures) != len(export.signature_infos):
        raise ExportSignatureMismatchError(
            f"export.sig holds {len(signatures)} signatures for "
            f"{len(export.signature_infos)} signature infos"
        )
    _check_batch(export, signatures)
    candidates = _candidates(signatures, public_keys)
    if not candidates:
        raise ExportUnknownKeyError("no signature was made by a trusted key")
    if not any(_verifies(sig, key, archive.export_bin) for sig, key in candidates):
        raise ExportBadSignatureError("export signature does not verify")
    return export


def verify_export_zip(
    data: bytes,
    public_keys: PublicKeys | ec.EllipticCurvePublicKey,
    *,
    max_member_size: int = DEFAULT_MAX_MEMBER_SIZE,
    columns: bool = False,
) -> TemporaryExposureKeyExport:
    """Unpack an export zip, verify it (:func:`verify_export`) and return its content."""
    archive = unpack_export_zip(data, max_member_size=max_member_size)
    return verify_export(archive, public_keys, columns=columns)


def check_batches_complete(exports: Iterable[TemporaryExposureKeyExport]) -> None:
    """Refuse a set of exports in which a split batch is incomplete (EXP-11).

    The files of one batch share region, ``start_timestamp`` and ``batch_size`` (the
    reference server bumps ``end_timestamp`` per file); together they must carry every
    ``batch_num`` from 1 to ``batch_size`` exactly once. Raises
    :class:`ExportIncompleteBatchError`.
    """
    batches: dict[tuple[str, int, int], list[int]] = {}
    for content in exports:
        group = (content.region, content.start_timestamp, content.batch_size)
        batches.setdefault(group, []).append(content.batch_num)
    for (region, start, size), numbers in batches.items():
        if sorted(numbers) != list(range(1, size + 1)):
            raise ExportIncompleteBatchError(
                f"batch of region {region!r} starting {start} has files {sorted(numbers)} of {size}"
            )


# --- keys ---------------------------------------------------------------------------


def _as_public_p256(key: object) -> ec.EllipticCurvePublicKey:
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ExportKeyError("public key is not an elliptic-curve key")
    _check_p256(key, "public key")
    return key


def load_public_key_pem(pem: bytes | str) -> ec.EllipticCurvePublicKey:
    """Load a PEM ``PUBLIC KEY`` (SubjectPublicKeyInfo); it must be ECDSA P-256."""
    data = pem.encode("ascii", "replace") if isinstance(pem, str) else bytes(pem)
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise ExportKeyError("not a PEM public key") from exc
    return _as_public_p256(key)


def load_public_key_spki_base64(spki: str | bytes) -> ec.EllipticCurvePublicKey:
    """Load a base64 SubjectPublicKeyInfo DER — the form GAEN distributes keys in."""
    try:
        der = base64.b64decode(spki, validate=True)
        key = serialization.load_der_public_key(der)
    except (binascii.Error, ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise ExportKeyError("not a base64 SubjectPublicKeyInfo") from exc
    return _as_public_p256(key)


def public_key_pem(key: ec.EllipticCurvePublicKey) -> bytes:
    """PEM ``PUBLIC KEY`` (SubjectPublicKeyInfo) of a verification key."""
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def public_key_spki_base64(key: ec.EllipticCurvePublicKey) -> str:
    """Base64 SubjectPublicKeyInfo DER of a verification key, as devices configure it."""
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode("ascii")


def load_private_key_pem(pem: bytes, password: bytes | None = None) -> ec.EllipticCurvePrivateKey:
    """Load a PEM private key (PKCS#8 or SEC1); it must be ECDSA P-256."""
    try:
        key = serialization.load_pem_private_key(pem, password=password)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise ExportKeyError("not a PEM private key (or wrong password)") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ExportKeyError("private key is not an elliptic-curve key")
    _check_p256(key, "private key")
    return key


def private_key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    """Unencrypted PKCS#8 PEM of a signing key (store it with mode 0600)."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
