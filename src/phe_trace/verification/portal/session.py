"""Portal sessions and CSRF protection (SPEC VER-12, VER-13).

* The session cookie (``phe_trace_session``) is HTTP-only, ``SameSite=Strict``, ``Secure``
  unless configured otherwise, scoped to the portal path; the server stores only a keyed
  hash of its value, so a database dump yields no usable session.
* Every form carries a CSRF token: an HMAC (keyed from the server secret) of the session
  cookie, or of a pre-sign-in cookie on the sign-in form. A POST whose token is missing or
  wrong is refused with 403 before anything else happens.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.responses import Response
from fastapi.templating import Jinja2Templates

from phe_trace.crypto.compare import same_text

from ..errors import REFUSED_FORM, CsrfError, ForbiddenError, NotSignedInError
from ..models import User
from ..service import VerificationService

__all__ = [
    "COOKIE_SECURE_SETTING",
    "PRESIGNIN_COOKIE",
    "REFUSED_FORM",
    "SESSION_COOKIE",
    "CsrfError",
    "ForbiddenError",
    "NotSignedInError",
    "Portal",
    "PortalDep",
    "SignedIn",
    "get_portal",
]

#: Name of the session cookie.
SESSION_COOKIE = "phe_trace_session"
#: Name of the cookie binding the sign-in form's CSRF token.
PRESIGNIN_COOKIE = "phe_trace_presignin"


#: The setting that marks portal cookies ``Secure`` (development over plain HTTP only).
COOKIE_SECURE_SETTING = "PHE_TRACE_VERIFICATION_COOKIE_SECURE"


@dataclass(frozen=True, slots=True)
class SignedIn:
    """The signed-in user of a request and the CSRF token of their forms."""

    user: User
    session_id: str
    csrf: str


class Portal:
    """What the portal's routes share: the service, templates and cookie policy."""

    def __init__(self, service: VerificationService, templates: Jinja2Templates) -> None:
        self.service = service
        self.templates = templates
        self.secure = service.settings.cookie_secure

    @staticmethod
    def base(request: Request) -> str:
        """The URL path the portal is mounted at (e.g. ``/portal``)."""
        return str(request.scope.get("root_path", "")).rstrip("/")

    def set_cookie(self, request: Request, response: Response, name: str, value: str) -> None:
        """Set an HTTP-only, SameSite=Strict cookie scoped to the portal."""
        response.set_cookie(
            name,
            value,
            max_age=self.service.settings.session_hours * 3600,
            path=self.base(request) or "/",
            secure=self.secure,
            httponly=True,
            samesite="strict",
        )

    def clear_cookie(self, request: Request, response: Response, name: str) -> None:
        """Delete a portal cookie."""
        response.delete_cookie(
            name,
            path=self.base(request) or "/",
            secure=self.secure,
            httponly=True,
            samesite="strict",
        )

    def signed_in(self, request: Request) -> SignedIn | None:
        """The request's live session, if any."""
        session_id = request.cookies.get(SESSION_COOKIE)
        if not session_id or len(session_id) > 200:
            return None
        user = self.service.accounts.session_user(session_id)
        if user is None:
            return None
        csrf = self.service.keyring.csrf_token("session:" + session_id)
        return SignedIn(user, session_id, csrf)

    def require(self, request: Request, *, admin: bool = False) -> SignedIn:
        """The request's session, or raise (redirect to sign-in / 403 for non-admins)."""
        current = self.signed_in(request)
        if current is None:
            raise NotSignedInError()
        if admin and not current.user.is_admin:
            raise ForbiddenError()
        return current

    def check_csrf(self, expected: str, submitted: str) -> None:
        """Compare a submitted CSRF token in constant time; raise :class:`CsrfError`."""
        if not submitted or not same_text(expected, submitted):
            raise CsrfError()

    @staticmethod
    def over_plain_http(request: Request) -> bool:
        """Whether the browser loaded the page over plain HTTP: the scheme of the form's
        ``Origin`` (or ``Referer``), else ``X-Forwarded-Proto``, else the connection's."""
        for header in ("origin", "referer"):
            value = request.headers.get(header, "").lower()
            if value.startswith("https://"):
                return False
            if value.startswith("http://"):
                return True
        proto = request.headers.get("x-forwarded-proto") or request.url.scheme
        return proto.split(",")[0].strip().lower() == "http"

    def check_signin_cookie(self, request: Request, nonce: str) -> None:
        """Name the dropped cookie when the sign-in form came back without it because it is
        ``Secure`` and the page was loaded over plain HTTP (browsers do not keep a Secure
        cookie set over HTTP, except on localhost)."""
        if not nonce and self.secure and self.over_plain_http(request):
            raise CsrfError(
                "The browser did not send the sign-in cookie: it is Secure and this page was "
                "loaded over plain HTTP. Use HTTPS (a TLS proxy in front), or, for "
                f"development over plain HTTP only, set {COOKIE_SECURE_SETTING}=false."
            )

    def presignin(self, request: Request) -> tuple[str, str]:
        """``(cookie value, CSRF token)`` for the sign-in form (new cookie if absent)."""
        nonce = request.cookies.get(PRESIGNIN_COOKIE) or ""
        if not 20 <= len(nonce) <= 100:
            nonce = secrets.token_urlsafe(24)
        return nonce, self.service.keyring.csrf_token("presignin:" + nonce)


async def get_portal(request: Request) -> Portal:
    """The :class:`Portal` of the app serving ``request`` (``app.state.portal``)."""
    portal: Portal = request.app.state.portal
    return portal


PortalDep = Annotated[Portal, Depends(get_portal)]
