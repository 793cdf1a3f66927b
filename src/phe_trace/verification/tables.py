"""Storage schema of the verification service: its own SQLAlchemy ``MetaData``.

Tables are prefixed ``vf_`` so the service can share one database with the key server;
Alembic keeps its revision in ``alembic_version_verification``. Times are unix seconds
(``BigInteger``), days are ``Date`` (UTC). What is deliberately absent (SPEC VER-10):
no code or token in clear, no phone number, name or test result detail, no IP address.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

__all__ = [
    "VERSION_TABLE",
    "api_keys",
    "audit_events",
    "codes",
    "daily_stats",
    "metadata",
    "realms",
    "service_flags",
    "sessions",
    "signing_keys",
    "tokens",
    "users",
]

#: Alembic's version table of this service (distinct from the key server's).
VERSION_TABLE = "alembic_version_verification"

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

realms = Table(
    "vf_realms",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(100), nullable=False, unique=True),
    Column("daily_quota", Integer, nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

users = Table(
    "vf_users",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("realm_id", Integer, ForeignKey("vf_realms.id"), nullable=False),
    Column("username", String(100), nullable=False, unique=True),
    Column("password_hash", String(255), nullable=False),
    Column("is_admin", Boolean, nullable=False),
    Column("disabled", Boolean, nullable=False),
    Column("failed_signins", Integer, nullable=False),
    Column("locked_until", BigInteger, nullable=True),
    Column("created_at", BigInteger, nullable=False),
)

api_keys = Table(
    "vf_api_keys",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("realm_id", Integer, ForeignKey("vf_realms.id"), nullable=False),
    Column("name", String(100), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("key_prefix", String(16), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("revoked_at", BigInteger, nullable=True),
)

codes = Table(
    "vf_codes",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("uuid", String(36), nullable=False, unique=True),
    Column("realm_id", Integer, ForeignKey("vf_realms.id"), nullable=False),
    Column("test_type", String(20), nullable=False),
    Column("symptom_date", Date, nullable=True),
    Column("test_date", Date, nullable=True),
    Column("code_hash", String(64), nullable=False, unique=True),
    Column("long_code_hash", String(64), nullable=False, unique=True),
    Column("issued_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("long_expires_at", BigInteger, nullable=False),
    Column("claimed_at", BigInteger, nullable=True),
    Index("ix_vf_codes_realm_issued", "realm_id", "issued_at"),
)

tokens = Table(
    "vf_tokens",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("realm_id", Integer, ForeignKey("vf_realms.id"), nullable=False),
    Column("test_type", String(20), nullable=False),
    Column("symptom_date", Date, nullable=True),
    Column("test_date", Date, nullable=True),
    Column("issued_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("used_at", BigInteger, nullable=True),
    # random reference of the request that used the token (its own claim on a retry)
    Column("used_by", String(32), nullable=True),
)

signing_keys = Table(
    "vf_signing_keys",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("kid", String(64), nullable=False, unique=True),
    Column("sealed_private_key", LargeBinary, nullable=False),
    Column("active", Boolean, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("retired_at", BigInteger, nullable=True),
)

audit_events = Table(
    "vf_audit_events",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("realm_id", Integer, ForeignKey("vf_realms.id"), nullable=True),
    Column("actor", String(100), nullable=False),
    Column("action", String(50), nullable=False),
    Column("detail", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Index("ix_vf_audit_realm_created", "realm_id", "created_at"),
)

daily_stats = Table(
    "vf_daily_stats",
    metadata,
    Column("realm_id", Integer, ForeignKey("vf_realms.id"), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("codes_issued", Integer, nullable=False),
    Column("codes_claimed", Integer, nullable=False),
    Column("codes_invalid", Integer, nullable=False),
    Column("tokens_claimed", Integer, nullable=False),
)

sessions = Table(
    "vf_sessions",
    metadata,
    Column("session_hash", String(64), primary_key=True),
    Column("user_id", Integer, ForeignKey("vf_users.id"), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
)

service_flags = Table(
    "vf_service_flags",
    metadata,
    Column("name", String(50), primary_key=True),
    Column("value", String(200), nullable=False),
)
