"""Errors of the wire formats (``phe_trace.protocol``).

::

    ProtocolError
    ├── AdvertisementError     raised when advertising data is not a valid 0xFD6F payload
    ├── TekHmacError           raised when TEK-HMAC input is malformed (bad base64, lengths)
    ├── CertificateError       a verification certificate malformed, forged, expired, mismatched
    ├── ExportError            an export file (export.bin / export.sig / zip / index) refused
    │   ├── ExportFormatError          not a well-formed export: header, protobuf, zip, index
    │   │   ├── ExportTruncatedError   the data ends before a field, member or header does
    │   │   └── ExportTooLargeError    a zip member over the size limit (zip bomb guard)
    │   ├── ExportKeyError             a signing/verification key that is not ECDSA P-256
    │   ├── ExportIncompleteBatchError files of a split batch missing or repeated
    │   └── ExportSignatureError       the export is not proven to come from its signer
    │       ├── ExportUnsignedError            no export.sig, or no signature in it
    │       ├── ExportSignatureMismatchError   signature count or batch numbers disagree
    │       ├── ExportUnknownKeyError          no signature by a configured key
    │       └── ExportBadSignatureError        a configured key's signature fails (tampered)
    └── BatchError             a federation batch (SPEC §17) refused
        ├── BatchFormatError           not a well-formed DiagnosisKeyBatch (protobuf or JSON)
        └── BatchSignatureError        the CMS batch signature is malformed or does not verify

Later wire formats (publish API) add their own classes here.
"""

from __future__ import annotations

from phe_trace.errors import PheTraceError

__all__ = [
    "AdvertisementError",
    "BatchError",
    "BatchFormatError",
    "BatchSignatureError",
    "CertificateError",
    "ExportBadSignatureError",
    "ExportError",
    "ExportFormatError",
    "ExportIncompleteBatchError",
    "ExportKeyError",
    "ExportSignatureError",
    "ExportSignatureMismatchError",
    "ExportTooLargeError",
    "ExportTruncatedError",
    "ExportUnknownKeyError",
    "ExportUnsignedError",
    "ProtocolError",
    "TekHmacError",
]


class ProtocolError(PheTraceError, ValueError):
    """Base class of wire-format errors: input that does not follow the protocol."""

    code = "protocol_error"


class AdvertisementError(ProtocolError):
    """Advertising data that is not a well-formed exposure-notification payload."""

    code = "invalid_advertisement"


class TekHmacError(ProtocolError):
    """Input to the TEK HMAC that is malformed (bad base64, wrong key length)."""

    code = "hmac_invalid"


class ExportError(ProtocolError):
    """Base class of export-file errors: an export that must not be used."""

    code = "export_invalid"


class ExportFormatError(ExportError):
    """Bytes that are not a well-formed export: bad header, protobuf, zip or index."""

    code = "export_malformed"


class ExportTruncatedError(ExportFormatError):
    """An export file, zip archive or signature list that ends before its data does."""

    code = "export_truncated"


class ExportTooLargeError(ExportFormatError):
    """A zip member larger than the configured limit (zip bomb guard)."""

    code = "export_too_large"


class ExportKeyError(ExportError):
    """A public or private signing key that cannot be loaded or is not ECDSA P-256."""

    code = "export_key_invalid"


class ExportIncompleteBatchError(ExportError):
    """A set of exports in which a split batch lacks a file or holds one twice."""

    code = "export_batch_incomplete"


class ExportSignatureError(ExportError):
    """Base class of refused signatures: the export is not proven to come from its signer.

    Subclasses say why; a server or agent that needs only a yes/no catches this class.
    """

    code = "export_signature_invalid"


class ExportUnsignedError(ExportSignatureError):
    """The archive has no ``export.sig``, or its signature list is empty."""

    code = "export_unsigned"


class ExportSignatureMismatchError(ExportSignatureError):
    """``export.sig`` does not match ``export.bin``: signature count, or batch numbers."""

    code = "export_signature_mismatch"


class ExportUnknownKeyError(ExportSignatureError):
    """No signature was made by a configured verification key (key id and version)."""

    code = "export_unknown_key"


class ExportBadSignatureError(ExportSignatureError):
    """A signature by a configured key does not verify: the file was tampered with.

    Opaque on purpose: it does not say which byte or which check failed.
    """

    code = "export_bad_signature"


class BatchError(ProtocolError):
    """A federation gateway batch that is refused (SPEC §17)."""

    code = "batch_invalid"


class BatchFormatError(BatchError):
    """A body that is not a well-formed ``DiagnosisKeyBatch`` (protobuf or JSON)."""

    code = "batch_malformed"


class BatchSignatureError(BatchError):
    """A batch signature that is not a detached CMS SignedData over the batch's bytes."""

    code = "batch_signature_invalid"


class CertificateError(ProtocolError):
    """Raised when a verification certificate is malformed, forged, expired or mismatched."""

    code = "health_authority_verification_certificate_invalid"
