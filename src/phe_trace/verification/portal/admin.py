"""Realm-admin pages: users, API keys, the audit log (SPEC VER-14)."""

from __future__ import annotations

from typing import Annotated

from fastapi import FastAPI, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ..errors import VerificationError
from .session import Portal

__all__ = ["add_admin_pages"]

FormStr = Annotated[str, Form()]


def add_admin_pages(app: FastAPI, portal: Portal) -> None:
    """Register the realm-admin routes on the portal app."""
    from .web import render

    svc = portal.service

    def users_page(request: Request, status_code: int = 200, **extra: object) -> Response:
        current = portal.require(request, admin=True)
        ctx = {"users": svc.accounts.list_users(current.user.realm_id), **extra}
        return render(portal, request, "users.html", ctx, current, status_code=status_code)

    def keys_page(request: Request, status_code: int = 200, **extra: object) -> Response:
        current = portal.require(request, admin=True)
        ctx = {"keys": svc.accounts.list_api_keys(current.user.realm_id), **extra}
        return render(portal, request, "api_keys.html", ctx, current, status_code=status_code)

    @app.get("/admin/users", response_class=HTMLResponse)
    def users(request: Request) -> Response:
        return users_page(request)

    @app.post("/admin/users", response_class=HTMLResponse)
    def create_user(
        request: Request,
        csrf_token: FormStr = "",
        username: FormStr = "",
        password: FormStr = "",
        role: FormStr = "case_worker",
    ) -> Response:
        current = portal.require(request, admin=True)
        portal.check_csrf(current.csrf, csrf_token)
        try:
            svc.accounts.create_user(
                current.user.realm_id,
                username,
                password,
                is_admin=role == "admin",
                actor=current.user.username,
            )
        except VerificationError as exc:
            return users_page(request, status_code=exc.status, error=str(exc))
        return users_page(request, message=f"User {username.strip()} created.")

    @app.post("/admin/users/{user_id}/{action}", response_class=HTMLResponse)
    def change_user(
        request: Request, user_id: int, action: str, csrf_token: FormStr = ""
    ) -> Response:
        current = portal.require(request, admin=True)
        portal.check_csrf(current.csrf, csrf_token)
        realm, actor = current.user.realm_id, current.user.username
        if action == "unlock":
            svc.accounts.unlock_user(realm, user_id, actor)
        elif action in ("disable", "enable"):
            if user_id == current.user.id:
                return users_page(request, status_code=400, error="You cannot disable yourself.")
            svc.accounts.set_user_disabled(realm, user_id, action == "disable", actor)
        else:
            return users_page(request, status_code=404, error="Unknown action.")
        return RedirectResponse(Portal.base(request) + "/admin/users", status_code=303)

    @app.get("/admin/api-keys", response_class=HTMLResponse)
    def api_keys(request: Request) -> Response:
        return keys_page(request)

    @app.post("/admin/api-keys", response_class=HTMLResponse)
    def create_api_key(request: Request, csrf_token: FormStr = "", name: FormStr = "") -> Response:
        current = portal.require(request, admin=True)
        portal.check_csrf(current.csrf, csrf_token)
        try:
            _, clear = svc.accounts.create_api_key(
                current.user.realm_id, name, current.user.username
            )
        except VerificationError as exc:
            return keys_page(request, status_code=exc.status, error=str(exc))
        return keys_page(request, new_key=clear)

    @app.post("/admin/api-keys/{key_id}/revoke", response_class=HTMLResponse)
    def revoke_api_key(request: Request, key_id: int, csrf_token: FormStr = "") -> Response:
        current = portal.require(request, admin=True)
        portal.check_csrf(current.csrf, csrf_token)
        svc.accounts.revoke_api_key(current.user.realm_id, key_id, current.user.username)
        return RedirectResponse(Portal.base(request) + "/admin/api-keys", status_code=303)

    @app.get("/admin/audit", response_class=HTMLResponse)
    def audit(request: Request) -> Response:
        current = portal.require(request, admin=True)
        events = svc.accounts.audit_log(current.user.realm_id)
        return render(portal, request, "audit.html", {"events": events}, current)
