"""Codes of the case worker's realm (SPEC VER-1, VER-14): issue one (``/codes/new``,
``POST /codes``), the recent ones by status (``/codes``), statistics per day (``/stats``)."""

from __future__ import annotations

from datetime import date
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from markupsafe import Markup

from ..errors import InvalidDateError, VerificationDatabaseUnavailableError, VerificationError
from ..models import PORTAL_TEST_TYPES, CodeStatus
from .chart import stats_svg
from .render import FormStr, render
from .session import Portal, PortalDep, SignedIn

__all__ = ["router"]

router = APIRouter()


def _parse_date(name: str, value: str) -> date | None:
    value = value.strip()
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidDateError(f"{name} {value!r} is not a date (YYYY-MM-DD)") from None


def _issue_form(portal: Portal, current: SignedIn, **extra: Any) -> dict[str, Any]:
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


@router.get("/codes/new", response_class=HTMLResponse)
def issue_form(request: Request, portal: PortalDep) -> Response:
    current = portal.require(request)
    return render(portal, request, "issue.html", _issue_form(portal, current), current)


@router.post("/codes", response_class=HTMLResponse)
def issue(
    request: Request,
    portal: PortalDep,
    csrf_token: FormStr = "",
    test_type: FormStr = "",
    test_date: FormStr = "",
    symptom_date: FormStr = "",
) -> Response:
    current = portal.require(request)
    portal.check_csrf(current.csrf, csrf_token)
    try:
        issued = portal.service.issue_code(
            current.user,
            test_type,
            _parse_date("test date", test_date),
            _parse_date("symptom date", symptom_date),
        )
    except VerificationDatabaseUnavailableError:
        raise  # the unavailable page: the form would need the database too
    except VerificationError as exc:
        ctx = _issue_form(portal, current, error=str(exc), error_code=exc.code)
        return render(portal, request, "issue.html", ctx, current, status_code=exc.status)
    return render(portal, request, "issued.html", {"issued": issued}, current)


@router.get("/codes", response_class=HTMLResponse)
def recent_codes(request: Request, portal: PortalDep) -> Response:
    current = portal.require(request)
    svc = portal.service
    recent = svc.codes.list_recent(current.user.realm_id, svc.clock.now(), limit=100)
    groups = {s.value: [c for c in recent if c.status is s] for s in CodeStatus}
    return render(portal, request, "codes.html", {"groups": groups}, current)


@router.get("/stats", response_class=HTMLResponse)
def stats(request: Request, portal: PortalDep) -> Response:
    current = portal.require(request)
    svc = portal.service
    days = svc.codes.stats(current.user.realm_id, svc.clock.now(), days=30)
    ctx = {"days": list(reversed(days)), "chart": Markup(stats_svg(days))}  # noqa: S704
    return render(portal, request, "stats.html", ctx, current)
