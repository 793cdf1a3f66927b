"""Alembic environment of the verification service.

Run through :func:`phe_trace.verification.database.migrate`, which hands over an open
connection; only ``vf_`` tables are ours, so a database shared with the key server is fine.
"""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy import create_engine

from phe_trace.verification.tables import VERSION_TABLE, metadata


def _include_name(name: str | None, type_: str, parent_names: Any) -> bool:
    if type_ == "table":
        return bool(name and name.startswith("vf_"))
    return True


def _run(connection: Any) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        include_name=_include_name,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Migrate over the connection given in ``config.attributes`` (or the configured URL)."""
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no connection and no sqlalchemy.url given")
    engine = create_engine(url)
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()


run_migrations_online()
