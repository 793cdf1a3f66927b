"""Errors of the cryptographic core (``phe_trace.crypto``).

::

    CryptoError
    ├── InvalidLengthError     raised when a key, identifier or metadata has the wrong length
    ├── IntervalRangeError     raised when an interval number or time is out of range
    ├── InvalidMetadataError   raised when a metadata field is out of range
    │   └── MetadataVersionError   raised when metadata carries an unknown major version
    └── SealError              raised when at-rest data cannot be opened (opaque on purpose)

``InvalidLengthError`` and ``IntervalRangeError`` are also ``ValueError``/``TypeError``
subclasses where that is what Python code would expect, so generic handlers still work;
their messages name the argument, the length or value received and the expected one.
"""

from __future__ import annotations

from phe_trace.errors import PheTraceError

__all__ = [
    "CryptoError",
    "IntervalRangeError",
    "InvalidLengthError",
    "InvalidMetadataError",
    "MetadataVersionError",
    "SealError",
]


class CryptoError(PheTraceError):
    """Base class of the cryptographic core's errors."""

    code = "crypto_error"


class InvalidLengthError(CryptoError, ValueError):
    """A byte string argument does not have the length the protocol requires."""

    code = "invalid_length"

    def __init__(self, name: str, value: object, expected: int) -> None:
        if isinstance(value, bytes | bytearray | memoryview):
            got = f"{len(value)} bytes"
        else:
            got = f"a {type(value).__name__}, not bytes"
        super().__init__(f"{name} must be {expected} bytes, got {got}")
        self.argument = name
        self.expected = expected


class IntervalRangeError(CryptoError, ValueError):
    """An interval number, count or time lies outside its allowed range."""

    code = "interval_out_of_range"


class InvalidMetadataError(CryptoError, ValueError):
    """Associated metadata holds a value outside its field's range."""

    code = "invalid_metadata"


class MetadataVersionError(InvalidMetadataError):
    """Associated metadata carries a major version this implementation does not know."""

    code = "unsupported_metadata_version"


class SealError(CryptoError):
    """At-rest data could not be opened.

    Deliberately opaque (like Fernet's ``InvalidToken``): a wrong key, a tampered
    ciphertext, a wrong record kind and a truncated record all raise this same error
    with the same message, so it tells an attacker nothing about which check failed.
    """

    code = "seal_error"

    def __init__(self) -> None:
        super().__init__("sealed data could not be opened")
