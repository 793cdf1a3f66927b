"""Sign in and out of the portal (SPEC VER-12, VER-13): ``/``, ``/login``, ``/logout``."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ..errors import SignInError
from .render import FormStr, render
from .session import PRESIGNIN_COOKIE, SESSION_COOKIE, Portal, PortalDep

__all__ = ["router"]

router = APIRouter()


@router.get("/", include_in_schema=False)
def home(request: Request, portal: PortalDep) -> Response:
    target = "/codes/new" if portal.signed_in(request) else "/login"
    return RedirectResponse(Portal.base(request) + target, status_code=303)


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, portal: PortalDep) -> Response:
    nonce, token = portal.presignin(request)
    response = render(portal, request, "login.html", {"login_csrf": token, "error": None})
    portal.set_cookie(request, response, PRESIGNIN_COOKIE, nonce)
    return response


@router.post("/login", response_class=HTMLResponse)
def login(
    request: Request,
    portal: PortalDep,
    username: FormStr = "",
    password: FormStr = "",
    csrf_token: FormStr = "",
) -> Response:
    svc = portal.service
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


@router.post("/logout")
def logout(request: Request, portal: PortalDep, csrf_token: FormStr = "") -> Response:
    current = portal.require(request)
    portal.check_csrf(current.csrf, csrf_token)
    portal.service.accounts.end_session(current.session_id, current.user)
    response = RedirectResponse(Portal.base(request) + "/login", status_code=303)
    portal.clear_cookie(request, response, SESSION_COOKIE)
    return response
