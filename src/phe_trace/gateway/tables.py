"""The gateway's tables (SQLAlchemy Core; created by the Alembic migrations beside them).

What is stored is what SPEC FED-9 lists: member certificates with the operator's
signature, upload batches with their signature (for the audit), the keys with their
payload hash, download batches and callback subscriptions. No client address is stored.
"""

from __future__ import annotations

import sqlalchemy as sa

__all__ = [
    "callback_tasks",
    "callbacks",
    "certificates",
    "download_batches",
    "keys",
    "metadata",
    "upload_batches",
]

metadata = sa.MetaData()

certificates = sa.Table(
    "gw_certificates",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("thumbprint", sa.String(64), nullable=False),
    sa.Column("country", sa.String(2), nullable=False),
    sa.Column("type", sa.String(16), nullable=False),
    sa.Column("revoked", sa.Boolean, nullable=False, default=False),
    sa.Column("pem", sa.Text, nullable=False),
    sa.Column("operator_signature", sa.Text, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.UniqueConstraint("thumbprint", "type", name="uq_gw_certificates_thumbprint_type"),
)

download_batches = sa.Table(
    "gw_download_batches",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("tag", sa.String(32), nullable=False, unique=True),
    sa.Column("day", sa.String(10), nullable=False, index=True),
    sa.Column("next_tag", sa.String(32), nullable=True),
    sa.Column("created_at", sa.BigInteger, nullable=False),
)

upload_batches = sa.Table(
    "gw_upload_batches",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("batch_tag", sa.String(100), nullable=False, unique=True),
    sa.Column("country", sa.String(2), nullable=False),
    sa.Column("uploader_thumbprint", sa.String(64), nullable=False),
    sa.Column("signing_thumbprint", sa.String(64), nullable=False),
    sa.Column("batch_signature", sa.Text, nullable=False),
    sa.Column("amount", sa.Integer, nullable=False),
    sa.Column("uploaded_at", sa.BigInteger, nullable=False),
    sa.Column(
        "download_batch_id", sa.Integer, sa.ForeignKey("gw_download_batches.id"), nullable=True
    ),
)
sa.Index("ix_gw_upload_batches_pending", upload_batches.c.download_batch_id)

keys = sa.Table(
    "gw_keys",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("payload_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("upload_batch_id", sa.Integer, sa.ForeignKey("gw_upload_batches.id"), nullable=False),
    sa.Column("key_data", sa.LargeBinary(16), nullable=False),
    sa.Column("rolling_start_interval_number", sa.BigInteger, nullable=False),
    sa.Column("rolling_period", sa.Integer, nullable=False),
    sa.Column("transmission_risk_level", sa.Integer, nullable=False),
    sa.Column("visited_countries", sa.String(400), nullable=False),
    sa.Column("origin", sa.String(2), nullable=False),
    sa.Column("report_type", sa.Integer, nullable=False),
    sa.Column("days_since_onset", sa.Integer, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False, index=True),
)
sa.Index("ix_gw_keys_upload_batch", keys.c.upload_batch_id)

callbacks = sa.Table(
    "gw_callbacks",
    metadata,
    sa.Column("country", sa.String(2), primary_key=True),
    sa.Column("callback_id", sa.String(64), primary_key=True),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("failures", sa.Integer, nullable=False, default=0),
)

callback_tasks = sa.Table(
    "gw_callback_tasks",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("country", sa.String(2), nullable=False),
    sa.Column("callback_id", sa.String(64), nullable=False),
    sa.Column("batch_tag", sa.String(32), nullable=False),
    sa.Column("day", sa.String(10), nullable=False),
)
