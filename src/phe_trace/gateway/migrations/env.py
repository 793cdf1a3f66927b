"""Alembic environment of the gateway: runs on the connection handed over by
``gateway.database.migrate`` (:func:`phe_trace.storage.run_environment`)."""

from __future__ import annotations

from phe_trace.gateway.database import VERSION_TABLE
from phe_trace.gateway.tables import metadata
from phe_trace.storage import run_environment

run_environment(metadata, VERSION_TABLE)
