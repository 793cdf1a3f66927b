"""The GAEN v1 publish API on the wire: request and response of ``POST /v1/publish``.

``protocol_spec/SPEC.md`` §11 (PUB-1 … PUB-4). Field names, JSON types and error codes
are those of Google's key server (``pkg/api/v1/exposure_types.go``), so existing clients
work unchanged. These models check only *shape* (types, string and list sizes); the
protocol rules (key length, ranges, ages, overlaps) are the key server's to apply, key by
key, so that one bad key can be dropped with a warning while the others are stored.
"""

from __future__ import annotations

from typing import Annotated, Final

from pydantic import BaseModel, ConfigDict, Field

from phe_trace.crypto import MAX_INTERVAL

__all__ = [
    "ERROR_BAD_REQUEST",
    "ERROR_CERTIFICATE_INVALID",
    "ERROR_INTERNAL",
    "ERROR_INVALID_REPORT_TYPE_TRANSITION",
    "ERROR_INVALID_REVISION_TOKEN",
    "ERROR_KEY_ALREADY_REVISED",
    "ERROR_MISSING_REVISION_TOKEN",
    "ERROR_PARTIAL_FAILURE",
    "ERROR_PAYLOAD_TOO_LARGE",
    "ERROR_UNKNOWN_HEALTH_AUTHORITY",
    "MAX_PADDING_CHARS",
    "MAX_REQUEST_KEYS",
    "ExposureKey",
    "PublishRequest",
    "PublishResponse",
]

#: GAEN error codes of the publish response (``code`` field), stable strings.
ERROR_UNKNOWN_HEALTH_AUTHORITY: Final = "unknown_health_authority_id"
ERROR_CERTIFICATE_INVALID: Final = "health_authority_verification_certificate_invalid"
ERROR_BAD_REQUEST: Final = "bad_request"
ERROR_INTERNAL: Final = "internal_error"
ERROR_MISSING_REVISION_TOKEN: Final = "missing_revision_token"  # noqa: S105
ERROR_INVALID_REVISION_TOKEN: Final = "invalid_revision_token"  # noqa: S105
ERROR_KEY_ALREADY_REVISED: Final = "key_already_revised"
ERROR_INVALID_REPORT_TYPE_TRANSITION: Final = "invalid_report_type_transition"
ERROR_PARTIAL_FAILURE: Final = "partial_failure"
#: Not a GAEN code: the body exceeded the server's size limit (HTTP 413).
ERROR_PAYLOAD_TOO_LARGE: Final = "payload_too_large"

#: Hard cap on the list length the wire model accepts; the server's configured
#: maximum (30 by default) is checked by the server with a GAEN error.
MAX_REQUEST_KEYS: Final = 100
#: Largest padding string accepted in a request (characters).
MAX_PADDING_CHARS: Final = 32_768

_UInt32 = Annotated[int, Field(ge=0, le=MAX_INTERVAL)]


class ExposureKey(BaseModel):
    """One Temporary Exposure Key as uploaded: ``{key, rollingStartNumber, ...}``."""

    model_config = ConfigDict(strict=True, populate_by_name=True, extra="ignore", frozen=True)

    key: str = Field(max_length=64, description="base64 of the 16-byte key")
    rolling_start_number: _UInt32 = Field(alias="rollingStartNumber")
    rolling_period: _UInt32 = Field(alias="rollingPeriod")
    transmission_risk: _UInt32 = Field(default=0, alias="transmissionRisk")


class PublishRequest(BaseModel):
    """The body of ``POST /v1/publish`` (GAEN v1 ``Publish``)."""

    model_config = ConfigDict(strict=True, populate_by_name=True, extra="ignore")

    temporary_exposure_keys: list[ExposureKey] = Field(
        alias="temporaryExposureKeys", min_length=1, max_length=MAX_REQUEST_KEYS
    )
    health_authority_id: str = Field(default="", alias="healthAuthorityID", max_length=256)
    verification_payload: str = Field(alias="verificationPayload", max_length=16_384)
    hmac_key: str = Field(alias="hmacKey", max_length=1_024)
    symptom_onset_interval: _UInt32 | None = Field(default=None, alias="symptomOnsetInterval")
    traveler: bool = False
    revision_token: str = Field(default="", alias="revisionToken", max_length=8_192)
    padding: str = Field(default="", max_length=MAX_PADDING_CHARS)


class PublishResponse(BaseModel):
    """The body of every publish answer: success, partial failure and errors alike."""

    model_config = ConfigDict(populate_by_name=True)

    revision_token: str = Field(default="", alias="revisionToken")
    inserted_exposures: int = Field(default=0, alias="insertedExposures")
    error: str = ""
    code: str = ""
    padding: str = ""
    warnings: list[str] = Field(default_factory=list)

    def to_json_dict(self) -> dict[str, object]:
        """The JSON object with GAEN's field names."""
        return self.model_dump(by_alias=True)
