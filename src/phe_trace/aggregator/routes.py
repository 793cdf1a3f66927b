"""The aggregator's HTTP routes (SPEC §15): config, the helper's prepare / pull /
aggregate-share, the leader's collect and published aggregates.

Each reads the :class:`~.service.Aggregator` from ``app.state.aggregator``
(:data:`AggregatorDep`); peer routes need the bearer token (:func:`peer`), and a route of
one role answers 404 on the other (:func:`role`).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request
from pydantic import BaseModel, Field

from phe_trace.analytics.metrics import METRICS
from phe_trace.analytics.prio3 import DRAFT_VERSION
from phe_trace.crypto.compare import bearer_matches
from phe_trace.web.errors import ErrorOut
from phe_trace.web.query import DAY_NUMBER, DIGITS

from .errors import BatchTooSmall
from .service import Aggregator

__all__ = [
    "DAY_LIMIT",
    "MAX_PREPARE_ITEMS",
    "MAX_PREP_SHARE_CHARS",
    "MAX_REPORT_IDS",
    "AggregatorDep",
    "peer",
    "role",
    "router",
]

MetricName = Literal["notified", "risk_level", "days_to_notification", "reported_positive"]


#: Days accepted: those that are calendar dates (through 9999-12-31, so every release can
#: name its day in ISO form), within the key server's analytics feed's range (so no day
#: the helper accepts is one the feed refuses, which would surface as the helper's 502).
DAY_LIMIT = (dt.date.max - dt.date(1970, 1, 1)).days + 1

#: A UTC day number (``unix_seconds // 86400``).
Day = Annotated[int, Field(ge=0, lt=DAY_LIMIT), DAY_NUMBER]


#: Items in one prepare request (the leader sends chunks of 2,000).
MAX_PREPARE_ITEMS = 5000
#: Longest base64 prep share accepted (the largest metric's is 256 characters).
MAX_PREP_SHARE_CHARS = 1024
#: Report ids in one aggregate-share request.
MAX_REPORT_IDS = 1_000_000
#: Standard base64 in whole groups of four (what the schema documents and we decode).
_BASE64 = r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"


class PrepareItem(BaseModel):
    report_id: str = Field(max_length=64)
    prep_share: str = Field(max_length=MAX_PREP_SHARE_CHARS, pattern=_BASE64)


class PrepareIn(BaseModel):
    day: Day
    metric: MetricName
    items: list[PrepareItem] = Field(max_length=MAX_PREPARE_ITEMS)


class AggregateShareIn(BaseModel):
    day: Day
    metric: MetricName
    report_ids: list[Annotated[str, Field(max_length=64)]] = Field(max_length=MAX_REPORT_IDS)


class PullIn(BaseModel):
    day: Day
    metric: MetricName


class CollectIn(BaseModel):
    day: Day


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries of the error statuses a route answers, all :class:`ErrorOut`."""
    meaning = {
        400: "Malformed request (bad_request).",
        401: "Peer token missing or wrong (unauthorized).",
        404: "This role does not serve the endpoint (not_found).",
        409: "Breaks the protocol or the minimum batch (protocol_violation, batch_too_small).",
        413: "Body over the endpoint's limit (payload_too_large).",
        502: "The key server or the peer failed (peer_error).",
    }
    return {s: {"model": ErrorOut, "description": meaning[s]} for s in statuses}


_PEER_ERRORS = (400, 401, 404, 409, 413)


def _b64(value: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise HTTPException(400, "not base64") from None


async def get_aggregator(request: Request) -> Aggregator:
    """The aggregator of the app serving ``request``."""
    agg: Aggregator = request.app.state.aggregator
    return agg


AggregatorDep = Annotated[Aggregator, Depends(get_aggregator)]


def peer(agg: AggregatorDep, authorization: Annotated[str | None, Header()] = None) -> None:
    """Refuse (401) a request without the peer aggregator's bearer token."""
    if not bearer_matches(authorization, agg.settings.peer_token.get_secret_value()):
        raise HTTPException(401, "a valid peer token is required")


def role(name: str) -> Any:
    """A dependency answering 404 unless this aggregator is the ``name`` (leader, helper)."""

    def check(agg: AggregatorDep) -> None:
        if agg.settings.role != name:
            raise HTTPException(404, f"only the {name} serves this endpoint")

    return Depends(check)


router = APIRouter()


@router.get("/v1/aggregator/config", responses=_errors(413))
def config(agg: AggregatorDep) -> dict[str, Any]:
    settings = agg.settings
    return {
        "role": settings.role,
        "public_key": agg.public_key().hex(),
        "vdaf_draft_version": DRAFT_VERSION,
        "min_batch_size": settings.min_batch_size,
        "epsilon": settings.epsilon,
        "metrics": {m.name: {"id": m.metric_id, "length": m.length} for m in METRICS.values()},
    }


@router.post(
    "/v1/aggregator/prepare",
    dependencies=[Depends(peer), role("helper")],
    responses=_errors(*_PEER_ERRORS),
)
def prepare(body: PrepareIn, agg: AggregatorDep) -> dict[str, Any]:
    items = [(i.report_id, _b64(i.prep_share)) for i in body.items]
    results = agg.handle_prepare(body.day, body.metric, items)
    return {
        "results": [
            {
                "report_id": rid,
                "ok": ok,
                "prep_msg": base64.b64encode(msg).decode() if msg else "",
            }
            for rid, ok, msg in results
        ]
    }


@router.post(
    "/v1/aggregator/pull",
    dependencies=[Depends(peer), role("helper")],
    responses=_errors(*_PEER_ERRORS, 502),
)
def pull(body: PullIn, agg: AggregatorDep) -> dict[str, int]:
    return {"stored": agg.pull(body.day, body.metric)}


@router.post(
    "/v1/aggregator/aggregate_share",
    dependencies=[Depends(peer), role("helper")],
    responses=_errors(*_PEER_ERRORS),
)
def aggregate_share(body: AggregateShareIn, agg: AggregatorDep) -> dict[str, str]:
    share = agg.handle_aggregate_share(body.day, body.metric, body.report_ids)
    return {"agg_share": base64.b64encode(share).decode()}


@router.post(
    "/v1/aggregator/collect",
    dependencies=[Depends(peer), role("leader")],
    responses=_errors(*_PEER_ERRORS, 502),
)
def collect(body: CollectIn, agg: AggregatorDep) -> dict[str, Any]:
    released, skipped = [], {}
    for metric in METRICS:
        try:
            released.append(agg.collect(body.day, metric).to_json())
        except BatchTooSmall as exc:
            skipped[metric] = str(exc)
    return {"released": released, "not_released": skipped}


@router.get("/v1/aggregates", dependencies=[role("leader")], responses=_errors(400, 404, 413))
def aggregates(
    agg: AggregatorDep,
    day: Annotated[int | None, Query(ge=0, lt=DAY_LIMIT), DIGITS] = None,
) -> dict[str, Any]:
    return {
        "min_batch_size": agg.settings.min_batch_size,
        "aggregates": [r.to_json() for r in agg.releases(day)],
        "not_released": [w.to_json() for w in agg.withheld(day)],
    }
