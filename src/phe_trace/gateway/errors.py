"""Errors of the federation gateway (``phe_trace.gateway``).

::

    GatewayError                       (phe_trace.errors.PheTraceError)
    ├── GatewayConfigError             settings or allow-list input invalid (start-up, CLI)
    └── GatewayRequestError            a request refused; carries its HTTP ``status``
        ├── NotAuthenticatedError      no, unknown or revoked client certificate (403)
        ├── BatchRejectedError         malformed, invalid key, bad signature, origin (400)
        ├── BatchTooLargeError         more keys than the upload limit (413)
        ├── BatchTagReusedError        the batchTag was used before (409)
        ├── UnsupportedMediaError      neither protobuf nor JSON version 1.0 (406)
        ├── GatewayNotFoundError       no batch for that day or tag, no such callback (404)
        └── GoneError                  the day is older than the download window (410)

Each class carries a stable ``code``; the app answers ``{"error": ..., "code": ...}``.
"""

from __future__ import annotations

from phe_trace.errors import PheTraceError

__all__ = [
    "BatchRejectedError",
    "BatchTagReusedError",
    "BatchTooLargeError",
    "GatewayConfigError",
    "GatewayError",
    "GatewayNotFoundError",
    "GatewayRequestError",
    "GoneError",
    "NotAuthenticatedError",
    "UnsupportedMediaError",
]


class GatewayError(PheTraceError):
    """Base class of the gateway's deliberate errors."""

    code = "gateway_error"


class GatewayConfigError(GatewayError):
    """Settings, a certificate or an operator key that cannot be used."""

    code = "config_invalid"


class GatewayRequestError(GatewayError):
    """A request refused as a whole; nothing is stored."""

    code = "bad_request"
    status = 400


class NotAuthenticatedError(GatewayRequestError):
    """The forwarded client certificate is missing, unknown, revoked or not signed by the
    operator (SPEC FED-5)."""

    code = "not_authenticated"
    status = 403


class BatchRejectedError(GatewayRequestError):
    """A batch refused as a whole: malformed, a key out of range, a bad signature, a signer
    not on the allow-list or an origin that is not the uploader's (SPEC FED-4, FED-6)."""

    code = "batch_rejected"
    status = 400


class BatchTooLargeError(GatewayRequestError):
    """More keys than the gateway accepts in one upload (SPEC FED-6)."""

    code = "batch_too_large"
    status = 413


class BatchTagReusedError(GatewayRequestError):
    """A batchTag this gateway has seen before (SPEC FED-7)."""

    code = "batch_tag_reused"
    status = 409


class UnsupportedMediaError(GatewayRequestError):
    """A content type or Accept header that is not a batch format of version 1.0."""

    code = "unsupported_media_type"
    status = 406


class GatewayNotFoundError(GatewayRequestError):
    """No batch for that day or tag, or no such callback."""

    code = "not_found"
    status = 404


class GoneError(GatewayRequestError):
    """A day older than the download window (SPEC FED-8)."""

    code = "gone"
    status = 410
