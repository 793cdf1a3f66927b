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
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from phe_trace.web.bodylimit import BodyLimit
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


class _SecurityHeaders:
    """The portal's security headers on every answer, the app's own and the middleware's
    (plain ASGI: a request's body reaches the app unwrapped, so a body-limit refusal stays
    a 413)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = Request(scope).url.path.startswith(f"{Portal.base(Request(scope))}/static")

        async def secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["Content-Security-Policy"] = _CSP
                headers["X-Frame-Options"] = "DENY"
                headers["X-Content-Type-Options"] = "nosniff"
                headers["Referrer-Policy"] = "no-referrer"
                if not static:
                    headers["Cache-Control"] = "no-store"
            await send(message)

        await self.app(scope, receive, secured)


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
    # A body over the limit: the framework's 413, whether its length is declared (answered
    # here, before the app runs) or not (refused once it passes the limit).
    app.add_middleware(
        BodyLimit,
        limit_for=lambda _path: service.settings.max_body_bytes,
        refusal=lambda limit: {"detail": f"body exceeds {limit} bytes"},
    )
    app.add_middleware(_SecurityHeaders)  # outermost: on every answer, refusals included
    return app
