"""GAEN Temporary Exposure Key export files: write, sign, read, verify, name, index.

``protocol_spec/SPEC.md`` §12. The public face of the export format; the work is done
in four small modules, re-exported here so that callers import one name::

    from phe_trace.protocol import export

    signer = export.EcdsaSigner(private_key, export.SignatureInfo("310", "v1"))
    zip_bytes = export.build_export_zip(
        export.TemporaryExposureKeyExport(start, end, "US", keys=keys), [signer]
    )
    content = export.verify_export_zip(zip_bytes, {("310", "v1"): public_key})

- :mod:`.export_format` — export.bin / export.sig records (bit-exact writer, tolerant reader);
- :mod:`.export_archive` — the deterministic zip and the size-capped zip reader;
- :mod:`.export_signing` — signers, verification, key loading;
- :mod:`.export_naming` — file names by region and window, and index.txt.

Every failure is an :class:`~phe_trace.protocol.errors.ExportError`.
"""

from __future__ import annotations

from .errors import (
    ExportBadSignatureError,
    ExportError,
    ExportFormatError,
    ExportIncompleteBatchError,
    ExportKeyError,
    ExportSignatureError,
    ExportSignatureMismatchError,
    ExportTooLargeError,
    ExportTruncatedError,
    ExportUnknownKeyError,
    ExportUnsignedError,
)
from .export_archive import (
    DEFAULT_MAX_MEMBER_SIZE,
    EXPORT_BIN_NAME,
    EXPORT_SIG_NAME,
    ExportArchive,
    pack_export_zip,
    unpack_export_zip,
)
from .export_format import (
    ECDSA_P256_SHA256_OID,
    ECDSA_P256_SHA512_OID,
    EXPORT_BIN_HEADER,
    SignatureInfo,
    TEKSignature,
    TemporaryExposureKeyExport,
    decode_export_bin,
    decode_signature_list,
    encode_export_bin,
    encode_signature_list,
)
from .export_naming import (
    EXPORT_FILE_SUFFIX,
    INDEX_FILE_NAME,
    MAX_INDEX_ENTRIES,
    ExportFileName,
    export_file_name,
    format_index,
    index_file_name,
    parse_export_file_name,
    parse_index,
)
from .export_signing import (
    EcdsaSigner,
    PublicKeys,
    Signer,
    build_export_files,
    build_export_zip,
    check_batches_complete,
    load_private_key_pem,
    load_public_key_pem,
    load_public_key_spki_base64,
    private_key_pem,
    public_key_pem,
    public_key_spki_base64,
    sign_export_bin,
    verify_export,
    verify_export_zip,
)

__all__ = [
    "DEFAULT_MAX_MEMBER_SIZE",
    "ECDSA_P256_SHA256_OID",
    "ECDSA_P256_SHA512_OID",
    "EXPORT_BIN_HEADER",
    "EXPORT_BIN_NAME",
    "EXPORT_FILE_SUFFIX",
    "EXPORT_SIG_NAME",
    "INDEX_FILE_NAME",
    "MAX_INDEX_ENTRIES",
    "EcdsaSigner",
    "ExportArchive",
    "ExportBadSignatureError",
    "ExportError",
    "ExportFileName",
    "ExportFormatError",
    "ExportIncompleteBatchError",
    "ExportKeyError",
    "ExportSignatureError",
    "ExportSignatureMismatchError",
    "ExportTooLargeError",
    "ExportTruncatedError",
    "ExportUnknownKeyError",
    "ExportUnsignedError",
    "PublicKeys",
    "SignatureInfo",
    "Signer",
    "TEKSignature",
    "TemporaryExposureKeyExport",
    "build_export_files",
    "build_export_zip",
    "check_batches_complete",
    "decode_export_bin",
    "decode_signature_list",
    "encode_export_bin",
    "encode_signature_list",
    "export_file_name",
    "format_index",
    "index_file_name",
    "load_private_key_pem",
    "load_public_key_pem",
    "load_public_key_spki_base64",
    "pack_export_zip",
    "parse_export_file_name",
    "parse_index",
    "private_key_pem",
    "public_key_pem",
    "public_key_spki_base64",
    "sign_export_bin",
    "unpack_export_zip",
    "verify_export",
    "verify_export_zip",
]
