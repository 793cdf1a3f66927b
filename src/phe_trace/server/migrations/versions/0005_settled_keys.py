"""Keys rewritten in random order once their created_at window closed (PUB-39).

Revision ID: 0005_settled_keys
Revises: 0004_key_count_releases
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_settled_keys"
down_revision = "0004_key_count_releases"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add ks_exposures.settled (existing keys unsettled: the next export run settles them)."""
    with op.batch_alter_table("ks_exposures") as batch:
        batch.add_column(
            sa.Column("settled", sa.Boolean, nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    """Drop ks_exposures.settled."""
    with op.batch_alter_table("ks_exposures") as batch:
        batch.drop_column("settled")
