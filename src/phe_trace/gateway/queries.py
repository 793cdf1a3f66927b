"""The gateway's statements on its database (the tables of :mod:`.tables`).

Each function runs on the caller's connection, inside the caller's transaction; what is
stored when (trust checks, the order of deliveries, the failure limit) is decided in
:mod:`.service`, :mod:`.trust` and :mod:`.callbacks`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .tables import (
    callback_tasks,
    callbacks,
    certificates,
    download_batches,
    keys,
    upload_batches,
)

__all__ = [
    "add_download_batch",
    "all_callbacks",
    "callbacks_of",
    "certificate",
    "delete_callback",
    "delete_keys_before",
    "delete_task",
    "download_batch_by_tag",
    "download_keys",
    "first_download_batch",
    "insert_upload",
    "known_payload_hashes",
    "pending_tasks",
    "pending_uploads",
    "replace_callback",
    "replace_certificate",
    "reset_failures",
    "set_failures",
    "upload_tag_used",
    "uploads_of",
]


# --- certificates ---------------------------------------------------------------------


def replace_certificate(conn: Connection, row: dict[str, Any]) -> None:
    """Store a member certificate, replacing one of the same thumbprint and type."""
    conn.execute(
        certificates.delete().where(
            certificates.c.thumbprint == row["thumbprint"],
            certificates.c.type == row["type"],
        )
    )
    conn.execute(certificates.insert().values(**row))


def certificate(conn: Connection, thumbprint: str, cert_type: str) -> Any:
    """The unrevoked certificate row (a mapping) of this thumbprint and type, or None."""
    query = sa.select(certificates).where(
        certificates.c.thumbprint == thumbprint,
        certificates.c.type == cert_type,
        certificates.c.revoked.is_(False),
    )
    return conn.execute(query).mappings().first()


# --- callbacks ------------------------------------------------------------------------


def callbacks_of(conn: Connection, country: str) -> list[Any]:
    """(callback_id, url) of the country's subscriptions, by id."""
    return list(
        conn.execute(
            sa.select(callbacks.c.callback_id, callbacks.c.url)
            .where(callbacks.c.country == country)
            .order_by(callbacks.c.callback_id)
        ).all()
    )


def replace_callback(conn: Connection, country: str, callback_id: str, url: str) -> None:
    """Create or replace a subscription, with no failures counted."""
    conn.execute(
        callbacks.delete().where(
            callbacks.c.country == country, callbacks.c.callback_id == callback_id
        )
    )
    conn.execute(
        callbacks.insert().values(country=country, callback_id=callback_id, url=url, failures=0)
    )


def delete_callback(conn: Connection, country: str, callback_id: str) -> int:
    """Delete a subscription and its pending notifications; subscriptions deleted."""
    gone = conn.execute(
        callbacks.delete().where(
            callbacks.c.country == country, callbacks.c.callback_id == callback_id
        )
    ).rowcount
    conn.execute(
        callback_tasks.delete().where(
            callback_tasks.c.country == country, callback_tasks.c.callback_id == callback_id
        )
    )
    return int(gone)


def all_callbacks(conn: Connection) -> list[Any]:
    """Every subscription row."""
    return list(conn.execute(sa.select(callbacks)).all())


def pending_tasks(conn: Connection, country: str, callback_id: str) -> list[Any]:
    """The subscription's pending notifications, oldest first."""
    return list(
        conn.execute(
            sa.select(callback_tasks)
            .where(
                callback_tasks.c.country == country,
                callback_tasks.c.callback_id == callback_id,
            )
            .order_by(callback_tasks.c.id)
        ).all()
    )


def delete_task(conn: Connection, task_id: int) -> None:
    """Delete one delivered notification."""
    conn.execute(callback_tasks.delete().where(callback_tasks.c.id == task_id))


def reset_failures(conn: Connection, country: str, callback_id: str) -> None:
    """Set a subscription's failure count back to 0."""
    conn.execute(
        callbacks.update()
        .where(callbacks.c.country == country)
        .where(callbacks.c.callback_id == callback_id)
        .values(failures=0)
    )


def set_failures(conn: Connection, country: str, callback_id: str, failures: int) -> None:
    """Set a subscription's failure count."""
    where = (callbacks.c.country == country, callbacks.c.callback_id == callback_id)
    conn.execute(callbacks.update().where(*where).values(failures=failures))


# --- uploads, download batches, keys --------------------------------------------------


