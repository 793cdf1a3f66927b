"""The diagnosis-key server: GAEN-compatible publish API, signed exports, operations.

``protocol_spec/SPEC.md`` §11 (publish API, storage, exports) and §12 (file format).
Build the app with :func:`create_app` (nothing happens at import time)::

    from phe_trace.server import create_app, load_settings, register_health_authority

    settings = load_settings(data_dir="/var/lib/phe-trace")
    app = create_app(settings)                      # or create_app(context=ctx)
    register_health_authority(app.state.keyserver.engine, issuer=..., audience=...,
                              name=..., jwks_url="https://ha.example/.well-known/jwks.json")

and run exports in-process with a clock of your own: ``run_export(ctx, now)``.
"""

from .app import create_app
from .authorities import (
    HealthAuthority,
    HealthAuthorityKey,
    list_health_authorities,
    register_health_authority,
)
from .context import Clock, ServerContext
from .exporter import ExportReport, RetentionReport, rewrite_index, run_export, run_retention
from .settings import ServerSettings, load_settings

__all__ = [
    "Clock",
    "ExportReport",
    "HealthAuthority",
    "HealthAuthorityKey",
    "RetentionReport",
    "ServerContext",
    "ServerSettings",
    "create_app",
    "list_health_authorities",
    "load_settings",
    "register_health_authority",
    "rewrite_index",
    "run_export",
    "run_retention",
]
