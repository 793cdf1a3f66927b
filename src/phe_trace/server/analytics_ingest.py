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
"""

from __future__ import annotations

import base64
import binascii
import hmac
import os
import secrets
import time
from typing import Annotated, Literal

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy.engine import Engine

__all__ = ["MAX_BOX_BYTES", "MAX_REPORTS_PER_UPLOAD", "IngestStore", "router"]

#: Largest accepted sealed box (the biggest metric's leader share is well below this).
MAX_BOX_BYTES = 4096
#: Reports in one upload (one device sends its four metrics at once).
MAX_REPORTS_PER_UPLOAD = 8
#: Days accepted around "today" (UTC day number): from today − 2 to today + 1.
_PAST_DAYS, _FUTURE_DAYS = 2, 1

_metadata = sa.MetaData()
reports_table = sa.Table(
    "analytics_sealed_reports",
    _metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("report_id", sa.String(32), nullable=False, unique=True),
    sa.Column("day", sa.Integer, nullable=False),
    sa.Column("metric", sa.String(32), nullable=False),
    sa.Column("leader_share", sa.LargeBinary, nullable=False),
    sa.Column("helper_share", sa.LargeBinary, nullable=False),
    sa.Index("ix_analytics_day_metric", "day", "metric", "seq"),
)


class IngestStore:
    """The sealed-report table on a SQLAlchemy engine."""

    def __init__(self, engine: Engine, fetch_token: str | None = None) -> None:
        self.engine = engine
        self.fetch_token = fetch_token
        _metadata.create_all(engine, checkfirst=True)

    def add(self, rows: list[tuple[int, str, bytes, bytes]]) -> None:
        """Store (day, metric, leader box, helper box) rows under fresh random ids."""
        with self.engine.begin() as conn:
            conn.execute(
                reports_table.insert(),
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
        with self.engine.connect() as conn:
            return [(int(s), str(r), bytes(b)) for s, r, b in conn.execute(query)]


def get_store(request: Request) -> IngestStore:
    """The app's IngestStore (built once from the key server's engine)."""
    store: IngestStore | None = getattr(request.app.state, "analytics_ingest", None)
    if store is None:
        engine = request.app.state.keyserver.engine
        store = IngestStore(engine, os.environ.get("PHE_TRACE_ANALYTICS_FETCH_TOKEN") or None)
        request.app.state.analytics_ingest = store
    return store


def _today(request: Request) -> int:
    ctx = getattr(request.app.state, "keyserver", None)
    now = ctx.now() if ctx is not None else time.time()
    return int(now // 86400)


StoreDep = Annotated[IngestStore, Depends(get_store)]
router = APIRouter(prefix="/v1/analytics", tags=["aggregate statistics"])


class SealedReportIn(BaseModel):
    """One report: a metric, a UTC day number and two base64 sealed boxes."""

    metric: Literal["notified", "risk_level", "days_to_notification", "reported_positive"]
    day: int = Field(ge=0, lt=2**32)
    leader_share: str = Field(max_length=2 * MAX_BOX_BYTES)
    helper_share: str = Field(max_length=2 * MAX_BOX_BYTES)


class UploadIn(BaseModel):
    reports: list[SealedReportIn] = Field(min_length=1, max_length=MAX_REPORTS_PER_UPLOAD)


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
    if not 48 <= len(data) <= MAX_BOX_BYTES:
        raise HTTPException(400, f"{name} must be 48 … {MAX_BOX_BYTES} bytes")
    return data


@router.post("/reports", status_code=202, summary="Upload sealed aggregate-statistics reports")
def upload(body: UploadIn, store: StoreDep, request: Request) -> dict[str, int]:
    """Store each report's two sealed boxes with its day and metric only."""
    today = _today(request)
    rows: list[tuple[int, str, bytes, bytes]] = []
    for i, r in enumerate(body.reports):
        if not today - _PAST_DAYS <= r.day <= today + _FUTURE_DAYS:
            raise HTTPException(400, f"reports[{i}].day {r.day} is not within two days of today")
        rows.append(
            (
                r.day,
                r.metric,
                _box(r.leader_share, f"reports[{i}].leader_share"),
                _box(r.helper_share, f"reports[{i}].helper_share"),
            )
        )
    store.add(rows)
    return {"accepted": len(rows)}


@router.get("/shares", summary="Fetch one aggregator's sealed boxes for a day and metric")
def shares(
    store: StoreDep,
    role: Literal["leader", "helper"],
    day: Annotated[int, Query(ge=0, lt=2**32)],
    metric: Literal["notified", "risk_level", "days_to_notification", "reported_positive"],
    after: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
    authorization: Annotated[str | None, Header()] = None,
) -> SharesOut:
    """Boxes after sequence number ``after``; page with ``next_after``."""
    if store.fetch_token is not None:
        expected = f"Bearer {store.fetch_token}"
        if authorization is None or not hmac.compare_digest(authorization, expected):
            raise HTTPException(401, "a valid aggregator token is required")
    rows = store.fetch(role, day, metric, after, limit)
    return SharesOut(
        shares=[ShareOut(report_id=r, share=base64.b64encode(b).decode()) for _, r, b in rows],
        next_after=rows[-1][0] if rows else after,
    )
