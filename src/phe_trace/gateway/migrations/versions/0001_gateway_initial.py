"""The gateway's tables: certificates, upload and download batches, keys, callbacks.

Revision ID: 0001_gateway_initial
Revises:
"""

from __future__ import annotations

from alembic import op

from phe_trace.gateway import tables

revision = "0001_gateway_initial"
down_revision = None
branch_labels = None
depends_on = None

_ORDER = (
    tables.certificates,
    tables.download_batches,
    tables.upload_batches,
    tables.keys,
    tables.callbacks,
    tables.callback_tasks,
)


def upgrade() -> None:
    """Create every gateway table with its indexes."""
    bind = op.get_bind()
    for table in _ORDER:
        table.create(bind)


def downgrade() -> None:
    """Drop every gateway table."""
    bind = op.get_bind()
    for table in reversed(_ORDER):
        table.drop(bind)
