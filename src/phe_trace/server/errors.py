"""Errors of the diagnosis-key server (``phe_trace.server``).

::

    ServerError                         (phe_trace.errors.PheTraceError)
    ├── ServerConfigError               settings invalid at start-up (all problems at once)
    ├── PublishError                    a publish request refused as a whole (HTTP 4xx)
    │   ├── BadRequestError             malformed body, key count, overlaps (400 bad_request)
    │   ├── UnknownHealthAuthorityError healthAuthorityID not accepted (401)
    │   ├── CertificateInvalidError     certificate forged, expired, reused, HMAC mismatch (401)
    │   ├── MissingRevisionTokenError   a stored key changes but no token was sent (400)
    │   ├── InvalidRevisionTokenError   token undecryptable or not covering the key (400)
    │   ├── KeyAlreadyRevisedError      a key was revised once already (400)
    │   ├── InvalidTransitionError      illegal report-type transition (400)
    │   └── HealthAuthorityUnavailableError  the authority's keys cannot be loaded (503)
    ├── HealthAuthorityError            registration input invalid, JWKS unusable
    ├── SigningKeyError                 export signing key missing or unreadable
    ├── ExportStoreError                export object name invalid or object missing
    ├── ExportStoreUnavailableError     the object store failed or could not be reached
    ├── DatabaseUnavailableError        the database connection failed, also on retry (503)
    └── FederationError                 the gateway unreachable or answering unexpectedly

Each class carries a stable ``code``; publish errors also carry the HTTP ``status``.
"""

from __future__ import annotations

from phe_trace.errors import PheTraceError
from phe_trace.protocol import publish as wire

__all__ = [
    "BadRequestError",
    "CertificateInvalidError",
    "DatabaseUnavailableError",
    "ExportStoreError",
    "ExportStoreUnavailableError",
    "FederationError",
    "HealthAuthorityError",
    "HealthAuthorityUnavailableError",
    "InvalidRevisionTokenError",
    "InvalidTransitionError",
    "KeyAlreadyRevisedError",
    "MissingRevisionTokenError",
    "PublishError",
    "ServerConfigError",
    "ServerError",
    "SigningKeyError",
    "UnknownHealthAuthorityError",
]


class ServerError(PheTraceError):
    """Base class of the key server's deliberate errors."""

    code = "server_error"


class ServerConfigError(ServerError):
    """Raised at start-up when settings are invalid; the message lists every problem."""

    code = "config_invalid"


class PublishError(ServerError):
    """Raised when a publish request is refused as a whole; nothing is stored."""

    code = wire.ERROR_BAD_REQUEST
    status = 400


class BadRequestError(PublishError):
    """Raised for a malformed body, a bad key count, overlapping keys or no valid key."""

    code = wire.ERROR_BAD_REQUEST
    status = 400


class UnknownHealthAuthorityError(PublishError):
    """Raised when ``healthAuthorityID`` is not one this server accepts uploads for."""

    code = wire.ERROR_UNKNOWN_HEALTH_AUTHORITY
    status = 401


class CertificateInvalidError(PublishError):
    """Raised when the certificate is forged, expired, reused, or its tekmac mismatches."""

    code = wire.ERROR_CERTIFICATE_INVALID
    status = 401


class MissingRevisionTokenError(PublishError):
    """Raised when an upload changes a stored key's report type without a revision token."""

    code = wire.ERROR_MISSING_REVISION_TOKEN
    status = 400


class InvalidRevisionTokenError(PublishError):
    """Raised when the revision token is undecryptable or does not cover a revised key."""

    code = wire.ERROR_INVALID_REVISION_TOKEN
    status = 400


class KeyAlreadyRevisedError(PublishError):
    """Raised when an upload tries to revise a key that was revised before."""

    code = wire.ERROR_KEY_ALREADY_REVISED
    status = 400


class InvalidTransitionError(PublishError):
    """Raised when the report-type change is not one GAEN allows (e.g. confirmed → likely)."""

    code = wire.ERROR_INVALID_REPORT_TYPE_TRANSITION
    status = 400


class HealthAuthorityUnavailableError(PublishError):
    """Raised when a health authority's keys cannot be loaded (JWKS unreachable, no cache)."""

    code = "unable_to_load_health_authority"
    status = 503


class DatabaseUnavailableError(ServerError):
    """Raised when a transient database failure (connection dropped, server restarting)
    outlasts the one retry; answered 503 ``unavailable`` with ``Retry-After``."""

    code = "unavailable"
    status = 503


class HealthAuthorityError(ServerError):
    """Raised when a health authority registration is invalid or its JWKS is unusable."""

    code = "health_authority_invalid"


class SigningKeyError(ServerError):
    """Raised when an export signing key is missing, unreadable or not P-256."""

    code = "signing_key_invalid"


class ExportStoreError(ServerError):
    """Raised when an export object name is invalid or an object does not exist."""

    code = "export_not_found"


class ExportStoreUnavailableError(ServerError):
    """Raised when the object store answers an error other than "no such object"."""

    code = "export_store_unavailable"


class FederationError(ServerError):
    """The gateway cannot be reached or answers unexpectedly; nothing is marked done."""

    code = "federation_failed"
