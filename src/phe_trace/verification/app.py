"""The verification service as one ASGI app: ``/api``, ``/portal``, ``/.well-known/jwks.json``,
``/metrics``.

``create_app(settings)`` builds everything (storage migrated, first signing key created)
before returning, so it needs no lifespan hook and can be mounted into the combined
server by :mod:`phe_trace.hosting`.
"""

from __future__ import annotations

from fastapi import FastAPI

from phe_trace.clock import Clock

from .api import create_device_api
from .logs import configure as configure_logging
from .portal import create_portal
from .root import JWKS_PATH
from .root import router as root_router
from .service import VerificationService
from .settings import VerificationSettings

__all__ = ["JWKS_PATH", "create_app"]


def create_app(
    settings: VerificationSettings | None = None,
    *,
    clock: Clock | None = None,
    service: VerificationService | None = None,
) -> FastAPI:
    """Build the verification service app; ``app.state.verification`` is the service object."""
    configure_logging()  # JSON lines on stderr (VER-17); the host may set another level
    if service is None:
        service = VerificationService(settings or VerificationSettings(), clock=clock)
    app = FastAPI(
        title="phe-trace verification service", docs_url=None, redoc_url=None, openapi_url=None
    )
    app.state.verification = service
    app.include_router(root_router)
    app.mount("/api", create_device_api(service))
    app.mount("/portal", create_portal(service))
    return app
