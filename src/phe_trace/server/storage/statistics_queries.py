"""The key server's queries for statistics: released key counts (AGG-38) and the sealed
reports it holds for the aggregators (§15)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .federation_tables import federated_keys
from .tables import analytics_sealed_reports as reports_table
from .tables import exposures, health_authorities, key_count_releases

__all__ = [
    "count_local_keys_created",
    "delete_reports_before",
    "first_activity",
    "insert_key_count",
    "insert_reports",
    "key_counts",
    "last_released_day",
    "report_shares",
]


def last_released_day(conn: Connection) -> int | None:
    """The newest day whose key count was released."""
    last = conn.execute(sa.select(sa.func.max(key_count_releases.c.day))).scalar()
    return None if last is None else int(last)


def first_activity(conn: Connection) -> list[int]:
    """The earliest ``created_at`` of the stored keys and of the health authorities
    (each when there is one)."""
    starts = [
        conn.execute(sa.select(sa.func.min(column))).scalar()
        for column in (exposures.c.created_at, health_authorities.c.created_at)
    ]
    return [int(t) for t in starts if t is not None]


def count_local_keys_created(conn: Connection, start: int, end: int) -> int:
    """Stored keys created in [start, end) that were not imported from elsewhere."""
    query = (
        sa.select(sa.func.count())
        .select_from(exposures)
        .outerjoin(federated_keys, federated_keys.c.key_data == exposures.c.key_data)
        .where(
            exposures.c.created_at >= start,
            exposures.c.created_at < end,
            federated_keys.c.key_data.is_(None),
        )
    )
    return int(conn.execute(query).scalar_one())


def insert_key_count(conn: Connection, **values: Any) -> None:
    """Store one day's release; IntegrityError if the day was released before."""
    conn.execute(key_count_releases.insert().values(**values))


def key_counts(conn: Connection) -> list[tuple[int, int, float, int]]:
    """(day, value, epsilon, sensitivity) of every release, oldest day first."""
    query = sa.select(
        key_count_releases.c.day,
        key_count_releases.c.value,
        key_count_releases.c.epsilon,
        key_count_releases.c.sensitivity,
    ).order_by(key_count_releases.c.day)
    return [(int(d), int(v), float(e), int(s)) for d, v, e, s in conn.execute(query)]


def delete_reports_before(conn: Connection, day: int) -> int:
    """Delete the sealed reports of days before ``day``; the number deleted."""
    result = conn.execute(reports_table.delete().where(reports_table.c.day < day))
    return int(result.rowcount or 0)


def insert_reports(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Store sealed reports (the columns of the table but ``seq``), one executemany."""
    conn.execute(reports_table.insert(), list(rows))


def report_shares(
    conn: Connection, role: str, day: int, metric: str, after: int, limit: int
) -> list[tuple[int, str, bytes]]:
    """(seq, report id, ``role``'s box) of one day and metric after ``seq`` ``after``."""
    column = reports_table.c.leader_share if role == "leader" else reports_table.c.helper_share
    query = (
        sa.select(reports_table.c.seq, reports_table.c.report_id, column)
        .where(
            reports_table.c.day == day,
            reports_table.c.metric == metric,
            reports_table.c.seq > after,
        )
        .order_by(reports_table.c.seq)
        .limit(limit)
    )
    return [(int(s), str(r), bytes(b)) for s, r, b in conn.execute(query)]
