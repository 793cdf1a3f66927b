"""The device API (``/api``): ``POST /api/verify`` and ``POST /api/certificate``.

Request and response fields and error codes are those of Google's verification server
v1 (``protocol_spec/SPEC.md`` §13, VER-2 … VER-8, VER-11), so existing GAEN apps can
talk to it. Every answer — success or error — is JSON with ``error`` / ``errorCode`` on
failure and, unless disabled, random base64 ``padding`` that brings the whole body to
3–4 KiB (uniform), whatever it carries. Bad input answers ``unparsable_request`` (400),
never a 5xx; the one 5xx is a database that fails also on the one retry: 503
``unavailable`` with ``Retry-After`` (VER-15). A request with an ``X-Chaff`` header
passes the same first checks as a real one (API key, maintenance mode, the same database
reads; the rate limit is checked, not counted), changes nothing, and gets an answer of
the real one's shape: a random token and dates, or a certificate-shaped JWS signed by a
throwaway key (no key server accepts it), padded the same way — neither fields, status
nor size class tell chaff from real, also while the database is down.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Annotated, Any

from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import APIRouter, Depends, FastAPI, Header, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from phe_trace.errors import PheTraceError
from phe_trace.web.bodylimit import BodyLimit
from phe_trace.web.errors import (
    METHOD_NOT_ALLOWED,
    NOT_FOUND,
    install_error_handlers,
    install_unavailable_handlers,
)

from .errors import (
    RateLimitedError,
    UnparsableRequestError,
    VerificationDatabaseUnavailableError,
    VerificationError,
)
from .service import VerificationService
from .signing import make_certificate

__all__ = [
    "DeviceApi",
    "VerificationCertificateRequest",
    "VerificationCertificateResponse",
    "VerifyCodeRequest",
    "VerifyCodeResponse",
    "create_device_api",
    "router",
]


class VerifyCodeRequest(BaseModel):
    """``POST /api/verify`` body: a short or long code and the test types the app accepts."""

    model_config = ConfigDict(extra="ignore")

    code: str = Field(default="", max_length=64)
    accept: list[str] | None = Field(default=None, max_length=8)
    padding: str | None = None


class VerifyCodeResponse(BaseModel):
    """``POST /api/verify`` answer: the token and what the code certifies (dates ISO 8601)."""

    testtype: str | None = None
    symptomDate: str | None = None  # GAEN wire name
    testDate: str | None = None
    token: str | None = None
    error: str | None = None
    errorCode: str | None = None
    padding: str | None = None


class VerificationCertificateRequest(BaseModel):
    """``POST /api/certificate`` body: the token and the device's base64 TEK HMAC."""

    model_config = ConfigDict(extra="ignore")

    token: str = Field(default="", max_length=512)
    ekeyhmac: str = Field(default="", max_length=512)
    padding: str | None = None


class VerificationCertificateResponse(BaseModel):
    """``POST /api/certificate`` answer: the ES256 certificate (a JWT)."""

    certificate: str | None = None
    error: str | None = None
    errorCode: str | None = None
    padding: str | None = None


_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"description": "Bad request (see errorCode)"},
    401: {"description": "Missing or invalid X-API-Key (unauthorized)"},
    412: {"description": "unsupported_test_type"},
    413: {"description": "unparsable_request: the body is larger than max_body_bytes"},
    429: {"description": "maintenance_mode or too_many_requests"},
    503: {"description": "unavailable: the database failed; retry after Retry-After"},
}


#: The codes of framework statuses: those of the GAEN verification server, where a body
#: too large is unparsable; every other status answers ``unparsable_request`` too.
_HTTP_CODES = {404: NOT_FOUND, 405: METHOD_NOT_ALLOWED, 413: UnparsableRequestError.code}


#: Padded answers are this many bytes plus a uniform 0 … ``_PADDED_RANGE`` (VER-2).
_PADDED_MIN = 3072
_PADDED_RANGE = 1024