def known_payload_hashes(conn: Connection, hashes: Sequence[str]) -> set[str]:
    """Those of ``hashes`` whose key is stored (asked 500 at a time)."""
    found: set[str] = set()
    for start in range(0, len(hashes), 500):
        chunk = hashes[start : start + 500]
        query = sa.select(keys.c.payload_hash).where(keys.c.payload_hash.in_(chunk))
        found.update(conn.execute(query).scalars())
    return found


def upload_tag_used(conn: Connection, batch_tag: str) -> bool:
    """Whether an upload batch with this ``batchTag`` is stored."""
    query = sa.select(upload_batches.c.id).where(upload_batches.c.batch_tag == batch_tag)
    return conn.execute(query).first() is not None


def insert_upload(conn: Connection, row: dict[str, Any], key_rows: Any) -> None:
    """Store an upload batch and its keys; ``key_rows(batch_id)`` gives the key rows.

    IntegrityError if its tag or one of its keys is stored already.
    """
    batch_id = conn.execute(
        upload_batches.insert().values(**row).returning(upload_batches.c.id)
    ).scalar_one()
    conn.execute(keys.insert(), key_rows(batch_id))


def pending_uploads(conn: Connection) -> list[Any]:
    """(id, amount) of the upload batches in no download batch yet, in arrival order."""
    return list(
        conn.execute(
            sa.select(upload_batches.c.id, upload_batches.c.amount)
            .where(upload_batches.c.download_batch_id.is_(None))
            .order_by(upload_batches.c.id)
        ).all()
    )


def add_download_batch(conn: Connection, day: str, group: list[int], now: int) -> str:
    """A new download batch of ``day`` holding the upload batches ``group``: tagged with
    the day and its number, linked from the day's previous last batch, with a
    notification queued for every subscription; its tag."""
    count = conn.execute(
        sa.select(sa.func.count())
        .select_from(download_batches)
        .where(download_batches.c.day == day)
    ).scalar_one()
    tag = f"{day.replace('-', '')}-{count + 1}"
    batch_id = conn.execute(
        download_batches.insert()
        .values(tag=tag, day=day, next_tag=None, created_at=now)
        .returning(download_batches.c.id)
    ).scalar_one()
    conn.execute(
        download_batches.update()
        .where(download_batches.c.day == day, download_batches.c.next_tag.is_(None))
        .where(download_batches.c.id != batch_id)
        .values(next_tag=tag)
    )
    conn.execute(
        upload_batches.update()
        .where(upload_batches.c.id.in_(group))
        .values(download_batch_id=batch_id)
    )
    subscribers = conn.execute(sa.select(callbacks.c.country, callbacks.c.callback_id)).all()
    if subscribers:
        conn.execute(
            callback_tasks.insert(),
            [dict(country=c, callback_id=i, batch_tag=tag, day=day) for c, i in subscribers],
        )
    return tag


def first_download_batch(conn: Connection, day: str) -> Any:
    """The first download batch of ``day``, or None."""
    return conn.execute(
        sa.select(download_batches)
        .where(download_batches.c.day == day)
        .order_by(download_batches.c.id)
        .limit(1)
    ).first()


def download_batch_by_tag(conn: Connection, tag: str) -> Any:
    """The download batch tagged ``tag``, or None."""
    return conn.execute(sa.select(download_batches).where(download_batches.c.tag == tag)).first()


def download_keys(conn: Connection, batch_id: int, without_country: str) -> list[Any]:
    """The key rows of a download batch not uploaded by ``without_country``, in order."""
    return list(
        conn.execute(
            sa.select(keys)
            .join(upload_batches, keys.c.upload_batch_id == upload_batches.c.id)
            .where(
                upload_batches.c.download_batch_id == batch_id,
                upload_batches.c.country != without_country,
            )
            .order_by(keys.c.id)
        ).all()
    )


def uploads_of(conn: Connection, batch_id: int) -> list[Any]:
    """The upload batch rows of a download batch, in arrival order."""
    return list(
        conn.execute(
            sa.select(upload_batches)
            .where(upload_batches.c.download_batch_id == batch_id)
            .order_by(upload_batches.c.id)
        ).all()
    )


def delete_keys_before(conn: Connection, cutoff: int) -> int:
    """Delete the keys stored before ``cutoff``; how many."""
    result = conn.execute(keys.delete().where(keys.c.created_at < cutoff))
    return int(result.rowcount or 0)
