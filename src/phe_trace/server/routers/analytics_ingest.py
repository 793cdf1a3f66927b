"""``/v1/analytics/reports`` and ``/v1/analytics/shares``: upload and fetch of sealed
aggregate-statistics reports (SPEC AGG-17, AGG-18, AGG-34), over the key server's
:class:`~..analytics_ingest.IngestStore` (``app.state.analytics_ingest``, built on first
use from the key server's context unless the app already holds one)."""

from __future__ import annotations

import base64
import binascii
import math
import threading
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request
from pydantic import BaseModel, Field

from phe_trace.crypto.compare import bearer_matches
from phe_trace.web.errors import ErrorOut
from phe_trace.web.query import DAY_NUMBER, DIGITS

from ..analytics_ingest import MAX_BOX_BYTES, MAX_REPORTS_PER_UPLOAD, MIN_BOX_BYTES, IngestStore

__all__ = ["StoreDep", "get_store", "router"]

#: Standard base64 in whole groups of four (what the schema documents and we decode).
_B64 = r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"
#: Exclusive bound of day numbers and paging cursors: the columns are 32-bit integers on
#: every backend (PostgreSQL ``integer``), so a larger value is a 400, not a database error.
_INT_LIMIT = 2**31

#: A UTC day number (``unix_seconds // 86400``).
Day = Annotated[int, Field(ge=0, lt=_INT_LIMIT), DAY_NUMBER]


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
    if not MIN_BOX_BYTES <= len(data) <= MAX_BOX_BYTES:
        raise HTTPException(400, f"{name} must be {MIN_BOX_BYTES} … {MAX_BOX_BYTES} bytes")
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
