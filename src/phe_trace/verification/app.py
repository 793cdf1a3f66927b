"""The verification service as one ASGI app: ``/api``, ``/portal``, ``/.well-known/jwks.json``,
``/metrics``.

``create_app(settings)`` builds everything (storage migrated, first signing key created)
before returning, so it needs no lifespan hook and can be mounted into the combined
server by :mod:`phe_trace.hosting`.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import JSONResponse, PlainTextResponse, RedirectResponse

from .api import create_device_api
from .clock import Clock
from .metrics import MEDIA_TYPE, render_metrics
from .portal import create_portal
from .service import VerificationService
from .settings import VerificationSettings

__all__ = ["JWKS_PATH", "create_app"]

#: Where the certificate signing keys are published (RFC 8414 style well-known path).
JWKS_PATH = "/.well-known/jwks.json"


def create_app(
    settings: VerificationSettings | None = None,
    *,
    clock: Clock | None = None,
    service: VerificationService | None = None,
) -> FastAPI:
    """Build the verification service app; ``app.state.service`` is the service object."""
    if service is None:
        service = VerificationService(settings or VerificationSettings(), clock=clock)
    app = FastAPI(
        title="phe-trace verification service", docs_url=None, redoc_url=None, openapi_url=None
    )
    app.state.service = service

    @app.get(JWKS_PATH, include_in_schema=False)
    def jwks() -> JSONResponse:
        return JSONResponse(service.signing.jwks(), headers={"Cache-Control": "max-age=300"})

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> PlainTextResponse:
        return PlainTextResponse(render_metrics(service.codes), media_type=MEDIA_TYPE)

    @app.get("/portal", include_in_schema=False)
    def portal_root() -> RedirectResponse:
        return RedirectResponse("/portal/", status_code=307)

    app.mount("/api", create_device_api(service))
    app.mount("/portal", create_portal(service))
    return app
