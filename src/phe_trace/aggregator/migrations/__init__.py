"""Alembic migrations of an aggregator (version table ``alembic_version_aggregator``)."""
