"""Federation: imported keys' origin, uploaded local keys, imported batches.

Revision ID: 0003_federation
Revises: 0002_export_index_lock
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_federation"
down_revision = "0002_export_index_lock"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create ks_federated_keys, ks_federation_uploads and ks_federation_batches."""
    op.create_table(
        "ks_federated_keys",
        sa.Column("key_data", sa.LargeBinary(16), primary_key=True),
        sa.Column("origin", sa.String(32), nullable=False),
        sa.Column("visited_countries", sa.String(400), nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("imported_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "ks_federation_uploads",
        sa.Column("key_data", sa.LargeBinary(16), primary_key=True),
        sa.Column("uploaded_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "ks_federation_batches",
        sa.Column("source", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(512), primary_key=True),
        sa.Column("imported_at", sa.BigInteger, nullable=False),
        sa.Column("key_count", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    """Drop the federation tables."""
    op.drop_table("ks_federation_batches")
    op.drop_table("ks_federation_uploads")
    op.drop_table("ks_federated_keys")
