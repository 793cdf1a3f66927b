"""The allow-list of member certificates, each countersigned by the operator (SPEC FED-4).

The operator signs the PEM text of each member certificate with the trust-anchor key
(ECDSA or RSA, SHA-256); the gateway stores the PEM with that signature and, on every use,
checks the signature with the trust-anchor public key and that the thumbprint is the
stored PEM's. A row written into the database by anyone without the trust-anchor key
therefore admits nobody.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from sqlalchemy.engine import Connection, Engine

from phe_trace.protocol.efgs_cms import (
    OperatorKey,
    certificate_country,
    certificate_thumbprint,
    countersign,
)
from phe_trace.protocol.errors import BatchSignatureError

from . import queries
from .errors import GatewayConfigError

__all__ = [
    "CertificateType",
    "Member",
    "TrustAnchor",
    "add_member_certificate",
    "find_member",
    "sign_pem",
]


class CertificateType(StrEnum):
    """What a member certificate is used for."""

    AUTHENTICATION = "AUTHENTICATION"
    SIGNING = "SIGNING"
    CALLBACK = "CALLBACK"


@dataclass(frozen=True)
class Member:
    """An allow-listed certificate of a member country, as stored and verified."""

    country: str
    type: CertificateType
    thumbprint: str
    pem: str
    operator_signature: str


def sign_pem(pem: str, operator_key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> str:
    """The operator's Base64 countersignature over a certificate's PEM text."""
    return countersign(pem, operator_key)


class TrustAnchor(OperatorKey):
    """The operator's public key, checking the countersignature of each allow-list row."""

    def __init__(self, public_key_pem: bytes) -> None:
        try:
            super().__init__(public_key_pem)
        except BatchSignatureError as exc:
            raise GatewayConfigError(str(exc)) from None


def _load_pem(pem: str) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(pem.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        raise GatewayConfigError("not a PEM X.509 certificate") from None


def add_member_certificate(
    engine: Engine,
    pem: str,
    cert_type: CertificateType,
    operator_signature: str,
    anchor: TrustAnchor,
    now: float,
) -> Member:
    """Put a countersigned member certificate on the allow-list; its country is its ``C=``."""
    cert = _load_pem(pem)
    country = certificate_country(cert)
    if country is None or len(country) != 2:
        raise GatewayConfigError("the certificate's subject has no two-letter C=")
    if not anchor.verifies(pem, operator_signature):
        raise GatewayConfigError("the operator signature does not verify with the trust anchor")
    member = Member(country, cert_type, certificate_thumbprint(cert), pem, operator_signature)
    row: dict[str, Any] = dict(
        thumbprint=member.thumbprint,
        country=country,
        type=cert_type.value,
        revoked=False,
        pem=pem,
        operator_signature=operator_signature,
        created_at=int(now),
    )
    with engine.begin() as conn:
        queries.replace_certificate(conn, row)
    return member


def find_member(
    conn: Connection,
    anchor: TrustAnchor,
    thumbprint: str,
    cert_type: CertificateType,
    country: str | None = None,
) -> Member | None:
    """The allow-listed, unrevoked, countersigned certificate with ``thumbprint`` (and
    ``country`` when given), or ``None``."""
    row = queries.certificate(conn, thumbprint.lower(), cert_type.value)
    if row is None or (country is not None and row["country"] != country):
        return None
    if not anchor.verifies(row["pem"], row["operator_signature"]):
        return None
    if certificate_thumbprint(_load_pem(row["pem"])) != row["thumbprint"]:
        return None
    return Member(
        row["country"], cert_type, row["thumbprint"], row["pem"], row["operator_signature"]
    )
