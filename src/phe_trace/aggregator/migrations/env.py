"""Alembic environment of an aggregator: runs on the connection handed over by
``aggregator.storage.migrate`` (:func:`phe_trace.storage.run_environment`)."""

from __future__ import annotations

from phe_trace.aggregator.storage import VERSION_TABLE, metadata
from phe_trace.storage import run_environment

run_environment(metadata, VERSION_TABLE, table_prefix="aggregator_")
