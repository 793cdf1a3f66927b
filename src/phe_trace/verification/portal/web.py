"""The case-worker portal as an app (mounted at ``/portal``): its routers, one per file, and
how it answers errors.

Pages: sign in / out (``signin.py``), issue a code, recent codes by status and realm
statistics (``codes.py``), the community statistics the aggregators and the key server
released (``statistics.py``, also as CSV and JSON), and for realm admins users, API keys
and the audit log (``admin.py``). Handlers are thin: they check the session and CSRF token,
call :class:`~..service.VerificationService`, render (``render.py``); each finds the
:class:`~.session.Portal` in ``app.state.portal`` (``PortalDep``).
While the database is unavailable every page is a plain "Service temporarily unavailable"
page with status 503 and ``Retry-After`` (VER-15).
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint

from phe_trace.web.errors import install_error_handlers, install_unavailable_handlers

from ..errors import VerificationDatabaseUnavailableError, VerificationError
from ..service import VerificationService
from . import admin, codes, signin, statistics
from .render import error_page, render, templates, unavailable_page
from .session import CsrfError, ForbiddenError, NotSignedInError, Portal

__all__ = ["create_portal"]

_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


class _SecurityHeaders(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        response = await call_next(request)
        response.headers["Content-Security-Policy"] = _CSP
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        if not request.url.path.startswith(f"{Portal.base(request)}/static"):
            response.headers["Cache-Control"] = "no-store"
        return response


async def _csrf(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, CsrfError)
    ctx = {"title": "Refused", "message": exc.message}
    return render(request.app.state.portal, request, "error.html", ctx, status_code=403)


async def _not_signed_in(request: Request, _: Exception) -> Response:
    return RedirectResponse(Portal.base(request) + "/login", status_code=303)


async def _forbidden(request: Request, _: Exception) -> Response:
    ctx = {"title": "Forbidden", "message": "This page is for realm admins."}
    return render(request.app.state.portal, request, "error.html", ctx, status_code=403)


def create_portal(service: VerificationService) -> FastAPI:
    """The portal as an ASGI app, to be mounted at ``/portal``."""
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    app.state.portal = Portal(service, templates())
    app.add_middleware(_SecurityHeaders)
    app.mount(
        "/static",
        StaticFiles(packages=[("phe_trace.verification.portal", "static")]),
        name="static",
    )
    # A refused request is the error page with the error's status; routing and form
    # errors keep the framework's answers.
    install_error_handlers(
        app, refused=(VerificationError,), respond=error_page, http_codes=None, malformed=None
    )
    app.add_exception_handler(CsrfError, _csrf)
    app.add_exception_handler(NotSignedInError, _not_signed_in)
    app.add_exception_handler(ForbiddenError, _forbidden)
    install_unavailable_handlers(
        app, VerificationDatabaseUnavailableError, respond=unavailable_page
    )
    for router in (signin.router, codes.router, statistics.router, admin.router):
        app.include_router(router)
    return app
