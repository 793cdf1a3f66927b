"""The federation gateway role (SPEC §17.2): a hub where member key servers upload signed
batches of their own keys and download every other member's, wire-compatible with the
EU Federation Gateway Service. ``create_app(settings)`` is the FastAPI application."""

from __future__ import annotations

from .app import create_app
from .settings import GatewaySettings

__all__ = ["GatewaySettings", "create_app"]
