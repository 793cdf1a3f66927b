"""The root of phe-trace's exception tree.

Every error phe-trace raises on purpose derives from :class:`PheTraceError`. Each
subpackage defines its own branch in its ``errors`` module::

    PheTraceError
    ├── phe_trace.crypto.errors.CryptoError
    │   ├── InvalidLengthError        a key, identifier or metadata of the wrong length
    │   ├── IntervalRangeError        an interval number or time outside uint32 / the day
    │   ├── MetadataVersionError      metadata with an unknown major version
    │   └── SealError                 at-rest decryption failed (opaque: tampered or wrong key)
    └── phe_trace.protocol.errors.ProtocolError
        └── AdvertisementError        advertising data that is not a valid 0xFD6F payload

Later subpackages (exposure, server, agent, ...) add their own branches.

The server maps these to JSON errors with a stable ``code``; the CLI maps them to one
line on stderr and a non-zero exit. ``code`` is that stable identifier.
"""

from __future__ import annotations

__all__ = ["PheTraceError"]


class PheTraceError(Exception):
    """Base class of every deliberate phe-trace error.

    ``code`` is a stable, machine-readable identifier (snake_case) that the server
    puts in JSON error bodies and the CLI may print; subclasses override it.
    """

    code: str = "phe_trace_error"
