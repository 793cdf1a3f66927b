"""``/v1/analytics``: ingestion of sealed aggregate-statistics reports (SPEC AGG-17, AGG-18).

Devices upload, per metric and day, two sealed boxes — one for the leader aggregator,
one for the helper (``phe_trace.analytics.reports``). The key server cannot open them.
It stores each report as ``(random report id, day, metric, leader box, helper box)`` and
nothing else: no IP address, no time finer than the day, no link to a publish request
or to the other metrics of the same device. Each aggregator fetches its own boxes.

This module is the store; the routes are ``routers/analytics_ingest.py``, mounted with
one line in the key server's ``create_app``::

    app.include_router(routers.analytics_ingest.router)

The store uses the key server's database engine (``app.state.keyserver.engine``); its
one table, ``analytics_sealed_reports``, is made by the key server's migrations
(revision 0006, which takes over a table an earlier version made on first use). A
deployment may instead set ``app.state.analytics_ingest`` to an :class:`IngestStore` of
its own, on an engine the key server's ``migrate`` has brought up to date. Fetching requires
``Authorization: Bearer <token>`` when the environment variable
``PHE_TRACE_ANALYTICS_FETCH_TOKEN`` is set (read once, when the store is created).

Uploads are bounded (AGG-34): only days from ``retention_days`` ago to today (the key
server's clock) are accepted, rows of older days are deleted, and the uploads of all
devices together are limited to ``analytics_uploads_per_second`` (429 beyond). Nothing
about a client is kept to do so.
"""

from __future__ import annotations

import math
import secrets
import threading
import time
from collections.abc import Callable

from sqlalchemy.engine import Engine

from .storage import statistics_queries as queries

__all__ = ["MAX_BOX_BYTES", "MAX_REPORTS_PER_UPLOAD", "MIN_BOX_BYTES", "IngestStore", "UploadRate"]

#: Largest accepted sealed box (the biggest metric's leader share is well below this).
MAX_BOX_BYTES = 4096
#: Reports in one upload (one device sends its four metrics at once).
MAX_REPORTS_PER_UPLOAD = 8
#: Smallest plausible sealed report (48 bytes of box overhead + a 24-byte header).
MIN_BOX_BYTES = 64


class UploadRate:
    """A token bucket over all uploads together: ``rate`` per second, a minute's burst.

    ``rate`` 0 admits everything. Thread-safe; time is the caller's ``now``.
    """

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.capacity = max(rate * 60, 1.0)
        self._tokens = self.capacity
        self._at: float | None = None
        self._lock = threading.Lock()

    def take(self, now: float) -> float:
        """Take one upload; 0 when admitted, else the seconds until one would be."""
        if self.rate <= 0:
            return 0.0
        with self._lock:
            elapsed = 0.0 if self._at is None else max(now - self._at, 0.0)
            self._at = now
            self._tokens = min(self.capacity, self._tokens + elapsed * self.rate)
            if self._tokens >= 1:
                self._tokens -= 1
                return 0.0
            return (1 - self._tokens) / self.rate


class IngestStore:
    """The sealed-report table on a SQLAlchemy engine (migrated by the key server).

    ``clock`` (unix seconds) decides which days an upload may carry: ``retention_days``
    ago through today; older rows are deleted. ``uploads_per_second`` limits uploads.
    """

    def __init__(
        self,
        engine: Engine,
        fetch_token: str | None = None,
        *,
        clock: Callable[[], float] = time.time,
        retention_days: int = 14,
        uploads_per_second: float = 0.0,
    ) -> None:
        self.engine = engine
        self.fetch_token = fetch_token
        self.clock = clock
        self.retention_days = retention_days
        self.rate = UploadRate(uploads_per_second)
        self._purged_before = -1

    def accepted_days(self) -> range:
        """The day numbers an upload may carry now."""
        today = math.floor(self.clock() / 86400)
        return range(max(today - self.retention_days, 0), today + 1)

    def purge(self) -> int:
        """Delete the rows of days before the accepted window; the number deleted."""
        horizon = self.accepted_days().start
        with self.engine.begin() as conn:
            deleted = queries.delete_reports_before(conn, horizon)
        self._purged_before = horizon
        return deleted

    def add(self, rows: list[tuple[int, str, bytes, bytes]]) -> None:
        """Store (day, metric, leader box, helper box) rows under fresh random ids.

        The first upload of each day first deletes the rows past retention.
        """
        if self.accepted_days().start != self._purged_before:
            self.purge()
        with self.engine.begin() as conn:
            queries.insert_reports(
                conn,
                [
                    {
                        "report_id": secrets.token_hex(16),
                        "day": d,
                        "metric": m,
                        "leader_share": ls,
                        "helper_share": hs,
                    }
                    for d, m, ls, hs in rows
                ],
            )

    def fetch(
        self, role: str, day: int, metric: str, after: int, limit: int
    ) -> list[tuple[int, str, bytes]]:
        """(seq, report id, this role's box) for one day and metric, in order."""
        with self.engine.connect() as conn:
            return queries.report_shares(conn, role, day, metric, after, limit)
