"""The key server's tables (prefix ``ks_`` so other services may share the database).

What is stored is the minimum GAEN needs (SPEC PUB-10): the keys and their protocol
fields, an hour-truncated creation time, the health authority that vouched for them —
no IP address, user agent, request id or certificate.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy import false as sa_false

__all__ = [
    "analytics_sealed_reports",
    "export_batches",
    "export_files",
    "export_indexes",
    "export_padding",
    "exposures",
    "health_authorities",
    "health_authority_keys",
    "key_count_releases",
    "metadata",
    "used_certificates",
]

metadata = MetaData()

health_authorities = Table(
    "ks_health_authorities",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("issuer", String(512), nullable=False, unique=True),
    Column("audience", String(512), nullable=False),
    Column("name", String(256), nullable=False),
    Column("jwks_uri", String(2048), nullable=True),
    Column("created_at", BigInteger, nullable=False),
)

health_authority_keys = Table(
    "ks_health_authority_keys",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "health_authority_id",
        Integer,
        ForeignKey("ks_health_authorities.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("version", String(256), nullable=False),
    Column("public_key_pem", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("revoked_at", BigInteger, nullable=True),
    UniqueConstraint("health_authority_id", "version", name="uq_ks_ha_key_version"),
)

exposures = Table(
    "ks_exposures",
    metadata,
    Column("key_data", LargeBinary(16), primary_key=True),
    Column("region", String(32), nullable=False),
    Column("traveler", Boolean, nullable=False, default=False),
    Column("rolling_start_interval_number", BigInteger, nullable=False),
    Column("rolling_period", Integer, nullable=False),
    Column("transmission_risk_level", Integer, nullable=False),
    Column("report_type", Integer, nullable=False),
    Column("days_since_onset_of_symptoms", Integer, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("health_authority_id", Integer, nullable=True),
    Column("revised_report_type", Integer, nullable=True),
    Column("revised_transmission_risk_level", Integer, nullable=True),
    Column("revised_days_since_onset_of_symptoms", Integer, nullable=True),
    Column("revised_at", BigInteger, nullable=True),
    # True once the row was rewritten in random order with the rest of its closed
    # created_at window (PUB-39): neither rowid nor heap position then follows uploads.
    Column("settled", Boolean, nullable=False, default=False, server_default=sa_false()),
    Index("ix_ks_exposures_created_at", "created_at"),
    Index("ix_ks_exposures_revised_at", "revised_at"),
)

used_certificates = Table(
    "ks_used_certificates",
    metadata,
    Column("digest", LargeBinary(32), primary_key=True),
    Column("expires_at", BigInteger, nullable=False),
    Index("ix_ks_used_certificates_expires_at", "expires_at"),
)

export_batches = Table(
    "ks_export_batches",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("region", String(32), nullable=False),
    Column("start_timestamp", BigInteger, nullable=False),
    Column("end_timestamp", BigInteger, nullable=False),
    Column("status", String(16), nullable=False),
    Column("lease_owner", String(64), nullable=True),
    Column("lease_expires_at", BigInteger, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    UniqueConstraint("region", "start_timestamp", "end_timestamp", name="uq_ks_batch_window"),
)

export_files = Table(
    "ks_export_files",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "batch_id", Integer, ForeignKey("ks_export_batches.id", ondelete="CASCADE"), nullable=False
    ),
    Column("region", String(32), nullable=False),
    Column("name", String(512), nullable=False, unique=True),
    Column("batch_num", Integer, nullable=False),
    Column("batch_size", Integer, nullable=False),
    Column("key_count", Integer, nullable=False),
    Column("end_timestamp", BigInteger, nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

export_padding = Table(
    "ks_export_padding",
    metadata,
    Column(
        "batch_id",
        Integer,
        ForeignKey("ks_export_batches.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("key_data", LargeBinary(16), primary_key=True),
    Column("rolling_start_interval_number", BigInteger, nullable=False),
    Column("rolling_period", Integer, nullable=False),
    Column("transmission_risk_level", Integer, nullable=False),
    Column("report_type", Integer, nullable=False),
    Column("days_since_onset_of_symptoms", Integer, nullable=True),
)

export_indexes = Table(
    "ks_export_indexes",
    metadata,
    Column("region", String(32), primary_key=True),
    Column("rewritten_at", BigInteger, nullable=False),
)

#: The key server's differentially private count of real keys per UTC day (SPEC AGG-38):
#: one row per day, written once; the true count is never stored.
key_count_releases = Table(
    "ks_key_count_releases",
    metadata,
    Column("day", Integer, primary_key=True, autoincrement=False),
    Column("value", BigInteger, nullable=False),
    Column("epsilon", Float, nullable=False),
    Column("sensitivity", Integer, nullable=False),
    Column("released_at", BigInteger, nullable=False),
)

#: Sealed aggregate-statistics reports (SPEC AGG-18): per report a random id, its UTC day
#: and metric, and two sealed boxes the key server cannot open (one per aggregator);
#: ``seq`` orders each aggregator's paging. Nothing about the device is stored.
analytics_sealed_reports = Table(
    "analytics_sealed_reports",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("report_id", String(32), nullable=False, unique=True),
    Column("day", Integer, nullable=False),
    Column("metric", String(32), nullable=False),
    Column("leader_share", LargeBinary, nullable=False),
    Column("helper_share", LargeBinary, nullable=False),
    Index("ix_analytics_day_metric", "day", "metric", "seq"),
)