def _padded(body: dict[str, Any]) -> dict[str, Any]:
    """``body`` with random base64 ``padding`` bringing its JSON to the padded size range."""
    bare = len(JSONResponse({**body, "padding": ""}).body)
    room = max(_PADDED_MIN + secrets.randbelow(_PADDED_RANGE + 1) - bare, 0)
    room -= room % 4  # whole base64 groups
    filler = base64.b64encode(secrets.token_bytes(room // 4 * 3)).decode()
    return {**body, "padding": filler}


def _iso(day: date | None) -> str | None:
    return None if day is None else day.isoformat()


@dataclass(frozen=True)
class DeviceApi:
    """What the device API's routes share (``app.state.device_api``)."""

    service: VerificationService
    #: Whether answers are padded (``response_padding``).
    pad: bool
    #: Signs chaff certificates; trusted nowhere.
    chaff_key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )

    def reply(
        self, status: int, body: dict[str, Any], headers: Mapping[str, str] | None = None
    ) -> JSONResponse:
        """``body`` without its empty fields, padded unless padding is off."""
        return JSONResponse(self.answer(body), status_code=status, headers=headers)

    def answer(self, body: dict[str, Any]) -> dict[str, Any]:
        """The JSON of an answer: ``body`` without its empty fields, padded unless padding
        is off."""
        body = {k: v for k, v in body.items() if v is not None}
        return _padded(body) if self.pad else body

    def too_large(self, limit: int) -> dict[str, Any]:
        """The answer to a body over ``limit`` bytes: what the error handlers answer for a
        413 (``unparsable_request``), sent by :class:`BodyLimit` before the app runs."""
        return self.answer({"error": f"body exceeds {limit} bytes", "errorCode": _HTTP_CODES[413]})

    def chaff_verify(self) -> dict[str, Any]:
        """A chaff ``/verify`` answer: the fields of a real one, random token."""
        today = self.service.clock.now().date()
        return {
            "testtype": "confirmed",
            "symptomDate": _iso(today),
            "testDate": _iso(today),
            "token": secrets.token_urlsafe(32),  # the form of a real token
        }

    def chaff_certificate(self, ekeyhmac: str) -> str:
        """A certificate-shaped JWS signed by :attr:`chaff_key`."""
        service = self.service
        now = service.clock.now()
        kid, _ = service.signing.active()
        if not 40 <= len(ekeyhmac) <= 48:  # not a 32-byte HMAC: a random one
            ekeyhmac = base64.b64encode(secrets.token_bytes(32)).decode()
        return make_certificate(
            private_key=self.chaff_key,
            kid=kid,
            issuer=service.settings.issuer,
            audience=service.settings.audience,
            now=now,
            skew_seconds=service.settings.allowed_clock_skew_seconds,
            lifetime_seconds=service.settings.certificate_minutes * 60,
            report_type="confirmed",
            tekmac=ekeyhmac,
            symptom_date=now.date(),
            test_date=now.date(),
        )


async def _device_api(request: Request) -> DeviceApi:
    """The :class:`DeviceApi` of the app serving ``request`` (``async``: no worker thread)."""
    api: DeviceApi = request.app.state.device_api
    return api


DeviceApiDep = Annotated[DeviceApi, Depends(_device_api)]
ApiKey = Annotated[str | None, Header(alias="X-API-Key")]
Chaff = Annotated[str | None, Header(alias="X-Chaff")]

router = APIRouter()


@router.post(
    "/verify",
    response_model=VerifyCodeResponse,
    response_model_exclude_none=True,
    responses=_ERROR_RESPONSES,
)
async def verify(
    body: VerifyCodeRequest,
    api: DeviceApiDep,
    x_api_key: ApiKey = None,
    x_chaff: Chaff = None,
) -> JSONResponse:
    """Exchange a verification code for a single-use verification token."""
    service = api.service
    if x_chaff is not None:
        key_id, _ = await run_in_threadpool(service.admit, x_api_key)  # as a real one
        service.verify_limiter.check(key_id, service.clock.now())  # not counted
        return api.reply(200, api.chaff_verify())
    result = await run_in_threadpool(service.verify, x_api_key, body.code, body.accept)
    return api.reply(
        200,
        {
            "testtype": result.test_type,
            "symptomDate": _iso(result.symptom_date),
            "testDate": _iso(result.test_date),
            "token": result.token,
        },
    )


@router.post(
    "/certificate",
    response_model=VerificationCertificateResponse,
    response_model_exclude_none=True,
    responses=_ERROR_RESPONSES,
)
async def certificate(
    body: VerificationCertificateRequest,
    api: DeviceApiDep,
    x_api_key: ApiKey = None,
    x_chaff: Chaff = None,
) -> JSONResponse:
    """Exchange a verification token and a TEK HMAC for a verification certificate."""
    service = api.service
    if x_chaff is not None:
        await run_in_threadpool(service.admit, x_api_key)  # answers as a real one would
        chaff = await run_in_threadpool(api.chaff_certificate, body.ekeyhmac)
        return api.reply(200, {"certificate": chaff})
    cert = await run_in_threadpool(service.certificate, x_api_key, body.token, body.ekeyhmac)
    return api.reply(200, {"certificate": cert})


def _respond(
    request: Request,
    status: int,
    code: str,
    message: str,
    headers: Mapping[str, str] | None = None,
) -> Response:
    api: DeviceApi = request.app.state.device_api
    return api.reply(status, {"error": message, "errorCode": code}, headers)


def _retry_after(exc: PheTraceError) -> dict[str, str] | None:
    if isinstance(exc, RateLimitedError):
        return {"Retry-After": str(max(exc.retry_after, 1))}
    return None


def create_device_api(service: VerificationService) -> FastAPI:
    """The device API as an ASGI app, to be mounted at ``/api``."""
    app = FastAPI(
        title="phe-trace verification device API",
        version="1",
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    api = app.state.device_api = DeviceApi(service, pad=service.settings.response_padding)
    install_error_handlers(
        app,
        refused=(VerificationError,),
        respond=_respond,
        fallback_code=UnparsableRequestError.code,
        http_codes=_HTTP_CODES,
        malformed=lambda _exc: "unparsable request",
        headers_for=_retry_after,
    )
    # A dropped connection outside the retried steps is answered as one after the retry:
    # nothing was claimed (every claim is retried inside the service), so the app may
    # simply retry.
    install_unavailable_handlers(app, VerificationDatabaseUnavailableError, respond=_respond)
    app.include_router(router)
    limit = service.settings.max_body_bytes
    app.add_middleware(BodyLimit, limit_for=lambda _path: limit, refusal=api.too_large)
    return app
