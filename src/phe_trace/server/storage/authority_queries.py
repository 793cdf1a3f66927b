"""The key server's queries on health authorities and their certificate-signing keys."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from .tables import health_authorities, health_authority_keys

__all__ = [
    "all_authorities",
    "all_authority_keys",
    "authority_id",
    "authority_key_versions",
    "insert_authority",
    "insert_authority_key",
    "update_authority",
]


def authority_id(conn: Connection, issuer: str) -> int | None:
    """Id of the health authority registered under ``issuer``."""
    query = sa.select(health_authorities.c.id).where(health_authorities.c.issuer == issuer)
    row = conn.execute(query).first()
    return None if row is None else row.id


def insert_authority(conn: Connection, issuer: str, created_at: int, **values: Any) -> int:
    """Register a health authority; returns its id."""
    inserted = conn.execute(
        health_authorities.insert().values(issuer=issuer, created_at=created_at, **values)
    ).inserted_primary_key
    assert inserted is not None
    return int(inserted[0])


def update_authority(conn: Connection, ha_id: int, **values: Any) -> None:
    """Change the stored columns of a health authority."""
    conn.execute(
        health_authorities.update().where(health_authorities.c.id == ha_id).values(**values)
    )


def authority_key_versions(conn: Connection, ha_id: int) -> set[str]:
    """Versions (``kid``) of the keys stored for a health authority."""
    query = sa.select(health_authority_keys.c.version).where(
        health_authority_keys.c.health_authority_id == ha_id
    )
    return set(conn.execute(query).scalars())


def insert_authority_key(conn: Connection, **values: Any) -> None:
    """Store one public key of a health authority (the columns of its table)."""
    conn.execute(health_authority_keys.insert().values(**values))


def all_authorities(conn: Connection) -> list[Row[Any]]:
    """Every health authority, by id."""
    return list(conn.execute(sa.select(health_authorities).order_by(health_authorities.c.id)).all())


def all_authority_keys(conn: Connection) -> list[Row[Any]]:
    """Every stored health-authority key, by id."""
    return list(
        conn.execute(sa.select(health_authority_keys).order_by(health_authority_keys.c.id)).all()
    )
