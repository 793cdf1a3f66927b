"""Alembic migrations of the gateway's tables (own version table)."""
