"""How every phe-trace HTTP service answers a refused request.

The key server, the federation gateway, the aggregators and the combined host answer
``{"error": message, "code": code}`` (:func:`error_body`) with a stable ``code``:

- a deliberate error (a :class:`~phe_trace.errors.PheTraceError` subclass the service
  names) with its own ``status`` and ``code`` and its message;
- a framework error (unknown path, wrong method, body too large) with the code of its
  status in :data:`HTTP_CODES`, and its headers (``Allow`` on a 405);
- a body or parameter the schema refuses: 400 with the service's fallback code and the
  fields at fault (:func:`malformed_message`);
- anything else, where the service asks for it: 500 ``internal_error``, logged by the
  service, with no detail in the answer.

:func:`install_error_handlers` puts these handlers on an app. A service whose answers
have another shape passes its own ``respond``: the verification service's device API
answers in the GAEN verification server's shape (``errorCode``, padded), the portal as
an HTML page; the statuses and codes still come from here.

A role with a database adds :func:`install_unavailable_handlers`: a database that is
down — the role's own 503 error, raised when the one retry failed too, or a dropped
connection outside the retried steps — is 503 ``unavailable`` with ``Retry-After``
(:func:`unavailable_response`), the same answer either way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException

from phe_trace import storage
from phe_trace.errors import PheTraceError

__all__ = [
    "BAD_REQUEST",
    "ERROR_SCHEMA",
    "HTTP_CODES",
    "INTERNAL_ERROR",
    "METHOD_NOT_ALLOWED",
    "NOT_FOUND",
    "PAYLOAD_TOO_LARGE",
    "RETRY_AFTER_SECONDS",
    "TOO_MANY_REQUESTS",
    "UNAUTHORIZED",
    "UNAVAILABLE",
    "ErrorOut",
    "Respond",
    "error_body",
    "error_response",
    "install_error_handlers",
    "install_unavailable_handlers",
    "json_error",
    "malformed_message",
    "repeated_query",
    "unavailable_response",
]

BAD_REQUEST = "bad_request"
UNAUTHORIZED = "unauthorized"
NOT_FOUND = "not_found"
METHOD_NOT_ALLOWED = "method_not_allowed"
PAYLOAD_TOO_LARGE = "payload_too_large"
TOO_MANY_REQUESTS = "too_many_requests"
INTERNAL_ERROR = "internal_error"
UNAVAILABLE = "unavailable"

#: Seconds a client should wait after a 503 ``unavailable`` (a database reconnects).
RETRY_AFTER_SECONDS = 2

#: The code of each framework status; any other status answers the service's fallback.
HTTP_CODES: Mapping[int, str] = {
    400: BAD_REQUEST,
    401: UNAUTHORIZED,
    404: NOT_FOUND,
    405: METHOD_NOT_ALLOWED,
    413: PAYLOAD_TOO_LARGE,
    429: TOO_MANY_REQUESTS,
}

#: OpenAPI schema of :func:`error_body` (for ``responses=`` of a route).
ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"error": {"type": "string"}, "code": {"type": "string"}},
    "required": ["error", "code"],
}


class ErrorOut(BaseModel):
    """A refused request: message and stable code (AGG-35)."""

    error: str
    code: str


#: How a service writes one error answer: ``(request, status, code, message, headers)``.
Respond = Callable[[Request, int, str, str, Mapping[str, str] | None], Response]


def error_body(code: str, message: str) -> dict[str, str]:
    """The JSON object of a refusal."""
    return {"error": message, "code": code}


def error_response(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """A refusal as a JSON response."""
    return JSONResponse(error_body(code, message), status_code=status, headers=headers)


def json_error(
    _request: Request,
    status: int,
    code: str,
    message: str,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """The default :data:`Respond`: :func:`error_response`."""
    return error_response(status, code, message, headers)


def repeated_query(name: str) -> dict[str, str]:
    """The refusal of a repeated query parameter (``web.query.SingleQueryValues``)."""
    return error_body(BAD_REQUEST, f"query parameter {name!r} repeated")


def malformed_message(exc: RequestValidationError) -> str:
    """``request is malformed: <fields>``, naming each field the schema refused."""
    fields = sorted({".".join(str(p) for p in e.get("loc", ())[1:]) for e in exc.errors()})
    return "request is malformed" + (f": {', '.join(fields)[:300]}" if fields else "")


def install_error_handlers(
    app: FastAPI,
    *,
    refused: tuple[type[PheTraceError], ...] = (),
    respond: Respond = json_error,
    fallback_code: str = BAD_REQUEST,
    http_codes: Mapping[int, str] | None = HTTP_CODES,
    malformed: Callable[[RequestValidationError], str] | None = malformed_message,
    headers_for: Callable[[PheTraceError], Mapping[str, str] | None] = lambda exc: None,
    observe: Callable[[Request, Exception, str], None] | None = None,
    unexpected: Callable[[Exception], None] | None = None,
) -> None:
    """Answer errors on ``app`` as the module docstring says.

    ``refused``: the deliberate errors answered with their ``status`` (default 500),
    ``code`` and message, plus ``headers_for(exc)``. ``fallback_code``: the code of a
    framework status without one in ``http_codes`` and of a malformed request.
    ``http_codes=None`` / ``malformed=None`` leave those errors to the framework.
    ``observe(request, exc, code)`` runs before each answer (metrics, logs);
    ``unexpected(exc)``, when given, logs any other exception, answered 500.
    """

    def seen(request: Request, exc: Exception, code: str) -> None:
        if observe is not None:
            observe(request, exc, code)

    async def deliberate(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, PheTraceError)
        status: int = getattr(exc, "status", 500)
        seen(request, exc, exc.code)
        return respond(request, status, exc.code, str(exc), headers_for(exc))

    for cls in refused:
        app.add_exception_handler(cls, deliberate)

    if http_codes is not None:
        codes = http_codes

        async def http_error(request: Request, exc: Exception) -> Response:
            assert isinstance(exc, HTTPException)
            code = codes.get(exc.status_code, fallback_code)
            seen(request, exc, code)
            headers = dict(exc.headers or {})
            return respond(request, exc.status_code, code, str(exc.detail), headers)

        app.add_exception_handler(HTTPException, http_error)

    if malformed is not None:
        describe = malformed

        async def invalid(request: Request, exc: Exception) -> Response:
            assert isinstance(exc, RequestValidationError)
            seen(request, exc, fallback_code)
            return respond(request, 400, fallback_code, describe(exc), None)

        app.add_exception_handler(RequestValidationError, invalid)

    if unexpected is not None:
        log = unexpected

        async def internal(request: Request, exc: Exception) -> Response:
            log(exc)
            return respond(request, 500, INTERNAL_ERROR, "internal error", None)

        app.add_exception_handler(Exception, internal)


def unavailable_response(
    request: Request, unavailable: type[PheTraceError], respond: Respond = json_error
) -> Response:
    """The answer while the database is down: the ``status`` (503) and ``code``
    (``unavailable``) of the role's error class ``unavailable``, the message
    :data:`phe_trace.storage.UNAVAILABLE` whatever failed, and ``Retry-After``
    :data:`RETRY_AFTER_SECONDS`, written by ``respond``."""
    status: int = getattr(unavailable, "status", 503)
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}
    return respond(request, status, unavailable.code, storage.UNAVAILABLE, headers)


def install_unavailable_handlers(
    app: FastAPI,
    unavailable: type[PheTraceError],
    *,
    respond: Respond = json_error,
    observe: Callable[[], None] | None = None,
    other: Callable[[Request, DBAPIError], Response] | None = None,
) -> None:
    """Answer a database that is down on ``app`` with :func:`unavailable_response`.

    ``unavailable``: the role's error raised when a database step failed also on its one
    retry; a transient :class:`~sqlalchemy.exc.DBAPIError` (``storage.is_transient``)
    outside the retried steps is answered the same. ``observe()`` runs before each such
    answer (a log line). Any other database error goes to ``other(request, exc)``, or
    without one to the framework (a 500).
    """

    def answer(request: Request) -> Response:
        if observe is not None:
            observe()
        return unavailable_response(request, unavailable, respond)

    async def down(request: Request, exc: Exception) -> Response:
        return answer(request)

    async def database_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, DBAPIError)
        if storage.is_transient(exc):  # a dropped connection, a restart
            return answer(request)
        if other is None:
            raise exc
        return other(request, exc)

    app.add_exception_handler(unavailable, down)
    app.add_exception_handler(DBAPIError, database_error)
