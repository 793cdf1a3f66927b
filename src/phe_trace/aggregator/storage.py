"""An aggregator's own database: its opened shares, outcomes and releases.

Only this aggregator's share of each report is stored (never the peer's), with the
server's random report id, day, metric and the report nonce (replay check). Releases
hold what was published (leader) or that an aggregate share left (helper), so no
(day, metric) is ever released twice. The leader also notes each (day, metric) it
collected but withheld below the minimum batch (the batch it needed, never how many
reports it had), so a reader sees "not released" instead of a silent gap.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

__all__ = [
    "ACCEPTED",
    "PENDING",
    "REJECTED",
    "create_engine_for",
    "releases",
    "shares",
    "withheld",
]

PENDING, ACCEPTED, REJECTED = 0, 1, 2

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


def _sqlite_wal(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


def create_engine_for(url: str) -> Engine:
    """An engine for ``url`` with the tables created (psycopg 3 for PostgreSQL).

    A SQLite file is put in write-ahead-log mode: one sync per commit instead of the
    rollback journal's several, and readers do not block the writer.
    """
    if url.startswith("postgresql://"):
        url = url.replace("postgresql://", "postgresql+psycopg://", 1)
    engine = sa.create_engine(url)
    if engine.dialect.name == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_wal)
    metadata.create_all(engine, checkfirst=True)
    # create_all skips the indexes of a table that already exists: a database made by an
    # earlier version gets the ones added since.
    for table in metadata.sorted_tables:
        for index in table.indexes:
            index.create(engine, checkfirst=True)
    return engine
