"""Key server initial schema: health authorities, exposures, certificates, exports.

Revision ID: 0001_keyserver_initial
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_keyserver_initial"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create every key-server table."""
    op.create_table(
        "ks_health_authorities",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("issuer", sa.String(512), nullable=False, unique=True),
        sa.Column("audience", sa.String(512), nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("jwks_uri", sa.String(2048), nullable=True),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "ks_health_authority_keys",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "health_authority_id",
            sa.Integer,
            sa.ForeignKey("ks_health_authorities.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("version", sa.String(256), nullable=False),
        sa.Column("public_key_pem", sa.Text, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("revoked_at", sa.BigInteger, nullable=True),
        sa.UniqueConstraint("health_authority_id", "version", name="uq_ks_ha_key_version"),
    )
    op.create_table(
        "ks_exposures",
        sa.Column("key_data", sa.LargeBinary(16), primary_key=True),
        sa.Column("region", sa.String(32), nullable=False),
        sa.Column("traveler", sa.Boolean, nullable=False),
        sa.Column("rolling_start_interval_number", sa.BigInteger, nullable=False),
        sa.Column("rolling_period", sa.Integer, nullable=False),
        sa.Column("transmission_risk_level", sa.Integer, nullable=False),
        sa.Column("report_type", sa.Integer, nullable=False),
        sa.Column("days_since_onset_of_symptoms", sa.Integer, nullable=True),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("health_authority_id", sa.Integer, nullable=True),
        sa.Column("revised_report_type", sa.Integer, nullable=True),
        sa.Column("revised_transmission_risk_level", sa.Integer, nullable=True),
        sa.Column("revised_days_since_onset_of_symptoms", sa.Integer, nullable=True),
        sa.Column("revised_at", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_ks_exposures_created_at", "ks_exposures", ["created_at"])
    op.create_index("ix_ks_exposures_revised_at", "ks_exposures", ["revised_at"])
    op.create_table(
        "ks_used_certificates",
        sa.Column("digest", sa.LargeBinary(32), primary_key=True),
        sa.Column("expires_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_ks_used_certificates_expires_at", "ks_used_certificates", ["expires_at"])
    op.create_table(
        "ks_export_batches",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("region", sa.String(32), nullable=False),
        sa.Column("start_timestamp", sa.BigInteger, nullable=False),
        sa.Column("end_timestamp", sa.BigInteger, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("lease_owner", sa.String(64), nullable=True),
        sa.Column("lease_expires_at", sa.BigInteger, nullable=True),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.UniqueConstraint(
            "region", "start_timestamp", "end_timestamp", name="uq_ks_batch_window"
        ),
    )
    op.create_table(
        "ks_export_files",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "batch_id",
            sa.Integer,
            sa.ForeignKey("ks_export_batches.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("region", sa.String(32), nullable=False),
        sa.Column("name", sa.String(512), nullable=False, unique=True),
        sa.Column("batch_num", sa.Integer, nullable=False),
        sa.Column("batch_size", sa.Integer, nullable=False),
        sa.Column("key_count", sa.Integer, nullable=False),
        sa.Column("end_timestamp", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "ks_export_padding",
        sa.Column(
            "batch_id",
            sa.Integer,
            sa.ForeignKey("ks_export_batches.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("key_data", sa.LargeBinary(16), primary_key=True),
        sa.Column("rolling_start_interval_number", sa.BigInteger, nullable=False),
        sa.Column("rolling_period", sa.Integer, nullable=False),
        sa.Column("transmission_risk_level", sa.Integer, nullable=False),
        sa.Column("report_type", sa.Integer, nullable=False),
        sa.Column("days_since_onset_of_symptoms", sa.Integer, nullable=True),
    )


def downgrade() -> None:
    """Drop every key-server table."""
    for table in (
        "ks_export_padding",
        "ks_export_files",
        "ks_export_batches",
        "ks_used_certificates",
        "ks_exposures",
        "ks_health_authority_keys",
        "ks_health_authorities",
    ):
        op.drop_table(table)
