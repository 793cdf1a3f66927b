"""Members of a test federation: certificates, operator countersignatures, signed uploads."""

from __future__ import annotations

import base64
import datetime as dt
import secrets
from dataclasses import dataclass
from pathlib import Path

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from phe_trace.gateway.trust import CertificateType, TrustAnchor, add_member_certificate, sign_pem
from phe_trace.protocol import efgs, efgs_cms

#: 2026-06-01 12:00 UTC, inside every test certificate's validity.
NOW = dt.datetime(2026, 6, 1, 12, tzinfo=dt.UTC).timestamp()
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


def make_cert(
    country: str, purpose: str = "signing", *, rsa_key: bool = False, days: int = 400
) -> tuple[x509.Certificate, PrivateKey]:
    """A self-signed certificate with ``C=country`` (members may onboard self-signed ones)."""
    key: PrivateKey
    if rsa_key:
        key = rsa.generate_private_key(65537, 2048)
    else:
        key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(x509.NameOID.COUNTRY_NAME, country),
            x509.NameAttribute(x509.NameOID.COMMON_NAME, f"{country} {purpose}"),
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


def pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


@dataclass
class Operator:
    """The gateway operator: the trust-anchor key and its public PEM file."""

    key: ec.EllipticCurvePrivateKey
    anchor_file: Path

    @classmethod
    def create(cls, directory: Path) -> Operator:
        key = ec.generate_private_key(ec.SECP256R1())
        path = directory / "trust-anchor.pem"
        path.write_bytes(
            key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        return cls(key, path)

    @property
    def anchor(self) -> TrustAnchor:
        return TrustAnchor(self.anchor_file.read_bytes())


@dataclass
class Country:
    """A member: its authentication certificate and its batch-signing certificate and key."""

    code: str
    auth_cert: x509.Certificate
    signing_cert: x509.Certificate
    signing_key: PrivateKey

    @classmethod
    def create(cls, code: str) -> Country:
        auth, _ = make_cert(code, "authentication")
        signing, key = make_cert(code, "signing")
        return cls(code, auth, signing, key)

    def onboard(self, engine: object, operator: Operator) -> None:
        """Put both certificates on the allow-list, countersigned by the operator."""
        for cert, kind in (
            (self.auth_cert, CertificateType.AUTHENTICATION),
            (self.signing_cert, CertificateType.SIGNING),
        ):
            text = pem(cert)
            add_member_certificate(
                engine,
                text,
                kind,
                sign_pem(text, operator.key),
                operator.anchor,
                NOW,  # type: ignore[arg-type]
            )

    def headers(self) -> dict[str, str]:
        """What the TLS proxy forwards for this member's client certificate."""
        return {
            "X-SSL-Client-SHA256": efgs_cms.certificate_thumbprint(self.auth_cert),
            "X-SSL-Client-DN": f"C={self.code},CN={self.code} authentication",
        }

    def key(
        self, n: int | None = None, *, origin: str | None = None, now: float = NOW
    ) -> efgs.BatchKey:
        """A key of two days before ``now`` (random unless ``n`` is given)."""
        data = secrets.token_bytes(16) if n is None else n.to_bytes(16, "big")
        start = int(now) // 86_400 * 144 - 144 * 2
        return efgs.BatchKey(data, start, 144, 0x7FFFFFFF, ("DE", "FR"), origin or self.code, 1, 2)

    def signature(self, keys: list[efgs.BatchKey], signer: PrivateKey | None = None) -> str:
        der = efgs_cms.sign_batch(
            efgs.batch_signing_bytes(keys), self.signing_cert, signer or self.signing_key
        )
        return base64.b64encode(der).decode("ascii")

    def upload(
        self,
        client: httpx.Client,
        keys: list[efgs.BatchKey],
        tag: str | None = None,
        *,
        json_form: bool = False,
        signature: str | None = None,
    ) -> httpx.Response:
        body = efgs.encode_json(keys) if json_form else efgs.encode_protobuf(keys)
        media = efgs.CONTENT_TYPE_JSON if json_form else efgs.CONTENT_TYPE_PROTOBUF
        headers = {
            **self.headers(),
            "Content-Type": media,
            "batchTag": tag or secrets.token_hex(6),
            "batchSignature": signature or self.signature(keys),
        }
        return client.post("/diagnosiskeys/upload", content=body, headers=headers)

    def download(
        self, client: httpx.Client, day: str, tag: str | None = None, *, json_form: bool = False
    ) -> httpx.Response:
        headers = {
            **self.headers(),
            "Accept": efgs.CONTENT_TYPE_JSON if json_form else efgs.CONTENT_TYPE_PROTOBUF,
        }
        if tag is not None:
            headers["batchTag"] = tag
        return client.get(f"/diagnosiskeys/download/{day}", headers=headers)
