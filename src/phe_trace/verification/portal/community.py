"""What the health authority sees of the community statistics (SPEC AGG-37).

Two sources, each run by its own operator and read over HTTP, as a reader outside would:

- the leader aggregator's ``GET /v1/aggregates`` — the released Prio3 totals per day and
  metric (values, ε, report count, noise, 95 % intervals) and the pairs it collected but
  did not release below the minimum batch (AGG-24, AGG-36);
- the key server's ``GET /v1/statistics/key-counts`` — its own noisy count of real keys
  published per day (AGG-38).

:func:`gather` turns both into one list of :class:`Row` — one row per day, statistic and
bucket — which the page groups by day and the CSV and JSON downloads carry as they are.
A source that is not configured or does not answer is named on the page; the portal
never fails because of it.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from phe_trace.analytics.dp import (
    DEFAULT_EPSILON,
    DEFAULT_KEY_COUNT_EPSILON,
    MAX_KEYS_PER_UPLOAD,
    interval_halfwidth,
    noise_std,
)
from phe_trace.analytics.metrics import DAYS_BUCKETS, METRICS

__all__ = [
    "COLUMNS",
    "KEY_COUNT_STATISTIC",
    "Community",
    "Row",
    "bucket_label",
    "gather",
    "to_csv",
    "to_json",
]

#: The statistic name of the key server's released count of real keys.
KEY_COUNT_STATISTIC = "real_keys_published"
#: Seconds to wait for either source.
TIMEOUT = 5.0
#: What one page reads at most from a source.
_MAX_BYTES = 4 * 1024 * 1024

#: Human names of the statistics, in the order the page shows them.
TITLES = {
    "notified": "Devices that showed an exposure notification",
    "risk_level": "Highest risk level of the day",
    "days_to_notification": "Days from exposure to notification",
    "reported_positive": "Devices that published keys (reported positive)",
    KEY_COUNT_STATISTIC: "Real keys published to the key server",
}


def bucket_label(metric: str, bucket: int) -> str:
    """What bucket ``bucket`` of ``metric`` counts (SPEC AGG-10, AGG-28)."""
    if metric == "risk_level":
        return {0: "no exposure", 1: "low", 2: "high"}.get(bucket, f"level {bucket}")
    if metric == "days_to_notification":
        if bucket == DAYS_BUCKETS - 1:
            return "not notified"
        return "1 day" if bucket == 1 else f"{bucket} days"
    return "count"


#: Columns of the CSV download, and keys of each JSON row, in this order.
COLUMNS = (
    "source",
    "day",
    "date",
    "statistic",
    "bucket",
    "bucket_label",
    "status",
    "value",
    "interval_95_low",
    "interval_95_high",
    "epsilon",
    "noise_std",
    "sensitivity",
    "min_batch_size",
    "report_count",
)


@dataclass(frozen=True, slots=True)
class Row:
    """One released number (or one withheld statistic), with what a reader needs to weigh it.

    ``source`` is ``aggregators`` (Prio3 totals) or ``key_server``. A withheld row
    (``status`` ``not_released``) has no bucket, value, interval, ε or noise.
    """

    source: str
    day: int
    date: str
    statistic: str
    bucket: int | None
    bucket_label: str
    status: str
    value: int | None
    interval_95_low: int | None
    interval_95_high: int | None
    epsilon: float | None
    noise_std: float | None
    sensitivity: int
    min_batch_size: int | None
    report_count: int | None


@dataclass
class Community:
    """Everything the page and downloads show, and what could not be read."""

    rows: list[Row] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    min_batch_size: int | None = None
    leader_url: str | None = None
    keyserver_url: str | None = None

    def days(self) -> list[tuple[str, list[dict[str, Any]]]]:
        """The rows grouped for the page: newest day first, per day one entry per statistic
        (its buckets together), in the order of :data:`TITLES`."""
        order = {name: i for i, name in enumerate(TITLES)}
        by_day: dict[str, dict[str, dict[str, Any]]] = {}
        for row in self.rows:
            entry = by_day.setdefault(row.date, {}).setdefault(
                row.statistic,
                {
                    "statistic": row.statistic,
                    "title": TITLES.get(row.statistic, row.statistic),
                    "source": row.source,
                    "status": row.status,
                    "epsilon": row.epsilon,
                    "noise_std": row.noise_std,
                    "sensitivity": row.sensitivity,
                    "min_batch_size": row.min_batch_size,
                    "report_count": row.report_count,
                    "buckets": [],
                },
            )
            if row.status == "released":
                entry["buckets"].append(row)
        return [
            (date, sorted(stats.values(), key=lambda e: order.get(e["statistic"], 99)))
            for date, stats in sorted(by_day.items(), reverse=True)
        ]


#: Only the metrics this portal knows are shown (nothing a source invents reaches a CSV).
_Metric = Literal["notified", "risk_level", "days_to_notification", "reported_positive"]
_DATE = r"^\d{4}-\d{2}-\d{2}$"


class _Release(BaseModel):
    model_config = ConfigDict(extra="ignore")
    day: int = Field(ge=0)
    date: str = Field(pattern=_DATE)
    metric: _Metric
    values: list[int] = Field(max_length=64)
    epsilon: float = Field(gt=0)
    report_count: int = Field(ge=0)
    noise_std: float = Field(ge=0)
    interval_95: list[tuple[int, int]] = Field(max_length=64)


class _Withheld(BaseModel):
    model_config = ConfigDict(extra="ignore")
    day: int = Field(ge=0)
    date: str = Field(pattern=_DATE)
    metric: _Metric
    min_batch_size: int = Field(ge=1)


class _Aggregates(BaseModel):
    model_config = ConfigDict(extra="ignore")
    min_batch_size: int = Field(ge=1)
    aggregates: list[_Release]
    not_released: list[_Withheld] = []


class _KeyCount(BaseModel):
    model_config = ConfigDict(extra="ignore")
    day: int = Field(ge=0)
    date: str = Field(pattern=_DATE)
    value: int
    epsilon: float = Field(gt=0)
    sensitivity: int = Field(ge=1)
    noise_std: float = Field(ge=0)
    interval_95: tuple[int, int]


class _KeyCounts(BaseModel):
    model_config = ConfigDict(extra="ignore")
    releases: list[_KeyCount]


def _read(client: httpx.Client, url: str, what: str) -> tuple[Any, str | None]:
    """The JSON body at ``url``, or ``(None, reason)`` in one line for the page."""
    try:
        with client.stream("GET", url) as resp:
            if resp.status_code != 200:
                return None, f"{what} answered HTTP {resp.status_code}."
            body = b""
            for chunk in resp.iter_bytes():
                body += chunk
                if len(body) > _MAX_BYTES:
                    return None, f"{what} sent more than {_MAX_BYTES} bytes."
    except httpx.HTTPError as exc:
        return None, f"{what} could not be reached ({type(exc).__name__})."
    try:
        return json.loads(body), None
    except ValueError:
        return None, f"{what} did not send JSON."


def _aggregator_rows(doc: _Aggregates) -> list[Row]:
    rows = []
    for r in doc.aggregates:
        for bucket, (value, (low, high)) in enumerate(zip(r.values, r.interval_95, strict=False)):
            rows.append(
                Row(
                    "aggregators",
                    r.day,
                    r.date,
                    r.metric,
                    bucket,
                    bucket_label(r.metric, bucket),
                    "released",
                    value,
                    low,
                    high,
                    r.epsilon,
                    r.noise_std,
                    1,
                    doc.min_batch_size,
                    r.report_count,
                )
            )
    for w in doc.not_released:
        rows.append(
            Row(
                "aggregators",
                w.day,
                w.date,
                w.metric,
                None,
                "",
                "not_released",
                None,
                None,
                None,
                None,
                None,
                1,
                w.min_batch_size,
                None,
            )
        )
    return rows


def _key_count_rows(doc: _KeyCounts) -> list[Row]:
    return [
        Row(
            "key_server",
            k.day,
            k.date,
            KEY_COUNT_STATISTIC,
            0,
            "count",
            "released",
            k.value,
            k.interval_95[0],
            k.interval_95[1],
            k.epsilon,
            k.noise_std,
            k.sensitivity,
            None,
            None,
        )
        for k in doc.releases
    ]


def gather(
    leader_url: str | None,
    keyserver_url: str | None,
    *,
    local_key_counts: Callable[[], list[dict[str, Any]]] | None = None,
    client: httpx.Client | None = None,
) -> Community:
    """Read both sources (see the module docstring); ``local_key_counts`` stands in for the
    key server's endpoint when it runs in this process and no URL is configured."""
    out = Community(leader_url=leader_url, keyserver_url=keyserver_url)
    own = client is None
    http = client or httpx.Client(timeout=TIMEOUT, follow_redirects=False)
    try:
        if leader_url:
            body, problem = _read(
                http, leader_url.rstrip("/") + "/v1/aggregates", "The leader aggregator"
            )
            if body is not None:
                try:
                    doc = _Aggregates.model_validate(body)
                    out.rows += _aggregator_rows(doc)
                    out.min_batch_size = doc.min_batch_size
                except ValidationError:
                    problem = "The leader aggregator sent releases this portal cannot read."
            if problem:
                out.problems.append(problem)
        else:
            out.problems.append(
                "No leader aggregator is configured "
                "(PHE_TRACE_VERIFICATION_STATISTICS_LEADER_URL): no Prio3 totals to show."
            )
        counts: Any = None
        if keyserver_url:
            counts, problem = _read(
                http, keyserver_url.rstrip("/") + "/v1/statistics/key-counts", "The key server"
            )
            if problem:
                out.problems.append(problem)
        elif local_key_counts is not None:
            counts = {"releases": local_key_counts()}
        else:
            out.problems.append(
                "No key server is configured (PHE_TRACE_VERIFICATION_STATISTICS_KEYSERVER_URL):"
                " no key counts to show."
            )
        if counts is not None:
            try:
                out.rows += _key_count_rows(_KeyCounts.model_validate(counts))
            except ValidationError:
                out.problems.append("The key server sent key counts this portal cannot read.")
    finally:
        if own:
            http.close()
    out.rows.sort(key=lambda r: (r.day, r.source, r.statistic, r.bucket or 0))
    return out


