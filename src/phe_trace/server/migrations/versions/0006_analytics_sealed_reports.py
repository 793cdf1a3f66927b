"""The sealed aggregate-statistics reports devices upload (AGG-17, AGG-18).

Before this revision the table was made by the ingest router on first use, outside the
key server's migrations. Such a database is taken over as it is: an existing table is
kept with its rows, and its day/metric index added when missing.

Revision ID: 0006_analytics_sealed_reports
Revises: 0005_settled_keys
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_analytics_sealed_reports"
down_revision = "0005_settled_keys"
branch_labels = None
depends_on = None

_TABLE = "analytics_sealed_reports"
_INDEX = "ix_analytics_day_metric"


def upgrade() -> None:
    """Create analytics_sealed_reports (unless the ingest router made it already)."""
    inspector = sa.inspect(op.get_bind())
    if _TABLE not in inspector.get_table_names():
        op.create_table(
            _TABLE,
            sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("report_id", sa.String(32), nullable=False, unique=True),
            sa.Column("day", sa.Integer, nullable=False),
            sa.Column("metric", sa.String(32), nullable=False),
            sa.Column("leader_share", sa.LargeBinary, nullable=False),
            sa.Column("helper_share", sa.LargeBinary, nullable=False),
        )
        indexes: set[str | None] = set()
    else:
        indexes = {i["name"] for i in inspector.get_indexes(_TABLE)}
    if _INDEX not in indexes:
        op.create_index(_INDEX, _TABLE, ["day", "metric", "seq"])


def downgrade() -> None:
    """Drop analytics_sealed_reports."""
    op.drop_table(_TABLE)
