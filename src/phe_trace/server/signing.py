"""Export signing keys: ECDSA P-256 private keys as PEM files, mode 0600 (PUB-30, EXP).

Layout of ``settings.signing_key_dir``: ``v1.pem``, ``v2.pem``, … (PKCS#8 PEM). Every
version without a ``vN.retired`` marker is *active*: each export file carries one
signature per active key, so devices configured with the old or the new public key both
verify during a rotation. The first key is created on first start.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from .errors import SigningKeyError
from .files import write_private

__all__ = [
    "SIGNATURE_ALGORITHM_OID",
    "SigningKey",
    "ensure_signing_key",
    "load_signing_keys",
    "rotate_signing_key",
]

#: ECDSA with SHA-256, as written in SignatureInfo.signature_algorithm (GAEN).
SIGNATURE_ALGORITHM_OID = "1.2.840.10045.4.3.2"
_NAME = re.compile(r"^v(\d+)\.pem$")


@dataclass(frozen=True, slots=True)
class SigningKey:
    """An active export signing key and the SignatureInfo fields that name it."""

    key_id: str
    version: str
    private_key: ec.EllipticCurvePrivateKey

    @property
    def public_key_der(self) -> bytes:
        """SubjectPublicKeyInfo DER of the public key."""
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    @property
    def public_key_pem(self) -> str:
        """The public key as PEM text."""
        return (
            self.private_key.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode("ascii")
        )

    def describe(self) -> dict[str, str]:
        """Public description, as served at ``/v1/exports/signing-keys``."""
        return {
            "verification_key_id": self.key_id,
            "verification_key_version": self.version,
            "signature_algorithm": SIGNATURE_ALGORITHM_OID,
            "public_key_spki_base64": base64.b64encode(self.public_key_der).decode("ascii"),
            "public_key_pem": self.public_key_pem,
        }


def _versions(directory: Path) -> list[int]:
    if not directory.is_dir():
        return []
    found = (_NAME.match(p.name) for p in directory.iterdir())
    return sorted(int(m.group(1)) for m in found if m)


def _new_key(directory: Path, number: int) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    if not write_private(directory / f"v{number}.pem", pem):
        raise SigningKeyError(f"signing key v{number} already exists")


def ensure_signing_key(directory: Path) -> None:
    """Create ``v1.pem`` (mode 0600) when the directory holds no key yet."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not _versions(directory):
        _new_key(directory, 1)


def rotate_signing_key(directory: Path, *, retire_previous: bool = False) -> str:
    """Add the next key version; optionally retire all older ones. Returns the new version."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    versions = _versions(directory)
    number = (versions[-1] + 1) if versions else 1
    _new_key(directory, number)
    if retire_previous:
        for old in versions:
            (directory / f"v{old}.retired").touch()
    return f"v{number}"


def load_signing_keys(directory: Path, key_id: str) -> list[SigningKey]:
    """The active keys, oldest first."""
    keys = []
    for number in _versions(directory):
        if (directory / f"v{number}.retired").exists():
            continue
        path = directory / f"v{number}.pem"
        try:
            private = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except (OSError, ValueError, TypeError) as exc:
            raise SigningKeyError(f"signing key {path.name} cannot be read: {exc}") from None
        if not isinstance(private, ec.EllipticCurvePrivateKey) or not isinstance(
            private.curve, ec.SECP256R1
        ):
            raise SigningKeyError(f"signing key {path.name} is not an ECDSA P-256 key")
        keys.append(SigningKey(key_id, f"v{number}", private))
    if not keys:
        raise SigningKeyError(f"no active signing key in {directory}")
    return keys