def noise_note(community: Community) -> dict[str, Any]:
    """The numbers the page's explanation of the noise quotes: those of the releases shown
    (the first of each source), else each source's default ε."""
    prio3 = next((r for r in community.rows if r.source == "aggregators" and r.epsilon), None)
    keys = next((r for r in community.rows if r.source == "key_server" and r.epsilon), None)
    eps = prio3.epsilon if prio3 and prio3.epsilon else DEFAULT_EPSILON
    keys_eps = keys.epsilon if keys and keys.epsilon else DEFAULT_KEY_COUNT_EPSILON
    keys_s = keys.sensitivity if keys else MAX_KEYS_PER_UPLOAD
    return {
        "prio3_std": round(noise_std(eps, 1, draws=2), 1),
        "prio3_h": interval_halfwidth(eps, 1, draws=2),
        "keys_std": round(noise_std(keys_eps, keys_s, draws=1)),
        "keys_h": interval_halfwidth(keys_eps, keys_s, draws=1),
        "keys_sensitivity": keys_s,
        "keys_epsilon": keys_eps,
        "min_batch_size": community.min_batch_size,
    }


def _cell(value: object) -> str:
    return "" if value is None else str(value)


def to_csv(rows: Sequence[Row]) -> str:
    """The rows as CSV with a header line (:data:`COLUMNS`); empty cells for no value."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in rows:
        values = asdict(row)
        writer.writerow([_cell(values[c]) for c in COLUMNS])
    return buf.getvalue()


def to_json(community: Community, generated_at: str) -> dict[str, Any]:
    """The downloadable JSON document: the rows, the sources and what could not be read."""
    return {
        "format": "phe-trace-community-statistics/1",
        "generated_at": generated_at,
        "sources": {"leader": community.leader_url, "key_server": community.keyserver_url},
        "problems": community.problems,
        "columns": list(COLUMNS),
        "rows": [asdict(r) for r in community.rows],
        "metrics": [*METRICS, KEY_COUNT_STATISTIC],
    }
