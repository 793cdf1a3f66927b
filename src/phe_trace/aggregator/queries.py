"""An aggregator's statements on its own database (the tables of :mod:`.storage`).

Each function runs on the caller's connection, inside the caller's transaction; what is
stored when (replay checks, the privacy budget, the minimum batch) is decided in
:mod:`.service`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .storage import cursors, releases, shares, withheld

__all__ = [
    "AGGREGATE_COLUMNS",
    "ALL_SHARE_COLUMNS",
    "PREPARE_COLUMNS",
    "fetch_cursor",
    "insert_release",
    "insert_shares",
    "load_shares",
    "note_withheld",
    "release_epsilons",
    "release_row",
    "released_pairs",
    "save_cursor",
    "set_status",
    "stored_ids_and_nonces",
    "withheld_rows",
]

#: Every column of a share.
ALL_SHARE_COLUMNS: tuple[Any, ...] = (shares,)
#: The share columns an aggregation reads.
AGGREGATE_COLUMNS = (shares.c.report_id, shares.c.out_share)
#: The share columns a preparation reads.
PREPARE_COLUMNS = (shares.c.report_id, shares.c.nonce, shares.c.public_share, shares.c.input_share)


def fetch_cursor(conn: Connection, day: int, metric: str) -> int | None:
    """The last ``seq`` fetched from the key server for (day, metric), if any."""
    return conn.execute(
        sa.select(cursors.c.after).where(cursors.c.day == day, cursors.c.metric == metric)
    ).scalar()


def save_cursor(conn: Connection, day: int, metric: str, after: int) -> None:
    """Store the fetch cursor of (day, metric) (updated, else inserted)."""
    updated = conn.execute(
        cursors.update().where(cursors.c.day == day, cursors.c.metric == metric).values(after=after)
    )
    if updated.rowcount == 0:
        conn.execute(cursors.insert().values(day=day, metric=metric, after=after))


def insert_shares(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Store opened shares (one executemany)."""
    conn.execute(shares.insert(), rows)


def stored_ids_and_nonces(conn: Connection, day: int, metric: str) -> list[Any]:
    """(report_id, nonce) of every share stored for (day, metric)."""
    return list(
        conn.execute(
            sa.select(shares.c.report_id, shares.c.nonce).where(
                shares.c.day == day, shares.c.metric == metric
            )
        ).all()
    )


def load_shares(
    conn: Connection,
    day: int,
    metric: str,
    report_ids: list[str] | None,
    status: int,
    columns: tuple[Any, ...] = ALL_SHARE_COLUMNS,
) -> list[Any]:
    """``columns`` of the shares of (day, metric) in ``status``, by report id: all of them
    (``report_ids`` None) or those of ``report_ids``."""
    base = sa.select(*columns).where(
        shares.c.day == day, shares.c.metric == metric, shares.c.status == status
    )
    if report_ids is None:
        return list(conn.execute(base.order_by(shares.c.report_id)))
    if not report_ids:
        return []
    # One range scan over the (day, metric, status, report_id) index, then the exact
    # set: far cheaper than many IN (…) lists for the thousands of ids a prepare or
    # aggregate request names.
    wanted = set(report_ids)
    ranged = base.where(
        shares.c.report_id >= min(wanted), shares.c.report_id <= max(wanted)
    ).order_by(shares.c.report_id)
    return [r for r in conn.execute(ranged) if r.report_id in wanted]


def set_status(conn: Connection, updates: list[tuple[str, int, bytes | None]]) -> None:
    """Set (report id, status, output share) of shares, one executemany."""
    statement = (
        shares.update()
        .where(shares.c.report_id == sa.bindparam("rid"))
        .values(status=sa.bindparam("st"), out_share=sa.bindparam("out"))
    )
    conn.execute(statement, [{"rid": r, "st": st, "out": out} for r, st, out in updates])


def release_epsilons(conn: Connection, day: int) -> list[Any]:
    """(metric, epsilon) of every release of ``day``."""
    query = sa.select(releases.c.metric, releases.c.epsilon).where(releases.c.day == day)
    return list(conn.execute(query).all())


def insert_release(conn: Connection, **values: Any) -> None:
    """Store a release (the columns of its table)."""
    conn.execute(releases.insert().values(**values))


def release_row(conn: Connection, day: int, metric: str) -> Any:
    """The release row of (day, metric), or None."""
    return conn.execute(
        sa.select(releases).where(releases.c.day == day, releases.c.metric == metric)
    ).first()


def released_pairs(conn: Connection, day: int | None) -> list[Any]:
    """(day, metric) of every published release (of ``day`` when given), in order."""
    query = sa.select(releases.c.day, releases.c.metric).where(releases.c.values_json.is_not(None))
    if day is not None:
        query = query.where(releases.c.day == day)
    return list(conn.execute(query.order_by(releases.c.day, releases.c.metric)))


def withheld_rows(conn: Connection, day: int | None) -> list[Any]:
    """(day, metric, min_batch_size) noted withheld and not released since."""
    query = (
        sa.select(withheld.c.day, withheld.c.metric, withheld.c.min_batch_size)
        .select_from(
            withheld.outerjoin(
                releases,
                sa.and_(releases.c.day == withheld.c.day, releases.c.metric == withheld.c.metric),
            )
        )
        .where(releases.c.day.is_(None))
    )
    if day is not None:
        query = query.where(withheld.c.day == day)
    return list(conn.execute(query.order_by(withheld.c.day, withheld.c.metric)).all())


def note_withheld(conn: Connection, day: int, metric: str, min_batch_size: int) -> None:
    """Note (day, metric) as withheld below ``min_batch_size`` (replacing an older note)."""
    conn.execute(withheld.delete().where(withheld.c.day == day, withheld.c.metric == metric))
    conn.execute(withheld.insert().values(day=day, metric=metric, min_batch_size=min_batch_size))
