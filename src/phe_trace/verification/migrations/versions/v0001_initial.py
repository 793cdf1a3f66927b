"""Initial schema of the verification service.

Revision ID: vf0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "vf0001"
down_revision = None
branch_labels = ("verification",)
depends_on = None


def upgrade() -> None:
    """Create every ``vf_`` table."""
    op.create_table(
        "vf_realms",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("daily_quota", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_vf_realms"),
        sa.UniqueConstraint("name", name="uq_vf_realms_name"),
    )
    op.create_table(
        "vf_users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("realm_id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(100), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("is_admin", sa.Boolean(), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("failed_signins", sa.Integer(), nullable=False),
        sa.Column("locked_until", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_vf_users"),
        sa.ForeignKeyConstraint(
            ["realm_id"], ["vf_realms.id"], name="fk_vf_users_realm_id_vf_realms"
        ),
        sa.UniqueConstraint("username", name="uq_vf_users_username"),
    )
    op.create_table(
        "vf_api_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("realm_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("key_prefix", sa.String(16), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("revoked_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_vf_api_keys"),
        sa.ForeignKeyConstraint(
            ["realm_id"], ["vf_realms.id"], name="fk_vf_api_keys_realm_id_vf_realms"
        ),
        sa.UniqueConstraint("key_hash", name="uq_vf_api_keys_key_hash"),
    )
    op.create_table(
        "vf_codes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uuid", sa.String(36), nullable=False),
        sa.Column("realm_id", sa.Integer(), nullable=False),
        sa.Column("test_type", sa.String(20), nullable=False),
        sa.Column("symptom_date", sa.Date(), nullable=True),
        sa.Column("test_date", sa.Date(), nullable=True),
        sa.Column("code_hash", sa.String(64), nullable=False),
        sa.Column("long_code_hash", sa.String(64), nullable=False),
        sa.Column("issued_at", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.Column("long_expires_at", sa.BigInteger(), nullable=False),
        sa.Column("claimed_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_vf_codes"),
        sa.ForeignKeyConstraint(
            ["realm_id"], ["vf_realms.id"], name="fk_vf_codes_realm_id_vf_realms"
        ),
        sa.UniqueConstraint("uuid", name="uq_vf_codes_uuid"),
        sa.UniqueConstraint("code_hash", name="uq_vf_codes_code_hash"),
        sa.UniqueConstraint("long_code_hash", name="uq_vf_codes_long_code_hash"),
    )
    op.create_index("ix_vf_codes_realm_issued", "vf_codes", ["realm_id", "issued_at"])
    op.create_table(
        "vf_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("realm_id", sa.Integer(), nullable=False),
        sa.Column("test_type", sa.String(20), nullable=False),
        sa.Column("symptom_date", sa.Date(), nullable=True),
        sa.Column("test_date", sa.Date(), nullable=True),
        sa.Column("issued_at", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.Column("used_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_vf_tokens"),
        sa.ForeignKeyConstraint(
            ["realm_id"], ["vf_realms.id"], name="fk_vf_tokens_realm_id_vf_realms"
        ),
        sa.UniqueConstraint("token_hash", name="uq_vf_tokens_token_hash"),
    )
    op.create_table(
        "vf_signing_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kid", sa.String(64), nullable=False),
        sa.Column("sealed_private_key", sa.LargeBinary(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("retired_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_vf_signing_keys"),
        sa.UniqueConstraint("kid", name="uq_vf_signing_keys_kid"),
    )
    op.create_table(
        "vf_audit_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("realm_id", sa.Integer(), nullable=True),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("action", sa.String(50), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_vf_audit_events"),
        sa.ForeignKeyConstraint(
            ["realm_id"], ["vf_realms.id"], name="fk_vf_audit_events_realm_id_vf_realms"
        ),
    )
    op.create_index("ix_vf_audit_realm_created", "vf_audit_events", ["realm_id", "created_at"])
    op.create_table(
        "vf_daily_stats",
        sa.Column("realm_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("codes_issued", sa.Integer(), nullable=False),
        sa.Column("codes_claimed", sa.Integer(), nullable=False),
        sa.Column("codes_invalid", sa.Integer(), nullable=False),
        sa.Column("tokens_claimed", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("realm_id", "day", name="pk_vf_daily_stats"),
        sa.ForeignKeyConstraint(
            ["realm_id"], ["vf_realms.id"], name="fk_vf_daily_stats_realm_id_vf_realms"
        ),
    )
    op.create_table(
        "vf_sessions",
        sa.Column("session_hash", sa.String(64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("session_hash", name="pk_vf_sessions"),
        sa.ForeignKeyConstraint(
            ["user_id"], ["vf_users.id"], name="fk_vf_sessions_user_id_vf_users"
        ),
    )
    op.create_table(
        "vf_service_flags",
        sa.Column("name", sa.String(50), nullable=False),
        sa.Column("value", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_vf_service_flags"),
    )


def downgrade() -> None:
    """Drop every ``vf_`` table."""
    for index, table in (
        ("ix_vf_audit_realm_created", "vf_audit_events"),
        ("ix_vf_codes_realm_issued", "vf_codes"),
    ):
        op.drop_index(index, table_name=table)
    for table in (
        "vf_service_flags",
        "vf_sessions",
        "vf_daily_stats",
        "vf_audit_events",
        "vf_signing_keys",
        "vf_tokens",
        "vf_codes",
        "vf_api_keys",
        "vf_users",
        "vf_realms",
    ):
        op.drop_table(table)
