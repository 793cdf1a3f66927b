"""One process, several roles: the key server and (when installed) the verification service.

Layer 3 (``ARCHITECTURE.md``): composes roles that otherwise meet only on the wire. Roles:

- ``keyserver`` — :func:`phe_trace.server.create_app` (publish, exports, ops);
- ``verification`` — the health authority's verification service and portal
  (``phe_trace.verification``: device API under ``/api/``, portal under ``/portal/``,
  JWKS at ``/.well-known/jwks.json``), mounted by :func:`_mount_verification`;
- ``all`` — both; when the verification package is not importable, the key server alone.
"""

from __future__ import annotations

import importlib.util
from typing import Literal

from fastapi import FastAPI

from phe_trace.clock import FunctionClock
from phe_trace.clock import UnixClock as Clock
from phe_trace.server import create_app as create_keyserver_app
from phe_trace.server.errors import ServerConfigError
from phe_trace.server.settings import ServerSettings, load_settings
from phe_trace.web.errors import install_error_handlers

__all__ = [
    "ROLES",
    "ROLE_ENV",
    "Role",
    "create_app",
    "create_app_from_environment",
    "verification_available",
]

Role = Literal["all", "keyserver", "verification"]
#: Environment variable naming the role for :func:`create_app_from_environment`.
ROLE_ENV = "PHE_TRACE_ROLE"
#: The roles ``phe-trace server run --role`` accepts.
ROLES: tuple[Role, ...] = ("all", "keyserver", "verification")


def verification_available() -> bool:
    """Whether the verification service package is installed in this build."""
    return importlib.util.find_spec("phe_trace.verification") is not None


def _mount_verification(app: FastAPI, settings: ServerSettings, clock: Clock | None) -> bool:
    """Mount the verification service into ``app``; ``False`` if it is not available.

    The verification service registers itself here: it mounts its routes (``/api/``,
    ``/portal/``, ``/.well-known/jwks.json``) and registers itself as a health authority
    of the key server with :func:`phe_trace.server.register_health_authority`
    (``app.state.keyserver.engine``).
    """
    if not verification_available():
        return False
    from phe_trace.verification import VerificationSettings
    from phe_trace.verification import create_app as create_verification_app
    from phe_trace.verification.logs import configure as configure_verification_logging

    vsettings = VerificationSettings().with_default_data_dir(
        settings.data_dir, settings.database_url
    )
    vapp = create_verification_app(vsettings, clock=FunctionClock(clock) if clock else None)
    configure_verification_logging(settings.log_level)  # one level for the whole process
    keyserver = getattr(app.state, "keyserver", None)
    if keyserver is not None:  # role "all": trust this service's JWKS keys, no PEM by hand
        from phe_trace.server import register_health_authority
        from phe_trace.storage import init_lock

        with init_lock(vapp.state.verification.engine):  # workers start at once
            register_health_authority(
                keyserver.engine,
                issuer=vsettings.issuer,
                audience=vsettings.audience,
                name="verification service (this server)",
                public_keys=vapp.state.verification.signing.public_pems(),
                jwks_url=vsettings.jwks_url,
                now=keyserver.now(),
            )
        keyserver.directory.invalidate()
        from phe_trace.verification.metrics import render_metrics

        service = vapp.state.verification  # the key server's /metrics answers for both
        keyserver.metrics.registry.include(lambda: render_metrics(service.codes))
        from phe_trace.server.key_counts import released_key_counts

        # The portal's community statistics read this process's key counts (unless a key
        # server URL is configured for them).
        service.local_key_counts = lambda: [r.to_json() for r in released_key_counts(keyserver)]
    app.state.verification = vapp.state.verification
    # Its routes join the host's router (not a mount at "/", which would answer every
    # path the host does not serve, with its own bare 404 and never a 405): unknown paths
    # and wrong methods get the host's errors, 405 with ``Allow``.
    app.router.routes.extend(vapp.router.routes)
    return True


def create_app(
    settings: ServerSettings,
    *,
    role: Role = "all",
    clock: Clock | None = None,
    background_export: bool = False,
) -> FastAPI:
    """The ASGI app serving ``role`` in this process."""
    if role not in ROLES:
        raise ServerConfigError(f"role must be one of {', '.join(ROLES)}")
    if role == "verification":
        app = FastAPI(title="phe-trace verification service")
        install_error_handlers(app)  # routing errors (404, 405 with Allow) as {error, code}
        if not _mount_verification(app, settings, clock):
            raise ServerConfigError("the verification service is not available in this build")
        return app
    app = create_keyserver_app(settings, clock=clock, background_export=background_export)
    if role == "all":
        _mount_verification(app, settings, clock)
    return app


def create_app_from_environment() -> FastAPI:
    """App factory for several worker processes (``uvicorn --factory``).

    Settings come from ``PHE_TRACE_*`` and the role from ``PHE_TRACE_ROLE`` (default
    ``all``); each worker runs the export loop, whose leases keep workers apart.
    """
    from phe_trace.settings import common_settings

    role = common_settings().role
    if role not in ROLES:
        raise ServerConfigError(f"{ROLE_ENV} must be one of {', '.join(ROLES)}")
    return create_app(load_settings(), role=role, background_export=True)
