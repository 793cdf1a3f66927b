"""Statements on the certificate signing keys (sealed private keys, VER-6 … VER-8)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, insert, select, update

from ..tables import signing_keys

__all__ = [
    "active_key",
    "active_kid",
    "deactivate_all",
    "insert_key",
    "key_count",
    "retire_inactive",
    "unretired_keys",
]


def active_kid(conn: Connection) -> str | None:
    """``kid`` of the active key, if there is one."""
    kid = conn.execute(select(signing_keys.c.kid).where(signing_keys.c.active.is_(True))).scalar()
    return None if kid is None else str(kid)


def key_count(conn: Connection) -> int:
    """How many keys were ever stored (retired ones included)."""
    return len(conn.execute(select(signing_keys.c.id)).all())


def deactivate_all(conn: Connection) -> None:
    """Make the active key inactive."""
    conn.execute(update(signing_keys).where(signing_keys.c.active.is_(True)).values(active=False))


def insert_key(conn: Connection, **values: Any) -> None:
    """Store a key (the columns of its table)."""
    conn.execute(insert(signing_keys).values(**values))


def retire_inactive(conn: Connection, now: int) -> list[str]:
    """Mark every inactive unretired key retired at ``now``; their ``kid``s."""
    kids = conn.execute(
        select(signing_keys.c.kid).where(
            signing_keys.c.active.is_(False), signing_keys.c.retired_at.is_(None)
        )
    ).scalars()
    retired = [str(k) for k in kids]
    conn.execute(
        update(signing_keys)
        .where(signing_keys.c.active.is_(False), signing_keys.c.retired_at.is_(None))
        .values(retired_at=now)
    )
    return retired


def active_key(conn: Connection) -> Any:
    """(kid, sealed_private_key) of the active key, or None."""
    return conn.execute(
        select(signing_keys.c.kid, signing_keys.c.sealed_private_key).where(
            signing_keys.c.active.is_(True)
        )
    ).first()


def unretired_keys(conn: Connection) -> list[Any]:
    """(kid, sealed_private_key) of every unretired key, oldest first."""
    return list(
        conn.execute(
            select(signing_keys.c.kid, signing_keys.c.sealed_private_key)
            .where(signing_keys.c.retired_at.is_(None))
            .order_by(signing_keys.c.id)
        ).all()
    )
