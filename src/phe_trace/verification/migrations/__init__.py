"""Alembic migrations of the verification service (table ``alembic_version_verification``)."""
