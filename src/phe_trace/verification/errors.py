"""Errors of the verification service (``phe_trace.verification``).

Each class carries the stable ``code`` that the device API returns as ``errorCode`` (the
codes of Google's verification server v1, ``protocol_spec/SPEC.md`` §13) and the HTTP
status it is answered with::

    VerificationError                         verification_error        500
    ├── UnparsableRequestError                unparsable_request        400
    ├── UnauthorizedError                     unauthorized              401
    ├── MaintenanceModeError                  maintenance_mode          429
    ├── RateLimitedError                      too_many_requests         429
    ├── QuotaExceededError                    quota_exceeded            429
    ├── CodeSpaceExhaustedError               code_space_exhausted      500
    ├── CodeInvalidError                      code_invalid              400
    ├── CodeExpiredError                      code_expired              400
    ├── InvalidTestTypeError                  invalid_test_type         400
    ├── UnsupportedTestTypeError              unsupported_test_type     412
    ├── MissingDateError                      missing_date              400
    ├── InvalidDateError                      invalid_date              400
    ├── TokenInvalidError                     token_invalid             400
    ├── TokenExpiredError                     token_expired             400
    ├── HmacInvalidError                      hmac_invalid              400
    ├── SignInError                           signin_failed             401
    ├── NotFoundError                         not_found                 404
    ├── ConflictError                         conflict                  409
    ├── InvalidInputError                     invalid_input             400
    ├── CsrfError                             csrf_invalid              403
    ├── NotSignedInError                      not_signed_in             401
    ├── ForbiddenError                        forbidden                 403
    ├── VerificationDatabaseUnavailableError  unavailable               503
    └── ConfigurationError                    configuration_error       500

A wrong code and a used code answer the same ``code_invalid``: the device learns nothing
about which codes exist. The portal answers its three session errors with pages, not JSON:
a refused form and a case worker on an admin page with a 403 page, a missing session with
a redirect to the sign-in page.
"""

from __future__ import annotations

from phe_trace.errors import PheTraceError
from phe_trace.web.errors import RETRY_AFTER_SECONDS

__all__ = [
    "RETRY_AFTER_SECONDS",
    "CodeExpiredError",
    "CodeInvalidError",
    "CodeSpaceExhaustedError",
    "ConfigurationError",
    "ConflictError",
    "CsrfError",
    "ForbiddenError",
    "HmacInvalidError",
    "InvalidDateError",
    "InvalidInputError",
    "InvalidTestTypeError",
    "MaintenanceModeError",
    "MissingDateError",
    "NotFoundError",
    "NotSignedInError",
    "QuotaExceededError",
    "RateLimitedError",
    "SignInError",
    "TokenExpiredError",
    "TokenInvalidError",
    "UnauthorizedError",
    "UnparsableRequestError",
    "UnsupportedTestTypeError",
    "VerificationDatabaseUnavailableError",
    "VerificationError",
]


class VerificationError(PheTraceError):
    """Base class of the verification service's errors."""

    code = "verification_error"
    #: HTTP status the device API and portal answer this error with.
    status = 500


class UnparsableRequestError(VerificationError):
    """Raised when a request body is not the JSON object the endpoint expects."""

    code = "unparsable_request"
    status = 400


class UnauthorizedError(VerificationError):
    """Raised when the ``X-API-Key`` header is missing, unknown or revoked."""

    code = "unauthorized"
    status = 401


class MaintenanceModeError(VerificationError):
    """Raised on every device-API call and code issuance while maintenance mode is on."""

    code = "maintenance_mode"
    status = 429


class RateLimitedError(VerificationError):
    """Raised when one API key calls ``/api/verify`` more often than the rate limit allows."""

    code = "too_many_requests"
    status = 429

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class QuotaExceededError(VerificationError):
    """Raised when a realm has issued its daily quota of codes (UTC day)."""

    code = "quota_exceeded"
    status = 429


class CodeSpaceExhaustedError(VerificationError):
    """Raised at issuance when every one of several drawn codes collided with a stored one.

    The codes are too short for the number of codes kept (``short_code_length``, code
    retention): an operator's matter, not the case worker's.
    """

    code = "code_space_exhausted"
    status = 500


class CodeInvalidError(VerificationError):
    """Raised when a verification code is unknown, already claimed or malformed."""

    code = "code_invalid"
    status = 400


class CodeExpiredError(VerificationError):
    """Raised when a verification code is known but past its expiry."""

    code = "code_expired"
    status = 400


class InvalidTestTypeError(VerificationError):
    """Raised when ``accept`` (or an issuance) names a test type the service does not know."""

    code = "invalid_test_type"
    status = 400


class UnsupportedTestTypeError(VerificationError):
    """Raised when the code's test type is not among the types the device accepts."""

    code = "unsupported_test_type"
    status = 412


class MissingDateError(VerificationError):
    """Raised at issuance when the service requires a test or symptom date and none is given."""

    code = "missing_date"
    status = 400


class InvalidDateError(VerificationError):
    """Raised at issuance when a date is malformed, in the future or too far in the past."""

    code = "invalid_date"
    status = 400


class TokenInvalidError(VerificationError):
    """Raised when a verification token is unknown or already used for a certificate."""

    code = "token_invalid"
    status = 400


class TokenExpiredError(VerificationError):
    """Raised when a verification token is known but past its expiry."""

    code = "token_expired"
    status = 400


class HmacInvalidError(VerificationError):
    """Raised when ``ekeyhmac`` is not base64 of exactly 32 bytes."""

    code = "hmac_invalid"
    status = 400


class SignInError(VerificationError):
    """Raised on a failed portal sign-in (wrong password, unknown user, locked or disabled).

    One message for every cause, so the portal does not reveal which accounts exist.
    """

    code = "signin_failed"
    status = 401


class NotFoundError(VerificationError):
    """Raised when an admin operation names a realm, user or API key that does not exist."""

    code = "not_found"
    status = 404


class ConflictError(VerificationError):
    """Raised when an admin operation would duplicate a unique name (user, realm)."""

    code = "conflict"
    status = 409


#: What a refused portal form says by default.
REFUSED_FORM = "The form was missing its security token."


class CsrfError(VerificationError):
    """Raised when a portal form comes back without a valid CSRF token (answered with a 403
    page before anything else happens); ``message`` is what the page says."""

    code = "csrf_invalid"
    status = 403

    def __init__(self, message: str = REFUSED_FORM) -> None:
        super().__init__(message)
        self.message = message


class NotSignedInError(VerificationError):
    """Raised when a portal page that needs a session is requested without one (answered
    with a redirect to the sign-in page)."""

    code = "not_signed_in"
    status = 401


class ForbiddenError(VerificationError):
    """Raised when a case worker requests a realm admin's portal page (answered 403)."""

    code = "forbidden"
    status = 403


class VerificationDatabaseUnavailableError(VerificationError):
    """Raised when the database fails (a dropped connection, a restart) also on the one retry.

    Nothing was stored: the device or case worker may simply try again after
    :data:`RETRY_AFTER_SECONDS` (answered with ``Retry-After``).
    """

    code = "unavailable"
    status = 503


class ConfigurationError(VerificationError):
    """Raised at start-up when the settings cannot work (e.g. an unreadable secret file)."""

    code = "configuration_error"
    status = 500


class InvalidInputError(VerificationError):
    """Raised when an admin operation gets a malformed name or a too-weak password."""

    code = "invalid_input"
    status = 400
