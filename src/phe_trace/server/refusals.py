"""How the key server answers errors: JSON with a stable ``code``, a bad request never a 500.

The shape, the statuses and the codes of framework errors are those of every service
(:mod:`phe_trace.web.errors`); here are the key server's own rules:

- answers on ``/v1/publish`` are padded publish responses (SPEC PUB-4), whatever failed;
- a refused publish, a malformed one and one over the body limit count in the
  ``rejects`` metric;
- an export object that does not exist is 404 ``not_found``;
- a database that is down (also on the one retry) is 503 ``unavailable`` with
  ``Retry-After``, as for every role (``web.errors.install_unavailable_handlers``),
  logged as ``database_unavailable``; any other server fault is a 500 that names nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException

from phe_trace.protocol.publish import ERROR_INTERNAL, PublishResponse
from phe_trace.web.errors import (
    error_response,
    install_error_handlers,
    install_unavailable_handlers,
)

from .context import ServerContext
from .errors import DatabaseUnavailableError, ExportStoreError, PublishError, ServerError
from .logs import log_event
from .publish import padding_for

__all__ = ["install_refusals"]


def _is_publish(request: Request) -> bool:
    return request.url.path.endswith("/v1/publish")


def _respond(
    request: Request,
    status: int,
    code: str,
    message: str,
    headers: Mapping[str, str] | None = None,
) -> Response:
    if _is_publish(request):
        ctx: ServerContext = request.app.state.keyserver
        body = PublishResponse(error=message, code=code, padding=padding_for(ctx))
        return JSONResponse(body.to_json_dict(), status_code=status, headers=headers)
    return error_response(status, code, message, headers)


def _observe(request: Request, exc: Exception, code: str) -> None:
    ctx: ServerContext = request.app.state.keyserver
    if isinstance(exc, PublishError):
        ctx.metrics.rejects.inc(code=exc.code)
        log_event("publish_rejected", code=exc.code)
    elif _is_publish(request) and (
        isinstance(exc, RequestValidationError)
        or (isinstance(exc, HTTPException) and exc.status_code == 413)
    ):
        ctx.metrics.rejects.inc(code=code)


def _unexpected(exc: Exception) -> None:
    log_event("internal_error", logging.ERROR, exception=type(exc).__name__)


def _unavailable() -> None:
    log_event("database_unavailable", logging.WARNING)


async def _not_found(request: Request, exc: Exception) -> Response:
    return _respond(request, 404, "not_found", "no such export object")


def _database_error(request: Request, exc: DBAPIError) -> Response:
    _unexpected(exc)
    return _respond(request, 500, ERROR_INTERNAL, "internal error")


async def _server_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ServerError)
    log_event("server_error", logging.ERROR, code=exc.code)
    return _respond(request, 500, exc.code, "the server cannot answer this request")


def install_refusals(app: FastAPI) -> None:
    """Answer every error of the key server ``app`` (its context in ``app.state.keyserver``)."""
    install_error_handlers(
        app,
        refused=(PublishError,),
        respond=_respond,
        observe=_observe,
        unexpected=_unexpected,
    )
    app.add_exception_handler(ExportStoreError, _not_found)
    install_unavailable_handlers(
        app,
        DatabaseUnavailableError,
        respond=_respond,
        observe=_unavailable,
        other=_database_error,
    )
    app.add_exception_handler(ServerError, _server_error)
