"""Alembic environment of the verification service.

Run through :func:`phe_trace.verification.database.migrate`, which hands over an open
connection; only ``vf_`` tables are ours, so a database shared with the key server is fine.
"""

from __future__ import annotations

from phe_trace.storage import run_environment
from phe_trace.verification.tables import VERSION_TABLE, metadata

run_environment(metadata, VERSION_TABLE, table_prefix="vf_")
