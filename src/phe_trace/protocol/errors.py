"""Errors of the wire formats (``phe_trace.protocol``).

::

    ProtocolError
    ├── AdvertisementError     raised when advertising data is not a valid 0xFD6F payload
    └── TekHmacError           raised when TEK-HMAC input is malformed (bad base64, lengths)

Later wire formats (export files, publish API) add their own classes here.
"""

from __future__ import annotations

from phe_trace.errors import PheTraceError

__all__ = ["AdvertisementError", "ProtocolError", "TekHmacError"]


class ProtocolError(PheTraceError, ValueError):
    """Base class of wire-format errors: input that does not follow the protocol."""

    code = "protocol_error"


class AdvertisementError(ProtocolError):
    """Advertising data that is not a well-formed exposure-notification payload."""

    code = "invalid_advertisement"


class TekHmacError(ProtocolError):
    """Input to the TEK HMAC that is malformed (bad base64, wrong key length)."""

    code = "hmac_invalid"
