"""Community statistics (SPEC AGG-37): what the aggregators and the key server released,
as a page (``/statistics``), CSV and JSON, for any signed-in user (``community.py``)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from . import community
from .render import render
from .session import Portal, PortalDep

__all__ = ["router"]

router = APIRouter()


def _community(portal: Portal) -> community.Community:
    svc = portal.service
    return community.gather(
        svc.settings.statistics_leader_url,
        svc.settings.statistics_keyserver_url,
        local_key_counts=svc.local_key_counts,
    )


@router.get("/statistics", response_class=HTMLResponse)
def community_page(request: Request, portal: PortalDep) -> Response:
    current = portal.require(request)
    data = _community(portal)
    ctx = {
        "community": data,
        "days": data.days(),
        "note": community.noise_note(data),
    }
    return render(portal, request, "community.html", ctx, current)


@router.get("/statistics.csv")
def community_csv(request: Request, portal: PortalDep) -> Response:
    portal.require(request)
    return Response(
        community.to_csv(_community(portal).rows),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="community-statistics.csv"'},
    )


@router.get("/statistics.json")
def community_json(request: Request, portal: PortalDep) -> Response:
    portal.require(request)
    generated = portal.service.clock.now().strftime("%Y-%m-%dT%H:%M:%SZ")
    return JSONResponse(
        community.to_json(_community(portal), generated),
        headers={"Content-Disposition": 'attachment; filename="community-statistics.json"'},
    )
