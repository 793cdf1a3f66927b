"""Realm-admin pages: users, API keys, the audit log (SPEC VER-14)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ..errors import VerificationError
from .render import FormStr, render
from .session import Portal, PortalDep

__all__ = ["router"]

router = APIRouter()


def _users_page(
    portal: Portal, request: Request, status_code: int = 200, **extra: object
) -> Response:
    current = portal.require(request, admin=True)
    ctx = {"users": portal.service.accounts.list_users(current.user.realm_id), **extra}
    return render(portal, request, "users.html", ctx, current, status_code=status_code)


def _keys_page(
    portal: Portal, request: Request, status_code: int = 200, **extra: object
) -> Response:
    current = portal.require(request, admin=True)
    ctx = {"keys": portal.service.accounts.list_api_keys(current.user.realm_id), **extra}
    return render(portal, request, "api_keys.html", ctx, current, status_code=status_code)


@router.get("/admin/users", response_class=HTMLResponse)
def users(request: Request, portal: PortalDep) -> Response:
    return _users_page(portal, request)


@router.post("/admin/users", response_class=HTMLResponse)
def create_user(
    request: Request,
    portal: PortalDep,
    csrf_token: FormStr = "",
    username: FormStr = "",
    password: FormStr = "",
    role: FormStr = "case_worker",
) -> Response:
    current = portal.require(request, admin=True)
    portal.check_csrf(current.csrf, csrf_token)
    try:
        portal.service.accounts.create_user(
            current.user.realm_id,
            username,
            password,
            is_admin=role == "admin",
            actor=current.user.username,
        )
    except VerificationError as exc:
        return _users_page(portal, request, status_code=exc.status, error=str(exc))
    return _users_page(portal, request, message=f"User {username.strip()} created.")


@router.post("/admin/users/{user_id}/{action}", response_class=HTMLResponse)
def change_user(
    request: Request, portal: PortalDep, user_id: int, action: str, csrf_token: FormStr = ""
) -> Response:
    current = portal.require(request, admin=True)
    portal.check_csrf(current.csrf, csrf_token)
    accounts = portal.service.accounts
    realm, actor = current.user.realm_id, current.user.username
    if action == "unlock":
        accounts.unlock_user(realm, user_id, actor)
    elif action in ("disable", "enable"):
        if user_id == current.user.id:
            return _users_page(
                portal, request, status_code=400, error="You cannot disable yourself."
            )
        accounts.set_user_disabled(realm, user_id, action == "disable", actor)
    else:
        return _users_page(portal, request, status_code=404, error="Unknown action.")
    return RedirectResponse(Portal.base(request) + "/admin/users", status_code=303)


@router.get("/admin/api-keys", response_class=HTMLResponse)
def api_keys(request: Request, portal: PortalDep) -> Response:
    return _keys_page(portal, request)


@router.post("/admin/api-keys", response_class=HTMLResponse)
def create_api_key(
    request: Request, portal: PortalDep, csrf_token: FormStr = "", name: FormStr = ""
) -> Response:
    current = portal.require(request, admin=True)
    portal.check_csrf(current.csrf, csrf_token)
    try:
        _, clear = portal.service.accounts.create_api_key(
            current.user.realm_id, name, current.user.username
        )
    except VerificationError as exc:
        return _keys_page(portal, request, status_code=exc.status, error=str(exc))
    return _keys_page(portal, request, new_key=clear)


@router.post("/admin/api-keys/{key_id}/revoke", response_class=HTMLResponse)
def revoke_api_key(
    request: Request, portal: PortalDep, key_id: int, csrf_token: FormStr = ""
) -> Response:
    current = portal.require(request, admin=True)
    portal.check_csrf(current.csrf, csrf_token)
    portal.service.accounts.revoke_api_key(current.user.realm_id, key_id, current.user.username)
    return RedirectResponse(Portal.base(request) + "/admin/api-keys", status_code=303)


@router.get("/admin/audit", response_class=HTMLResponse)
def audit(request: Request, portal: PortalDep) -> Response:
    current = portal.require(request, admin=True)
    events = portal.service.accounts.audit_log(current.user.realm_id)
    return render(portal, request, "audit.html", {"events": events}, current)
