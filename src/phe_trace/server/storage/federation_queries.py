"""The key server's queries for federation (SPEC FED-11 … FED-14): which local keys a
gateway still lacks, which batches and export files were imported, and the marks of
both."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from .federation_tables import federated_keys, federation_batches, federation_uploads
from .tables import exposures

__all__ = [
    "imported_names",
    "insert_federated_keys",
    "is_imported",
    "mark_imported",
    "mark_uploaded",
    "pending_local_keys",
]


def pending_local_keys(
    conn: Connection, region: str, before: int, oldest: int, limit: int
) -> list[Row[Any]]:
    """Exposure rows of ``region`` that are local (never imported), never uploaded, expired
    by ``before`` (unix seconds) and started at interval ``oldest`` or later; the oldest
    ``limit`` by creation."""
    e = exposures.c
    query = (
        sa.select(exposures)
        .outerjoin(federated_keys, federated_keys.c.key_data == e.key_data)
        .outerjoin(federation_uploads, federation_uploads.c.key_data == e.key_data)
        .where(
            e.region == region,
            federated_keys.c.key_data.is_(None),
            federation_uploads.c.key_data.is_(None),
            (e.rolling_start_interval_number + e.rolling_period) * 600 <= before,
            e.rolling_start_interval_number >= oldest,
        )
        .order_by(e.created_at, e.key_data)
        .limit(limit)
    )
    return list(conn.execute(query).all())


def mark_uploaded(conn: Connection, keys: Iterable[bytes], now: int) -> None:
    """Record that the gateway holds ``keys``."""
    conn.execute(federation_uploads.insert(), [{"key_data": k, "uploaded_at": now} for k in keys])


def imported_names(conn: Connection, source: str, names: Sequence[str] | None = None) -> set[str]:
    """Names imported from ``source``: every one, or those of ``names``."""
    query = sa.select(federation_batches.c.name).where(federation_batches.c.source == source)
    if names is not None:
        query = query.where(federation_batches.c.name.in_(list(names)))
    return set(conn.execute(query).scalars())


def is_imported(conn: Connection, source: str, name: str) -> bool:
    """Whether the batch or file ``name`` of ``source`` was imported."""
    query = sa.select(federation_batches.c.name).where(
        federation_batches.c.source == source, federation_batches.c.name == name
    )
    return conn.execute(query).first() is not None


def insert_federated_keys(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Mark stored keys as imported (origin, visited countries, source, time)."""
    conn.execute(federated_keys.insert(), list(rows))


def mark_imported(conn: Connection, source: str, name: str, now: int, key_count: int) -> None:
    """Record a batch or export file of ``source`` as imported."""
    conn.execute(
        federation_batches.insert().values(
            source=source, name=name, imported_at=now, key_count=key_count
        )
    )
