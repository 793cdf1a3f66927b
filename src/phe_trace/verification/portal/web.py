"""Routes of the case-worker portal and the app that serves them (mounted at ``/portal``).

Pages: sign in / out, issue a code, recent codes by status, realm statistics, the
community statistics the aggregators and the key server released (``community.py``, also
as CSV and JSON), and for realm admins users, API keys and the audit log (``admin.py``).
Handlers are thin: they check the session and CSRF token, call
:class:`~..service.VerificationService`, render.
While the database is unavailable every page is a plain "Service temporarily unavailable"
page with status 503 and ``Retry-After`` (VER-15).
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import FastAPI, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup
from sqlalchemy.exc import DBAPIError
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint

from ..database import is_transient
from ..errors import (
    RETRY_AFTER_SECONDS,
    DatabaseUnavailableError,
    InvalidDateError,
    SignInError,
    VerificationError,
)
from ..models import PORTAL_TEST_TYPES, CodeStatus
from ..service import VerificationService
from . import admin, community
from .chart import stats_svg
from .session import (
    PRESIGNIN_COOKIE,
    SESSION_COOKIE,
    CsrfError,
    ForbiddenError,
    NotSignedInError,
    Portal,
    SignedIn,
)

__all__ = ["create_portal"]

_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
FormStr = Annotated[str, Form()]


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


def _parse_date(name: str, value: str) -> date | None:
    value = value.strip()
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidDateError(f"{name} {value!r} is not a date (YYYY-MM-DD)") from None


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


def _issue_form(
    portal: Portal, request: Request, current: SignedIn, **extra: Any
) -> dict[str, Any]:
    svc = portal.service
    realm = svc.accounts.realm(current.user.realm_id)
    return {
        "test_types": PORTAL_TEST_TYPES,
        "today": svc.clock.now().date().isoformat(),
        "quota": realm.daily_quota,
        "issued_today": svc.codes.issued_today(realm.id, svc.clock.now()),
        "realm": realm,
        "short_minutes": svc.settings.short_code_minutes,
        "long_hours": svc.settings.long_code_hours,
        **extra,
    }


def _add_pages(app: FastAPI, portal: Portal) -> None:
    svc = portal.service

    @app.get("/", include_in_schema=False)
    def home(request: Request) -> Response:
        target = "/codes/new" if portal.signed_in(request) else "/login"
        return RedirectResponse(Portal.base(request) + target, status_code=303)

    @app.get("/login", response_class=HTMLResponse)
    def login_form(request: Request) -> Response:
        nonce, token = portal.presignin(request)
        response = render(portal, request, "login.html", {"login_csrf": token, "error": None})
        portal.set_cookie(request, response, PRESIGNIN_COOKIE, nonce)
        return response

    @app.post("/login", response_class=HTMLResponse)
    def login(
        request: Request, username: FormStr = "", password: FormStr = "", csrf_token: FormStr = ""
    ) -> Response:
        nonce = request.cookies.get(PRESIGNIN_COOKIE, "")
        portal.check_signin_cookie(request, nonce)
        portal.check_csrf(svc.keyring.csrf_token("presignin:" + nonce) if nonce else "", csrf_token)
        try:
            user = svc.accounts.authenticate(username.strip(), password)
        except SignInError:
            ctx = {"login_csrf": csrf_token, "error": "Sign-in failed.", "username": username}
            return render(portal, request, "login.html", ctx, status_code=401)
        response = RedirectResponse(Portal.base(request) + "/codes/new", status_code=303)
        portal.set_cookie(request, response, SESSION_COOKIE, svc.accounts.create_session(user))
        portal.clear_cookie(request, response, PRESIGNIN_COOKIE)
        return response

    @app.post("/logout")
    def logout(request: Request, csrf_token: FormStr = "") -> Response:
        current = portal.require(request)
        portal.check_csrf(current.csrf, csrf_token)
        svc.accounts.end_session(current.session_id, current.user)
        response = RedirectResponse(Portal.base(request) + "/login", status_code=303)
        portal.clear_cookie(request, response, SESSION_COOKIE)
        return response

    @app.get("/codes/new", response_class=HTMLResponse)
    def issue_form(request: Request) -> Response:
        current = portal.require(request)
        return render(portal, request, "issue.html", _issue_form(portal, request, current), current)

    @app.post("/codes", response_class=HTMLResponse)
    def issue(
        request: Request,
        csrf_token: FormStr = "",
        test_type: FormStr = "",
        test_date: FormStr = "",
        symptom_date: FormStr = "",
    ) -> Response:
        current = portal.require(request)
        portal.check_csrf(current.csrf, csrf_token)
        try:
            issued = svc.issue_code(
                current.user,
                test_type,
                _parse_date("test date", test_date),
                _parse_date("symptom date", symptom_date),
            )
        except DatabaseUnavailableError:
            raise  # the unavailable page: the form would need the database too
        except VerificationError as exc:
            ctx = _issue_form(portal, request, current, error=str(exc), error_code=exc.code)
            return render(portal, request, "issue.html", ctx, current, status_code=exc.status)
        return render(portal, request, "issued.html", {"issued": issued}, current)

    @app.get("/codes", response_class=HTMLResponse)
    def recent_codes(request: Request) -> Response:
        current = portal.require(request)
        recent = svc.codes.list_recent(current.user.realm_id, svc.clock.now(), limit=100)
        groups = {s.value: [c for c in recent if c.status is s] for s in CodeStatus}
        return render(portal, request, "codes.html", {"groups": groups}, current)

    @app.get("/stats", response_class=HTMLResponse)
    def stats(request: Request) -> Response:
        current = portal.require(request)
        days = svc.codes.stats(current.user.realm_id, svc.clock.now(), days=30)
        ctx = {"days": list(reversed(days)), "chart": Markup(stats_svg(days))}  # noqa: S704
        return render(portal, request, "stats.html", ctx, current)

    def _community() -> community.Community:
        return community.gather(
            svc.settings.statistics_leader_url,
            svc.settings.statistics_keyserver_url,
            local_key_counts=svc.local_key_counts,
        )

    @app.get("/statistics", response_class=HTMLResponse)
    def community_page(request: Request) -> Response:
        current = portal.require(request)
        data = _community()
        ctx = {
            "community": data,
            "days": data.days(),
            "note": community.noise_note(data),
        }
        return render(portal, request, "community.html", ctx, current)

    @app.get("/statistics.csv")
    def community_csv(request: Request) -> Response:
        portal.require(request)
        return Response(
            community.to_csv(_community().rows),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="community-statistics.csv"'},
        )

    @app.get("/statistics.json")
    def community_json(request: Request) -> Response:
        portal.require(request)
        generated = svc.clock.now().strftime("%Y-%m-%dT%H:%M:%SZ")
        return JSONResponse(
            community.to_json(_community(), generated),
            headers={"Content-Disposition": 'attachment; filename="community-statistics.json"'},
        )


def create_portal(service: VerificationService) -> FastAPI:
    """The portal as an ASGI app, to be mounted at ``/portal``."""
    env = Environment(
        loader=PackageLoader("phe_trace.verification.portal", "templates"),
        autoescape=select_autoescape(["html"]),
    )
    env.filters["utc"] = _utc
    portal = Portal(service, Jinja2Templates(env=env))
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(_SecurityHeaders)
    app.mount(
        "/static",
        StaticFiles(packages=[("phe_trace.verification.portal", "static")]),
        name="static",
    )

    @app.exception_handler(CsrfError)
    async def _csrf(request: Request, exc: CsrfError) -> Response:
        ctx = {"title": "Refused", "message": exc.message}
        return render(portal, request, "error.html", ctx, status_code=403)

    @app.exception_handler(NotSignedInError)
    async def _not_signed_in(request: Request, _: NotSignedInError) -> Response:
        return RedirectResponse(Portal.base(request) + "/login", status_code=303)

    @app.exception_handler(ForbiddenError)
    async def _forbidden(request: Request, _: ForbiddenError) -> Response:
        ctx = {"title": "Forbidden", "message": "This page is for realm admins."}
        return render(portal, request, "error.html", ctx, status_code=403)

    @app.exception_handler(DatabaseUnavailableError)
    async def _unavailable(request: Request, _: DatabaseUnavailableError) -> Response:
        return _unavailable_page(portal, request)

    @app.exception_handler(DBAPIError)
    async def _database(request: Request, exc: DBAPIError) -> Response:
        if is_transient(exc):  # a dropped connection or a database restart
            return _unavailable_page(portal, request)
        raise exc

    @app.exception_handler(VerificationError)
    async def _error(request: Request, exc: VerificationError) -> Response:
        ctx = {"title": "Error", "message": str(exc)}
        return render(portal, request, "error.html", ctx, status_code=exc.status)

    _add_pages(app, portal)
    admin.add_admin_pages(app, portal)
    return app


def _unavailable_page(portal: Portal, request: Request) -> Response:
    """The plain 503 page shown while the database is unavailable (touches no storage)."""
    ctx = {
        "title": "Service temporarily unavailable",
        "message": "The service is temporarily unavailable. Please try again in a moment.",
    }
    response = render(portal, request, "error.html", ctx, status_code=503)
    response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def _utc(unix: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(int(unix), UTC).strftime("%Y-%m-%d %H:%M UTC")
