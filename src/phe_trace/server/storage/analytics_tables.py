"""The table of sealed statistics reports the key server holds for the aggregators (§15).

It has a metadata of its own: the table is created where the ingest first opens the
database (:func:`create_analytics_tables`), not by the key server's migrations.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Engine

__all__ = ["create_analytics_tables", "reports_table"]

_metadata = sa.MetaData()
reports_table = sa.Table(
    "analytics_sealed_reports",
    _metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("report_id", sa.String(32), nullable=False, unique=True),
    sa.Column("day", sa.Integer, nullable=False),
    sa.Column("metric", sa.String(32), nullable=False),
    sa.Column("leader_share", sa.LargeBinary, nullable=False),
    sa.Column("helper_share", sa.LargeBinary, nullable=False),
    sa.Index("ix_analytics_day_metric", "day", "metric", "seq"),
)


def create_analytics_tables(engine: Engine) -> None:
    """Create the sealed-report table unless it exists."""
    _metadata.create_all(engine, checkfirst=True)
