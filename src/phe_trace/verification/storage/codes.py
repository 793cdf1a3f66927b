"""Statements on codes, tokens and the per-realm daily statistics (VER-1 … VER-5, VER-14).

A claim is one conditional ``UPDATE … WHERE claimed_at IS NULL`` (or ``used_at``), so a
code or token is used once even under concurrent requests, on SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import Connection, delete, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from ..tables import codes, daily_stats, realms, tokens

__all__ = [
    "STAT_COLUMNS",
    "claim_code",
    "code_by_hash",
    "code_stored",
    "count",
    "count_issued",
    "insert_code",
    "insert_token",
    "issued_on",
    "purge",
    "recent_codes",
    "stats_since",
    "token_by_hash",
    "token_stored",
    "totals",
    "use_token",
]

#: The counters of a realm's day.
STAT_COLUMNS = ("codes_issued", "codes_claimed", "codes_invalid", "tokens_claimed")


def code_stored(conn: Connection, code_uuid: str) -> bool:
    """Whether a code with this uuid is stored."""
    return conn.execute(select(codes.c.id).where(codes.c.uuid == code_uuid)).first() is not None


def insert_code(conn: Connection, row: dict[str, Any]) -> None:
    """Store an issued code (hashes only); IntegrityError if a hash collides."""
    conn.execute(insert(codes).values(**row))


def recent_codes(conn: Connection, realm_id: int, limit: int) -> list[Any]:
    """The realm's newest ``limit`` code rows, newest first."""
    return list(
        conn.execute(
            select(codes)
            .where(codes.c.realm_id == realm_id)
            .order_by(codes.c.issued_at.desc(), codes.c.id.desc())
            .limit(limit)
        ).all()
    )


def code_by_hash(conn: Connection, realm_id: int, code_hash: str) -> Any:
    """The realm's code row whose short or long code hashes to ``code_hash``, or None."""
    return conn.execute(
        select(codes).where(
            codes.c.realm_id == realm_id,
            or_(codes.c.code_hash == code_hash, codes.c.long_code_hash == code_hash),
        )
    ).first()


def claim_code(conn: Connection, code_id: int, claimed_at: int) -> bool:
    """Claim an unclaimed code; ``False`` if it was claimed meanwhile."""
    claimed = conn.execute(
        update(codes)
        .where(codes.c.id == code_id, codes.c.claimed_at.is_(None))
        .values(claimed_at=claimed_at)
    )
    return bool(claimed.rowcount == 1)


def insert_token(conn: Connection, **values: Any) -> None:
    """Store a token row (its ``id`` included); IntegrityError if the id is taken."""
    conn.execute(insert(tokens).values(**values))


def token_stored(conn: Connection, token_hash: str) -> bool:
    """Whether a token with this hash is stored."""
    query = select(tokens.c.id).where(tokens.c.token_hash == token_hash)
    return conn.execute(query).first() is not None


def token_by_hash(conn: Connection, realm_id: int, token_hash: str) -> Any:
    """The realm's token row with this hash, or None."""
    return conn.execute(
        select(tokens).where(tokens.c.token_hash == token_hash, tokens.c.realm_id == realm_id)
    ).first()


def use_token(conn: Connection, token_id: int, used_at: int, used_by: str) -> bool:
    """Mark an unused token used by ``used_by``; ``False`` if it was used meanwhile."""
    used = conn.execute(
        update(tokens)
        .where(tokens.c.id == token_id, tokens.c.used_at.is_(None))
        .values(used_at=used_at, used_by=used_by)
    )
    return bool(used.rowcount == 1)


def _ensure_stats_row(conn: Connection, realm_id: int, day: date) -> None:
    values = {
        "realm_id": realm_id,
        "day": day,
        "codes_issued": 0,
        "codes_claimed": 0,
        "codes_invalid": 0,
        "tokens_claimed": 0,
    }
    if conn.dialect.name == "postgresql":
        conn.execute(postgresql.insert(daily_stats).values(**values).on_conflict_do_nothing())
    else:
        conn.execute(sqlite.insert(daily_stats).values(**values).on_conflict_do_nothing())


def count_issued(conn: Connection, realm_id: int, day: date) -> bool:
    """Count one issued code on ``day`` if the realm's daily quota allows it (one
    conditional UPDATE); ``False`` when the quota is used up."""
    quota = conn.execute(select(realms.c.daily_quota).where(realms.c.id == realm_id)).scalar()
    _ensure_stats_row(conn, realm_id, day)
    res = conn.execute(
        update(daily_stats)
        .where(
            daily_stats.c.realm_id == realm_id,
            daily_stats.c.day == day,
            daily_stats.c.codes_issued < (quota or 0),
        )
        .values(codes_issued=daily_stats.c.codes_issued + 1)
    )
    return bool(res.rowcount == 1)


def count(conn: Connection, realm_id: int, day: date, column: str) -> None:
    """Add one to the realm's counter ``column`` (of :data:`STAT_COLUMNS`) on ``day``."""
    _ensure_stats_row(conn, realm_id, day)
    col = daily_stats.c[column]
    conn.execute(
        update(daily_stats)
        .where(daily_stats.c.realm_id == realm_id, daily_stats.c.day == day)
        .values({column: col + 1})
    )


def stats_since(conn: Connection, realm_id: int, first: date) -> list[Any]:
    """The realm's daily statistics rows from ``first`` on."""
    return list(
        conn.execute(
            select(daily_stats).where(
                daily_stats.c.realm_id == realm_id, daily_stats.c.day >= first
            )
        ).all()
    )


def totals(conn: Connection) -> list[Any]:
    """Per realm: its name and each of :data:`STAT_COLUMNS` summed over every day."""
    query = (
        select(realms.c.name, *(func.sum(daily_stats.c[c]).label(c) for c in STAT_COLUMNS))
        .join(daily_stats, daily_stats.c.realm_id == realms.c.id)
        .group_by(realms.c.name)
    )
    return list(conn.execute(query).all())


def issued_on(conn: Connection, realm_id: int, day: date) -> int:
    """Codes the realm issued on ``day``."""
    value = conn.execute(
        select(daily_stats.c.codes_issued).where(
            daily_stats.c.realm_id == realm_id, daily_stats.c.day == day
        )
    ).scalar()
    return int(value or 0)


def purge(conn: Connection, keep_after: int, now: int) -> tuple[int, int]:
    """Delete codes whose long code expired before ``keep_after`` and tokens expired
    before ``now``; (codes deleted, tokens deleted)."""
    n_codes = conn.execute(delete(codes).where(codes.c.long_expires_at < keep_after))
    n_tokens = conn.execute(delete(tokens).where(tokens.c.expires_at < now))
    return int(n_codes.rowcount), int(n_tokens.rowcount)
