"""Differentially private daily counts of real keys, one row per UTC day.

Revision ID: 0004_key_count_releases
Revises: 0003_federation
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_key_count_releases"
down_revision = "0003_federation"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create ks_key_count_releases."""
    op.create_table(
        "ks_key_count_releases",
        sa.Column("day", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("value", sa.BigInteger, nullable=False),
        sa.Column("epsilon", sa.Float, nullable=False),
        sa.Column("sensitivity", sa.Integer, nullable=False),
        sa.Column("released_at", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    """Drop ks_key_count_releases."""
    op.drop_table("ks_key_count_releases")
