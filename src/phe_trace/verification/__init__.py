"""The health authority's verification service and case-worker portal.

A case worker issues a one-time code in the portal; the person's device trades it for a
single-use token (``POST /api/verify``), then trades the token and an HMAC of its keys for
an ES256 certificate (``POST /api/certificate``) that the key server checks against the
keys published at ``/.well-known/jwks.json``. ``protocol_spec/SPEC.md`` §13.

Layer 2: imports ``protocol`` and ``crypto`` only; meets the key server on the wire.
"""

from typing import TYPE_CHECKING, Any

from phe_trace.clock import Clock, ManualClock, SystemClock

from .errors import VerificationError
from .service import VerificationService
from .settings import VerificationSettings

__all__ = [
    "JWKS_PATH",
    "Clock",
    "ManualClock",
    "SystemClock",
    "VerificationError",
    "VerificationService",
    "VerificationSettings",
    "create_app",
]

if TYPE_CHECKING:
    from .app import JWKS_PATH, create_app


def __getattr__(name: str) -> Any:
    """Import the web application on first use: the admin commands need only the
    service, not the web framework."""
    if name in ("JWKS_PATH", "create_app"):
        from . import app

        return getattr(app, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
