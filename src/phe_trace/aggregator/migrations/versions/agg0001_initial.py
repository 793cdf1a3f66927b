"""An aggregator's tables: opened shares, releases, withheld pairs, fetch cursors.

Before its migrations, an aggregator created its tables at start-up, without a version
table. Such a database is taken over as it is: a table already there is kept, and what it
lacks of this revision is added (the (day, metric, status, report_id) index, which also
replaces the older (day, metric, status) one).

Revision ID: agg0001_initial
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.schema import SchemaItem

revision = "agg0001_initial"
down_revision = None
branch_labels = None
depends_on = None

_INDEX = "ix_aggregator_day_metric_status_report"
_OLD_INDEX = "ix_aggregator_day_metric_status"


def _tables() -> list[tuple[str, list[SchemaItem]]]:
    return [
        (
            "aggregator_shares",
            [
                sa.Column("report_id", sa.String(32), primary_key=True),
                sa.Column("day", sa.Integer, nullable=False),
                sa.Column("metric", sa.String(32), nullable=False),
                sa.Column("nonce", sa.LargeBinary(16), nullable=False),
                sa.Column("public_share", sa.LargeBinary, nullable=False),
                sa.Column("input_share", sa.LargeBinary, nullable=False),
                sa.Column("status", sa.Integer, nullable=False),
                sa.Column("out_share", sa.LargeBinary, nullable=True),
                sa.UniqueConstraint("day", "metric", "nonce", name="uq_aggregator_nonce"),
            ],
        ),
        (
            "aggregator_releases",
            [
                sa.Column("day", sa.Integer, primary_key=True, autoincrement=False),
                sa.Column("metric", sa.String(32), primary_key=True),
                sa.Column("report_count", sa.Integer, nullable=False),
                sa.Column("epsilon", sa.Float, nullable=False),
                sa.Column("values_json", sa.Text, nullable=True),
            ],
        ),
        (
            "aggregator_withheld",
            [
                sa.Column("day", sa.Integer, primary_key=True, autoincrement=False),
                sa.Column("metric", sa.String(32), primary_key=True),
                sa.Column("min_batch_size", sa.Integer, nullable=False),
            ],
        ),
        (
            "aggregator_fetch_cursors",
            [
                sa.Column("day", sa.Integer, primary_key=True, autoincrement=False),
                sa.Column("metric", sa.String(32), primary_key=True),
                sa.Column("after", sa.Integer, nullable=False),
            ],
        ),
    ]


def upgrade() -> None:
    """Create each table not there yet; give aggregator_shares its range-scan index."""
    inspector = sa.inspect(op.get_bind())
    existing = set(inspector.get_table_names())
    for name, items in _tables():
        if name not in existing:
            op.create_table(name, *items)
    indexes = {i["name"] for i in inspector.get_indexes("aggregator_shares")}
    if _OLD_INDEX in indexes:
        op.drop_index(_OLD_INDEX, table_name="aggregator_shares")
    if _INDEX not in indexes:
        op.create_index(_INDEX, "aggregator_shares", ["day", "metric", "status", "report_id"])


def downgrade() -> None:
    """Drop every aggregator table."""
    for name, _ in reversed(_tables()):
        op.drop_table(name)
