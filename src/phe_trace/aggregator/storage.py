"""An aggregator's own database: its opened shares, outcomes and releases.

Only this aggregator's share of each report is stored (never the peer's), with the
server's random report id, day, metric and the report nonce (replay check). Releases
hold what was published (leader) or that an aggregate share left (helper), so no
(day, metric) is ever released twice. The leader also notes each (day, metric) it
collected but withheld below the minimum batch (the batch it needed, never how many
reports it had), so a reader sees "not released" instead of a silent gap.

The tables are made by Alembic migrations (``aggregator/migrations``, version table
``alembic_version_aggregator``) at start-up.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from phe_trace import storage

__all__ = [
    "ACCEPTED",
    "MIGRATIONS_DIR",
    "PENDING",
    "REJECTED",
    "VERSION_TABLE",
    "create_engine_for",
    "cursors",
    "metadata",
    "migrate",
    "releases",
    "shares",
    "withheld",
]

PENDING, ACCEPTED, REJECTED = 0, 1, 2

#: The Alembic version table of an aggregator (its tables are prefixed ``aggregator_``).
VERSION_TABLE = "alembic_version_aggregator"
#: Directory of the aggregator's Alembic scripts.
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

metadata = sa.MetaData()


class _Bytes(sa.LargeBinary):
    """A BLOB / BYTEA column bound as plain ``bytes`` (both SQLite and psycopg take them
    as they are), without a wrapper object per value."""

    def bind_processor(self, dialect: Any) -> None:
        return None


shares = sa.Table(
    "aggregator_shares",
    metadata,
    sa.Column("report_id", sa.String(32), primary_key=True),
    sa.Column("day", sa.Integer, nullable=False),
    sa.Column("metric", sa.String(32), nullable=False),
    sa.Column("nonce", _Bytes(16), nullable=False),
    sa.Column("public_share", _Bytes, nullable=False),
    sa.Column("input_share", _Bytes, nullable=False),
    sa.Column("status", sa.Integer, nullable=False, default=PENDING),
    sa.Column("out_share", _Bytes, nullable=True),
    sa.UniqueConstraint("day", "metric", "nonce", name="uq_aggregator_nonce"),
    sa.Index("ix_aggregator_day_metric_status_report", "day", "metric", "status", "report_id"),
)

releases = sa.Table(
    "aggregator_releases",
    metadata,
    sa.Column("day", sa.Integer, primary_key=True),
    sa.Column("metric", sa.String(32), primary_key=True),
    sa.Column("report_count", sa.Integer, nullable=False),
    sa.Column("epsilon", sa.Float, nullable=False),
    sa.Column("values_json", sa.Text, nullable=True),
)

withheld = sa.Table(
    "aggregator_withheld",
    metadata,
    sa.Column("day", sa.Integer, primary_key=True),
    sa.Column("metric", sa.String(32), primary_key=True),
    sa.Column("min_batch_size", sa.Integer, nullable=False),
)

cursors = sa.Table(
    "aggregator_fetch_cursors",
    metadata,
    sa.Column("day", sa.Integer, primary_key=True),
    sa.Column("metric", sa.String(32), primary_key=True),
    sa.Column("after", sa.Integer, nullable=False),
)


def create_engine_for(url: str) -> Engine:
    """An engine for ``url`` (:func:`phe_trace.storage.create_engine`: SQLite in
    write-ahead-log mode, or PostgreSQL on psycopg 3) with the tables migrated."""
    engine = storage.create_engine(url)
    with storage.init_lock(engine):
        migrate(engine)
    return engine


def migrate(engine: Engine, revision: str = "heads") -> None:
    """Bring the aggregator's tables up to ``revision`` (idempotent). A database made
    before the aggregator had migrations is taken over as it is (revision agg0001)."""
    storage.migrate(engine, MIGRATIONS_DIR, revision)
