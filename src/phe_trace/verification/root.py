"""Routes at the verification service's root: ``/.well-known/jwks.json``, ``/metrics`` and
``/portal`` (a redirect to ``/portal/``).

They read the service from ``app.state.verification`` — the verification app's own, or
that of the host these routes join (``phe_trace.hosting``).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, PlainTextResponse, RedirectResponse

from .metrics import MEDIA_TYPE, render_metrics
from .service import VerificationService

__all__ = ["JWKS_PATH", "ServiceDep", "router"]

#: Where the certificate signing keys are published (RFC 8414 style well-known path).
JWKS_PATH = "/.well-known/jwks.json"


async def get_service(request: Request) -> VerificationService:
    """The service of the app serving ``request`` (``async``: no worker thread)."""
    service: VerificationService = request.app.state.verification
    return service


ServiceDep = Annotated[VerificationService, Depends(get_service)]

router = APIRouter(include_in_schema=False)


@router.get(JWKS_PATH)
def jwks(service: ServiceDep) -> JSONResponse:
    return JSONResponse(service.signing.jwks(), headers={"Cache-Control": "max-age=300"})


@router.get("/metrics")
def metrics(service: ServiceDep) -> PlainTextResponse:
    return PlainTextResponse(render_metrics(service.codes), media_type=MEDIA_TYPE)


@router.get("/portal")
def portal_root() -> RedirectResponse:
    return RedirectResponse("/portal/", status_code=307)
