"""``/v1/analytics``: ingestion of sealed aggregate-statistics reports (SPEC AGG-17, AGG-18).

Devices upload, per metric and day, two sealed boxes — one for the leader aggregator,
one for the helper (``phe_trace.analytics.reports``). The key server cannot open them.
It stores each report as ``(random report id, day, metric, leader box, helper box)`` and
nothing else: no IP address, no time finer than the day, no link to a publish request
or to the other metrics of the same device. Each aggregator fetches its own boxes.

Mounting: one line in the key server's ``create_app``::

    app.include_router(analytics_ingest.router)

The store uses the key server's database engine (``app.state.keyserver.engine``) and
creates its one table on first use; a deployment may instead set
``app.state.analytics_ingest`` to an :class:`IngestStore` of its own. Fetching requires
``Authorization: Bearer <token>`` when the environment variable
``PHE_TRACE_ANALYTICS_FETCH_TOKEN`` is set (read once, when the store is created).

Uploads are bounded (AGG-34): only days from ``retention_days`` ago to today (the key
server's clock) are accepted, rows of older days are deleted, and the uploads of all
devices together are limited to ``analytics_uploads_per_second`` (429 beyond). Nothing
about a client is kept to do so.
"""

from __future__ import annotations

import base64
import binascii
import math
import secrets
import threading
import time
from collections.abc import Callable
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request
from pydantic import BaseModel, BeforeValidator, Field
from sqlalchemy.engine import Engine

from phe_trace.crypto.compare import bearer_matches
from phe_trace.web.query import DIGITS

from .storage import statistics_queries as queries

__all__ = ["MAX_BOX_BYTES", "MAX_REPORTS_PER_UPLOAD", "IngestStore", "router"]

#: Largest accepted sealed box (the biggest metric's leader share is well below this).
MAX_BOX_BYTES = 4096
#: Reports in one upload (one device sends its four metrics at once).
MAX_REPORTS_PER_UPLOAD = 8
#: Standard base64 in whole groups of four (what the schema documents and we decode).
_B64 = r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"
#: Smallest plausible sealed report (48 bytes of box overhead + a 24-byte header).
_MIN_BOX_BYTES = 64
#: Exclusive bound of day numbers and paging cursors: the columns are 32-bit integers on
#: every backend (PostgreSQL ``integer``), so a larger value is a 400, not a database error.
_INT_LIMIT = 2**31


def _no_bool(value: object) -> object:
    """``true`` or ``"5"`` is not a day number (JSON Schema admits ``0.0``, not those)."""
    if isinstance(value, bool | str):
        raise ValueError("a day number must be an integer")
    return value


