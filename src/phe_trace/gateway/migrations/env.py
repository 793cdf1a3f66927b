"""Alembic environment: runs on the engine handed over by ``gateway.database.migrate``."""

from __future__ import annotations

from alembic import context

from phe_trace.gateway.database import VERSION_TABLE
from phe_trace.gateway.tables import metadata

engine = context.config.attributes["engine"]
with engine.begin() as connection:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
