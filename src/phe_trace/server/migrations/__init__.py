"""Alembic migrations of the key server (version table ``alembic_version_keyserver``)."""
