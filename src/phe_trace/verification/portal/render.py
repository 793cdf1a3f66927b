"""Pages of the portal: the templates, :func:`render` with the common context, the error
pages (:func:`error_page`, :func:`unavailable_page`)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Form, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, PackageLoader, select_autoescape

from .session import Portal, SignedIn

__all__ = ["FormStr", "error_page", "render", "templates", "unavailable_page"]

#: A form field, empty when the form lacks it.
FormStr = Annotated[str, Form()]


def _utc(unix: int) -> str:
    return datetime.fromtimestamp(int(unix), UTC).strftime("%Y-%m-%d %H:%M UTC")


def templates() -> Jinja2Templates:
    """The portal's templates (HTML autoescaped, the ``utc`` filter)."""
    env = Environment(
        loader=PackageLoader("phe_trace.verification.portal", "templates"),
        autoescape=select_autoescape(["html"]),
    )
    env.filters["utc"] = _utc
    return Jinja2Templates(env=env)


def render(
    portal: Portal,
    request: Request,
    template: str,
    context: dict[str, Any],
    current: SignedIn | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    """Render a page with the portal's common context."""
    ctx = {
        "base": Portal.base(request),
        "user": current.user if current else None,
        "csrf": current.csrf if current else "",
        "now": int(portal.service.clock.now().timestamp()),
        **context,
    }
    return portal.templates.TemplateResponse(request, template, ctx, status_code=status_code)


def error_page(
    request: Request,
    status: int,
    code: str,
    message: str,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """A refused request as the error page (``phe_trace.web.errors.Respond``)."""
    portal: Portal = request.app.state.portal
    ctx = {"title": "Error", "message": message}
    return render(portal, request, "error.html", ctx, status_code=status)


def unavailable_page(
    request: Request,
    status: int,
    code: str,
    message: str,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """The plain page shown while the database is unavailable, with ``status`` (503) and
    ``headers`` (``Retry-After``) of ``phe_trace.web.errors.unavailable_response``; it
    says only that the service is unavailable and touches no storage."""
    portal: Portal = request.app.state.portal
    ctx = {
        "title": "Service temporarily unavailable",
        "message": "The service is temporarily unavailable. Please try again in a moment.",
    }
    response = render(portal, request, "error.html", ctx, status_code=status)
    response.headers.update(headers or {})
    return response
