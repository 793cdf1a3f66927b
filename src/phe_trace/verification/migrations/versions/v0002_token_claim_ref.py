"""Tokens: the random reference of the request that used the token.

Written in the same transaction as ``used_at``, so a request whose commit went through
but whose connection dropped before it heard so can recognise its own claim on the retry
(SPEC VER-15) rather than refusing its own token. A random value: it links the token to
nothing.

Revision ID: vf0002
Revises: vf0001
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "vf0002"
down_revision = "vf0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add ``vf_tokens.used_by``."""
    with op.batch_alter_table("vf_tokens") as batch:
        batch.add_column(sa.Column("used_by", sa.String(32), nullable=True))


def downgrade() -> None:
    """Drop ``vf_tokens.used_by``."""
    with op.batch_alter_table("vf_tokens") as batch:
        batch.drop_column("used_by")
