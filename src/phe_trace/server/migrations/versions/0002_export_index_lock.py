"""Export index lock: one row per region, locked while its index.txt is rewritten.

Revision ID: 0002_export_index_lock
Revises: 0001_keyserver_initial
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_export_index_lock"
down_revision = "0001_keyserver_initial"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create ks_export_indexes."""
    op.create_table(
        "ks_export_indexes",
        sa.Column("region", sa.String(32), primary_key=True),
        sa.Column("rewritten_at", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    """Drop ks_export_indexes."""
    op.drop_table("ks_export_indexes")
