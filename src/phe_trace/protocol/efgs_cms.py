"""Batch signatures: detached CMS SignedData over a batch's canonical bytes (SPEC FED-3).

Signing uses ``cryptography``'s PKCS#7 builder (detached, binary, DER, with the signing
certificate and the usual signed attributes). Verifying parses the CMS with
``asn1crypto`` and checks the content-type and message-digest attributes and the
signature over the DER ``SET OF`` signed attributes with ``cryptography`` primitives.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
from typing import Any

from asn1crypto import cms
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import pkcs7

from .errors import BatchSignatureError

__all__ = [
    "OperatorKey",
    "certificate_country",
    "certificate_thumbprint",
    "countersign",
    "decode_signature_header",
    "sign_batch",
    "verify_batch",
    "verify_countersignature",
]

_HASHES: dict[str, type[hashes.SHA256 | hashes.SHA384 | hashes.SHA512]] = {
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}
_Digest = type[hashes.SHA256 | hashes.SHA384 | hashes.SHA512]
_SIGNING_KEY = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


class OperatorKey:
    """The federation operator's trust-anchor public key (SPEC FED-4): it countersigns the
    PEM text of each member certificate (ECDSA or RSA PKCS#1 v1.5, SHA-256, Base64)."""

    def __init__(self, public_key_pem: bytes) -> None:
        try:
            key = serialization.load_pem_public_key(public_key_pem)
        except ValueError:
            raise BatchSignatureError("the trust anchor is not a PEM public key") from None
        if not isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
            raise BatchSignatureError("the trust anchor must be an ECDSA or RSA key")
        self._key = key

    def verifies(self, pem: str, signature: str) -> bool:
        """Whether ``signature`` is the operator's countersignature of ``pem``."""
        return verify_countersignature(self._key, pem, signature)


def countersign(pem: str, key: _SIGNING_KEY) -> str:
    """The operator's Base64 countersignature of a certificate's PEM text (SPEC FED-4)."""
    data = pem.encode("ascii")
    if isinstance(key, ec.EllipticCurvePrivateKey):
        sig = key.sign(data, ec.ECDSA(hashes.SHA256()))
    else:
        sig = key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(sig).decode("ascii")


def verify_countersignature(
    key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey, pem: str, signature: str
) -> bool:
    """Whether ``signature`` (Base64) is ``key``'s over the PEM text ``pem``."""
    try:
        sig = base64.b64decode(signature, validate=True)
        data = pem.encode("ascii")
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(sig, data, ec.ECDSA(hashes.SHA256()))
        else:
            key.verify(sig, data, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, binascii.Error, ValueError, UnicodeEncodeError):
        return False
    return True


def certificate_thumbprint(cert: x509.Certificate) -> str:
    """SHA-256 of the certificate's DER in lower-case hex (SPEC FED-4)."""
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def certificate_country(cert: x509.Certificate) -> str | None:
    """The subject's ``C=`` value, or ``None`` when the subject has none."""
    values = cert.subject.get_attributes_for_oid(x509.NameOID.COUNTRY_NAME)
    return str(values[0].value) if values else None


def sign_batch(
    data: bytes, cert: x509.Certificate, key: _SIGNING_KEY, algorithm: str = "sha256"
) -> bytes:
    """A detached DER CMS SignedData over ``data`` by ``key``, carrying ``cert`` only."""
    options = [pkcs7.PKCS7Options.DetachedSignature, pkcs7.PKCS7Options.Binary]
    builder = pkcs7.PKCS7SignatureBuilder().set_data(data)
    builder = builder.add_signer(cert, key, _HASHES[algorithm]())
    return builder.sign(serialization.Encoding.DER, options)


def decode_signature_header(value: str) -> bytes:
    """The DER bytes of a ``batchSignature`` header (standard Base64)."""
    try:
        return base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise BatchSignatureError("batchSignature is not Base64") from None


def _signed_data(signature: bytes) -> Any:
    try:
        info = cms.ContentInfo.load(signature)
        if info["content_type"].native != "signed_data":
            raise BatchSignatureError("the CMS object is not SignedData")
        signed = info["content"]
        signed.native  # noqa: B018 - parse everything now, so later access cannot fail
    except BatchSignatureError:
        raise
    except Exception:  # asn1crypto raises ValueError, TypeError, KeyError on bad DER
        raise BatchSignatureError("the batch signature is not DER CMS") from None
    if signed["encap_content_info"]["content"].native is not None:
        raise BatchSignatureError("the batch signature must be detached (no eContent)")
    return signed


def _signer_certificate(signed: Any, signer: Any) -> x509.Certificate:
    sid = signer["sid"]
    for choice in signed["certificates"] or []:
        if choice.name != "certificate":
            continue
        cert = choice.chosen
        if sid.name == "issuer_and_serial_number":
            wanted = sid.chosen
            if (
                cert.issuer == wanted["issuer"]
                and cert.serial_number == wanted["serial_number"].native
            ):
                return x509.load_der_x509_certificate(cert.dump())
        elif cert.key_identifier == sid.chosen.native:
            return x509.load_der_x509_certificate(cert.dump())
    raise BatchSignatureError("the batch signature carries no certificate of its signer")


def _signed_message(data: bytes, signer: Any, digest: _Digest) -> bytes:
    """The bytes the signature is over: the data itself, or the DER SET OF signed attributes
    after checking their content type and message digest."""
    attrs = signer["signed_attrs"]
    if not attrs:
        return data
    values = {attr["type"].native: attr["values"] for attr in attrs}
    if values.get("content_type") is None or values["content_type"][0].native != "data":
        raise BatchSignatureError("the signed content type is not data")
    h = hashes.Hash(digest())
    h.update(data)
    if values.get("message_digest") is None or values["message_digest"][0].native != h.finalize():
        raise BatchSignatureError("the batch signature does not cover these keys")
    der: bytes = attrs.dump()
    return b"\x31" + der[1:]  # [0] IMPLICIT → the universal SET OF tag it is signed as


def _check_signature(cert: x509.Certificate, signer: Any, message: bytes, digest: _Digest) -> None:
    public = cert.public_key()
    sig = signer["signature"].native
    try:
        if isinstance(public, ec.EllipticCurvePublicKey):
            public.verify(sig, message, ec.ECDSA(digest()))
        elif isinstance(public, rsa.RSAPublicKey):
            if signer["signature_algorithm"].signature_algo == "rsassa_pss":
                pss = padding.PSS(padding.MGF1(digest()), padding.PSS.DIGEST_LENGTH)
                public.verify(sig, message, pss, digest())
            else:
                public.verify(sig, message, padding.PKCS1v15(), digest())
        else:
            raise BatchSignatureError("the signer's key is neither RSA nor ECDSA")
    except (InvalidSignature, ValueError):
        raise BatchSignatureError("the batch signature does not verify") from None


def verify_batch(data: bytes, signature: bytes, now: float) -> x509.Certificate:
    """Verify a detached CMS ``signature`` over ``data`` at time ``now`` (SPEC FED-3).

    Returns the signer's certificate (whose thumbprint and country the caller checks
    against its allow-list); raises :class:`BatchSignatureError` otherwise.
    """
    signed = _signed_data(signature)
    signers = signed["signer_infos"]
    if len(signers) == 0:
        raise BatchSignatureError("the batch signature has no signer")
    signer = signers[0]
    cert = _signer_certificate(signed, signer)
    when = dt.datetime.fromtimestamp(now, dt.UTC)
    if not cert.not_valid_before_utc <= when <= cert.not_valid_after_utc:
        raise BatchSignatureError("the signing certificate is not valid at this time")
    algorithm = signer["digest_algorithm"]["algorithm"].native
    if algorithm not in _HASHES:
        raise BatchSignatureError(f"digest algorithm {algorithm} is not accepted")
    digest = _HASHES[algorithm]
    _check_signature(cert, signer, _signed_message(data, signer, digest), digest)
    return cert