#: A UTC day number (``unix_seconds // 86400``).
Day = Annotated[int, Field(ge=0, lt=_INT_LIMIT), BeforeValidator(_no_bool)]


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
    """The sealed-report table on a SQLAlchemy engine.

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
        queries.create_reports_table(engine)

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


_STORE_LOCK = threading.Lock()


def get_store(request: Request) -> IngestStore:
    """The app's IngestStore (built once from the key server's engine)."""
    with _STORE_LOCK:
        store: IngestStore | None = getattr(request.app.state, "analytics_ingest", None)
        if store is None:
            ctx = request.app.state.keyserver
            secret = ctx.settings.analytics_fetch_token
            token = secret.get_secret_value() if secret is not None else None
            store = IngestStore(
                ctx.engine,
                token,
                clock=ctx.now,
                retention_days=ctx.settings.retention_days,
                uploads_per_second=ctx.settings.analytics_uploads_per_second,
            )
            request.app.state.analytics_ingest = store
        return store


StoreDep = Annotated[IngestStore, Depends(get_store)]
router = APIRouter(prefix="/v1/analytics", tags=["aggregate statistics"])


class SealedReportIn(BaseModel):
    """One report: a metric, a UTC day number and two base64 sealed boxes."""

    metric: Literal["notified", "risk_level", "days_to_notification", "reported_positive"]
    day: Day
    leader_share: str = Field(min_length=96, max_length=5460, pattern=_B64)
    helper_share: str = Field(min_length=96, max_length=5460, pattern=_B64)


class UploadIn(BaseModel):
    reports: list[SealedReportIn] = Field(min_length=1, max_length=MAX_REPORTS_PER_UPLOAD)


class ErrorOut(BaseModel):
    """A refused request: message and stable code."""

    error: str
    code: str


class UploadOut(BaseModel):
    accepted: int


_ERRORS: dict[int | str, dict[str, object]] = {
    400: {"model": ErrorOut, "description": "Malformed request (field named in the message)."},
    413: {"model": ErrorOut, "description": "Body larger than the server's limit."},
}
_UPLOAD_ERRORS: dict[int | str, dict[str, object]] = {
    **_ERRORS,
    429: {"model": ErrorOut, "description": "Too many uploads now; retry after Retry-After."},
}


class ShareOut(BaseModel):
    report_id: str
    share: str


class SharesOut(BaseModel):
    shares: list[ShareOut]
    next_after: int


def _box(value: str, name: str) -> bytes:
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise HTTPException(400, f"{name} is not base64") from None
    if not _MIN_BOX_BYTES <= len(data) <= MAX_BOX_BYTES:
        raise HTTPException(400, f"{name} must be {_MIN_BOX_BYTES} … {MAX_BOX_BYTES} bytes")
    return data


@router.post(
    "/reports",
    status_code=202,
    response_model=UploadOut,
    responses=_UPLOAD_ERRORS,
    summary="Upload sealed aggregate-statistics reports",
)
def upload(body: UploadIn, store: StoreDep) -> UploadOut:
    """Store each report's two sealed boxes with its day and metric only (AGG-18, AGG-34).

    Days outside the accepted window (``retention_days`` ago … today) are a 400; beyond
    the upload rate the answer is 429 with ``Retry-After``, and nothing is stored.
    """
    days = store.accepted_days()
    rows: list[tuple[int, str, bytes, bytes]] = []
    for i, r in enumerate(body.reports):
        if r.day not in days:
            raise HTTPException(
                400, f"reports[{i}].day must be {days.start} … {days.stop - 1} (today)"
            )
        rows.append(
            (
                r.day,
                r.metric,
                _box(r.leader_share, f"reports[{i}].leader_share"),
                _box(r.helper_share, f"reports[{i}].helper_share"),
            )
        )
    wait = store.rate.take(store.clock())
    if wait > 0:
        headers = {"Retry-After": str(max(math.ceil(wait), 1))}
        raise HTTPException(429, "too many uploads; retry later", headers=headers)
    store.add(rows)
    return UploadOut(accepted=len(rows))


@router.get(
    "/shares",
    response_model=SharesOut,
    responses={**_ERRORS, 401: {"model": ErrorOut, "description": "Token missing or wrong."}},
    summary="Fetch one aggregator's sealed boxes for a day and metric",
)
def shares(
    store: StoreDep,
    role: Literal["leader", "helper"],
    day: Annotated[int, Query(ge=0, lt=_INT_LIMIT), DIGITS],
    metric: Literal["notified", "risk_level", "days_to_notification", "reported_positive"],
    after: Annotated[int, Query(ge=0, lt=_INT_LIMIT), DIGITS] = 0,
    limit: Annotated[int, Query(ge=1, le=5000), DIGITS] = 1000,
    authorization: Annotated[str | None, Header()] = None,
) -> SharesOut:
    """Boxes after sequence number ``after``; page with ``next_after``."""
    if store.fetch_token is not None:
        if not bearer_matches(authorization, store.fetch_token):
            raise HTTPException(401, "a valid aggregator token is required")
    rows = store.fetch(role, day, metric, after, limit)
    return SharesOut(
        shares=[ShareOut(report_id=r, share=base64.b64encode(b).decode()) for _, r, b in rows],
        next_after=rows[-1][0] if rows else after,
    )
