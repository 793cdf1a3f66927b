"""Alembic environment of the key server: runs on the connection handed over by
``storage.database.migrate`` (:func:`phe_trace.storage.run_environment`)."""

from __future__ import annotations

from phe_trace.server.storage.database import VERSION_TABLE
from phe_trace.server.storage.tables import metadata
from phe_trace.storage import run_environment

run_environment(metadata, VERSION_TABLE)
