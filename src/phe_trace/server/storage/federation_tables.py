"""The key server's federation tables (SPEC FED-11..FED-14), in the key server's metadata.

``ks_federated_keys`` marks every key that came from elsewhere, with its origin, the
countries the person visited and where it came from; a key without a row there is a
local key, the only kind ever uploaded. ``ks_federation_uploads`` records which local
keys a gateway has (so each is uploaded once) and ``ks_federation_batches`` which
download batches and export files were imported (so each is imported once).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, LargeBinary, String, Table

from .tables import metadata

__all__ = ["federated_keys", "federation_batches", "federation_uploads"]

federated_keys = Table(
    "ks_federated_keys",
    metadata,
    Column("key_data", LargeBinary(16), primary_key=True),
    Column("origin", String(32), nullable=False),
    Column("visited_countries", String(400), nullable=False),
    Column("source", String(64), nullable=False),
    Column("imported_at", BigInteger, nullable=False),
)

federation_uploads = Table(
    "ks_federation_uploads",
    metadata,
    Column("key_data", LargeBinary(16), primary_key=True),
    Column("uploaded_at", BigInteger, nullable=False),
)

federation_batches = Table(
    "ks_federation_batches",
    metadata,
    Column("source", String(64), primary_key=True),
    Column("name", String(512), primary_key=True),
    Column("imported_at", BigInteger, nullable=False),
    Column("key_count", BigInteger, nullable=False),
)
