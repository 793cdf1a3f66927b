"""The device API (``/api``): ``POST /api/verify`` and ``POST /api/certificate``.

Request and response fields and error codes are those of Google's verification server
v1 (``protocol_spec/SPEC.md`` §13, VER-2 … VER-8, VER-11), so existing GAEN apps can
talk to it. Every answer — success or error — is JSON with ``error`` / ``errorCode`` on
failure and, unless disabled, 1–2 KiB of random ``padding``. Bad input answers
``unparsable_request`` (400), never a 5xx. A request with an ``X-Chaff`` header gets a
padded empty answer and touches nothing.
"""

from __future__ import annotations

import base64
import secrets
from datetime import date
from typing import Annotated, Any

from fastapi import FastAPI, Header, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from .errors import RateLimitedError, VerificationError
from .service import VerificationService

__all__ = [
    "VerificationCertificateRequest",
    "VerificationCertificateResponse",
    "VerifyCodeRequest",
    "VerifyCodeResponse",
    "create_device_api",
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
    429: {"description": "maintenance_mode, too_many_requests or quota_exceeded"},
}


_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "unparsable_request"}


def _padding() -> str:
    return base64.b64encode(secrets.token_bytes(1024 + secrets.randbelow(1024))).decode()


def _iso(day: date | None) -> str | None:
    return None if day is None else day.isoformat()


def create_device_api(service: VerificationService) -> FastAPI:
    """The device API as an ASGI app, to be mounted at ``/api``."""
    app = FastAPI(
        title="phe-trace verification device API",
        version="1",
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    pad = service.settings.response_padding

    def reply(
        status: int, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> JSONResponse:
        body = {k: v for k, v in body.items() if v is not None}
        if pad:
            body["padding"] = _padding()
        return JSONResponse(body, status_code=status, headers=headers)

    @app.exception_handler(VerificationError)
    async def _verification_error(_: Request, exc: VerificationError) -> JSONResponse:
        headers = None
        if isinstance(exc, RateLimitedError):
            headers = {"Retry-After": str(max(exc.retry_after, 1))}
        return reply(exc.status, {"error": str(exc), "errorCode": exc.code}, headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "unparsable_request")
        return reply(exc.status_code, {"error": str(exc.detail), "errorCode": code})

    @app.exception_handler(RequestValidationError)
    async def _unparsable(_: Request, exc: RequestValidationError) -> JSONResponse:
        return reply(400, {"error": "unparsable request", "errorCode": "unparsable_request"})

    @app.post(
        "/verify",
        response_model=VerifyCodeResponse,
        response_model_exclude_none=True,
        responses=_ERROR_RESPONSES,
    )
    async def verify(
        body: VerifyCodeRequest,
        x_api_key: Annotated[str | None, Header(alias="X-API-Key")] = None,
        x_chaff: Annotated[str | None, Header(alias="X-Chaff")] = None,
    ) -> JSONResponse:
        """Exchange a verification code for a single-use verification token."""
        if x_chaff is not None:
            return reply(200, {})
        result = await run_in_threadpool(service.verify, x_api_key, body.code, body.accept)
        return reply(
            200,
            {
                "testtype": result.test_type,
                "symptomDate": _iso(result.symptom_date),
                "testDate": _iso(result.test_date),
                "token": result.token,
            },
        )

    @app.post(
        "/certificate",
        response_model=VerificationCertificateResponse,
        response_model_exclude_none=True,
        responses=_ERROR_RESPONSES,
    )
    async def certificate(
        body: VerificationCertificateRequest,
        x_api_key: Annotated[str | None, Header(alias="X-API-Key")] = None,
        x_chaff: Annotated[str | None, Header(alias="X-Chaff")] = None,
    ) -> JSONResponse:
        """Exchange a verification token and a TEK HMAC for a verification certificate."""
        if x_chaff is not None:
            return reply(200, {})
        cert = await run_in_threadpool(service.certificate, x_api_key, body.token, body.ekeyhmac)
        return reply(200, {"certificate": cert})

    return app
