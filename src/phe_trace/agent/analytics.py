"""The device's part in the aggregate statistics (SPEC AGG-10, AGG-25 … AGG-31).

Opt-in (``phe-trace agent analytics on``) fetches the health authority's signed
configuration (:mod:`phe_trace.analytics.config`) from the key server, checks its
signature with the export keys the device already pins and pins the two aggregators'
URLs and keys. From then on :func:`run_step` (the daemon calls it at every step; it does
nothing until something is due):

1. for every UTC day that has ended since the last one prepared (and the opt-in day), it
   derives the day's four metrics from the device's own records (:func:`observe`), shards
   each with Prio3 and seals the shares to the pinned aggregators — once per (day, metric),
   each report due at its own uniformly random time in the next UTC day; a metric whose
   ε would take the device over the published budget for the period is not prepared;
2. it uploads every report that is due to the key server's ingestion endpoint; a failed
   upload (no answer, 429, 5xx) is tried again with growing delays, the same sealed
   report each time (so the aggregators drop a copy that did arrive, AGG-20); a report
   the server refuses outright (another 4xx) is given up.

A configuration that cannot be fetched or verified, or whose aggregator keys differ from
the pinned ones, stops the step: nothing is prepared or sent, and the reason is kept for
``status`` and logged. Accepting new aggregator keys is a deliberate step: ``analytics on``
again. ``analytics off`` drops the reports not yet sent and the pin.

Two state records: ``analytics`` (participation, pin, published parameters, and per report
its day, metric, value, ε, due time and when it was sent — what ``export-data`` shows) and
``analytics_outbox`` (the sealed boxes not yet accepted: ciphertexts for the aggregators,
of no use to the person, left out of ``export-data``). Both follow the store's retention
(:mod:`.retention`: reports by their day).

:func:`run_step` takes many devices at once (the simulator's): the configuration is
fetched once and the sharding is batched per (day, metric); every device still has its own
randomness, nonces, pin, budget and uploads. A device is anything with its settings, its
store and its randomness (:class:`Participant`: an :class:`~phe_trace.agent.Agent` is one);
the other functions take the settings or the store they read.
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from phe_trace.analytics.config import AnalyticsConfig, verify_signed_config
from phe_trace.analytics.errors import EncodingError
from phe_trace.analytics.metrics import DailyObservation, encode_daily
from phe_trace.analytics.reports import SealedReport, make_reports, upload_body

from .config import AgentConfig
from .errors import AnalyticsConfigError
from .retention import SECONDS_PER_DAY, utc_day
from .state import (
    AnalyticsReport,
    AnalyticsState,
    CheckRecord,
    Notified,
    Outbox,
    ReportState,
    SealedBox,
)
from .store import AgentStore
from .trust import load_trusted_keys

__all__ = [
    "OUTBOX",
    "STATE",
    "Participant",
    "Prepared",
    "StepResult",
    "disable",
    "enable",
    "fetch_config",
    "observe",
    "run_step",
    "status",
]

log = logging.getLogger("phe_trace.agent")

#: State record names.
STATE = AnalyticsState.NAME
OUTBOX = Outbox.NAME
#: First retry delay after a failed upload, seconds; each next one is four times longer.
RETRY_FIRST_S = 60.0
#: Longest retry delay, seconds.
RETRY_MAX_S = 6 * 3600.0
#: Reports in one upload request (the ingestion endpoint's limit, AGG-18).
_PER_REQUEST = 8


class Participant(Protocol):
    """One device taking part: its settings, its store, its randomness (report times)."""

    @property
    def config(self) -> AgentConfig: ...

    @property
    def store(self) -> AgentStore: ...

    @property
    def rng(self) -> random.Random: ...


@dataclass(frozen=True, slots=True)
class Prepared:
    """One device's measurements for one day, as sealed and queued (the simulator's truth)."""

    agent: int
    day: int
    values: dict[str, int]


@dataclass(slots=True)
class StepResult:
    """What one :func:`run_step` did over all its agents."""

    prepared: list[Prepared] = field(default_factory=list)
    sent: int = 0
    failed: int = 0
    refused_budget: int = 0
    error: str | None = None


def _state(store: AgentStore) -> AnalyticsState:
    return store.load(AnalyticsState)


def _outbox(store: AgentStore) -> dict[str, SealedBox]:
    return store.load(Outbox).boxes


def _key(day: int, metric: str) -> str:
    return f"{day}/{metric}"


# -- configuration ------------------------------------------------------------------------


def fetch_config(config: AgentConfig, client: httpx.Client) -> AnalyticsConfig:
    """Download and verify the published configuration (AnalyticsConfigError if not)."""
    base = (config.key_server_url or "").rstrip("/")
    if not base:
        raise AnalyticsConfigError("no key server configured (PHE_TRACE_AGENT_KEY_SERVER_URL)")
    trusted = load_trusted_keys(config.public_keys())
    try:
        resp = client.get(f"{base}/v1/analytics/config")
    except httpx.HTTPError as exc:
        raise AnalyticsConfigError(
            f"the analytics configuration cannot be fetched: {exc}"
        ) from None
    if resp.status_code != 200:
        raise AnalyticsConfigError(
            f"the key server has no usable analytics configuration (HTTP {resp.status_code})"
        )
    try:
        published = verify_signed_config(resp.json(), trusted)
    except (EncodingError, ValueError) as exc:
        raise AnalyticsConfigError(f"{exc}: nothing is sent") from None
    if published.budget_period_days > config.retention_days:
        raise AnalyticsConfigError(
            f"the budget period ({published.budget_period_days} days) is longer than what "
            f"this device keeps ({config.retention_days} days): it cannot account for it"
        )
    return published


def _params(config: AnalyticsConfig) -> dict[str, Any]:
    return {
        "period_days": config.budget_period_days,
        "min_batch_size": config.min_batch_size,
        "metrics": {m: [p.epsilon_per_day, p.budget] for m, p in config.metrics.items()},
    }


def enable(store: AgentStore, config: AnalyticsConfig, now: float) -> AnalyticsState:
    """Opt in under ``config`` (verified), pinning its aggregators; reports start today."""
    state = _state(store)
    today = utc_day(now)
    through = state.prepared_through if state.prepared_through is not None else today - 1
    state.enabled = True
    state.pin = config.pin()
    state.params = _params(config)
    state.prepared_through = max(int(through), today - 1)
    state.error = None
    store.save(state)
    log.info("analytics on: leader %s, helper %s", config.leader.url, config.helper.url)
    return state


def disable(store: AgentStore) -> int:
    """Opt out: forget the pin and every report not sent yet (returns how many)."""
    state = _state(store)
    dropped = len(_outbox(store))
    sent = [r for r in state.reports if r.sent_at is not None]
    store.save(AnalyticsState(enabled=False, reports=sent))
    store.save(Outbox())
    return dropped


# -- what the device measured -------------------------------------------------------------


def _day_of(iso: str | None) -> int | None:
    return None if iso is None else dt.date.fromisoformat(iso).toordinal() - 719_163


def observe(
    store: AgentStore, day: int, checks: list[CheckRecord] | None = None
) -> DailyObservation:
    """The day's metrics from the device's own records (SPEC AGG-10).

    ``risk_level``: the highest of the day's checks (0 no exposure, 1 low, 2 high);
    ``notified``: the first notification was shown that day, with the days since the
    exposure the day's last check found; ``reported_positive``: keys published that day.
    """
    if checks is None:
        checks = store.checks()
    todays = [c for c in checks if utc_day(float(c.at if c.at is not None else -1)) == day]
    todays = [c for c in todays if not c.error]
    level = 0
    for c in todays:
        level = max(level, 2 if c.risk_level == "high" else int(bool(c.last_exposure_day)))
    notified_at = store.load(Notified).at
    notified = notified_at is not None and utc_day(float(notified_at)) == day
    since = None
    if notified:
        last = next((_day_of(c.last_exposure_day) for c in reversed(todays)), None)
        since = min(13, max(0, day - (day if last is None else last)))
    published = store.load(ReportState).published_at
    return DailyObservation(
        notified=notified,
        max_risk_level=level,
        days_exposure_to_notification=since,
        reported_positive=published is not None and utc_day(float(published)) == day,
    )


# -- the step -----------------------------------------------------------------------------


def _due_days(device: Participant, now: float) -> list[int]:
    state = _state(device.store)
    if not state.enabled:
        return []
    first = utc_day(now) - device.config.retention_days + 1
    # No cursor: nothing kept has been prepared (the retention purge drops a cursor
    # older than what is kept, agent.retention).
    through = int(state.prepared_through if state.prepared_through is not None else first - 1)
    return list(range(max(through + 1, first), utc_day(now)))


def _sendable(store: AgentStore, now: float) -> list[str]:
    if not _state(store).enabled:
        return []
    return [k for k, box in _outbox(store).items() if box.due <= now and box.next_try <= now]


def _spent(state: AnalyticsState, metric: str, day: int, period: int) -> float:
    return sum(
        float(r.epsilon)
        for r in state.reports
        if r.metric == metric and day - period < int(r.day) <= day
    )


def _prepare(
    agents: Sequence[Participant],
    indexes: list[int],
    config: AnalyticsConfig,
    now: float,
    result: StepResult,
) -> None:
    """Seal every due (day, metric) of ``indexes``' agents, batched per (day, metric)."""
    wanted: dict[int, list[int]] = {}
    for i in indexes:
        for day in _due_days(agents[i], now):
            wanted.setdefault(day, []).append(i)
    for day, members in sorted(wanted.items()):
        states = {i: _state(agents[i].store) for i in members}
        values = {i: encode_daily(observe(agents[i].store, day)) for i in members}
        sealed: dict[int, dict[str, SealedReport]] = {i: {} for i in members}
        for metric, params in config.metrics.items():
            ok = [
                i
                for i in members
                if _spent(states[i], metric, day, config.budget_period_days)
                + params.epsilon_per_day
                <= params.budget + 1e-9
            ]
            result.refused_budget += len(members) - len(ok)
            if not ok:
                continue
            reports = make_reports(
                metric,
                [values[i][metric] for i in ok],
                day,
                config.leader.public_key,
                config.helper.public_key,
            )
            for i, report in zip(ok, reports, strict=True):
                sealed[i][metric] = report
        for i in members:
            _queue(agents[i], states[i], day, values[i], sealed[i], config)
            result.prepared.append(Prepared(i, day, values[i]))


def _queue(
    agent: Participant,
    state: AnalyticsState,
    day: int,
    values: dict[str, int],
    sealed: dict[str, SealedReport],
    config: AnalyticsConfig,
) -> None:
    """Keep ``day``'s sealed reports, each due at its own random time of the next day."""
    boxes = _outbox(agent.store)
    next_day = float((day + 1) * SECONDS_PER_DAY)
    for metric, report in sealed.items():
        due = next_day + agent.rng.random() * SECONDS_PER_DAY
        boxes[_key(day, metric)] = SealedBox(
            leader=base64.b64encode(report.leader_share).decode(),
            helper=base64.b64encode(report.helper_share).decode(),
            due=due,
            next_try=due,
        )
        state.reports.append(
            AnalyticsReport(
                day=day,
                metric=metric,
                value=values[metric],
                epsilon=config.metrics[metric].epsilon_per_day,
                due=due,
            )
        )
    state.prepared_through = day
    agent.store.save(Outbox(boxes))
    agent.store.save(state)


def _post(client: httpx.Client, url: str, reports: list[SealedReport]) -> int | None:
    """The upload's HTTP status, or None when no answer came."""
    try:
        return client.post(url, json=upload_body(reports)).status_code
    except httpx.HTTPError:
        return None


def _send(
    config: AgentConfig,
    store: AgentStore,
    keys: list[str],
    now: float,
    client: httpx.Client,
    result: StepResult,
) -> None:
    """Upload ``keys``' reports (due now), in requests of at most eight."""
    state, boxes = _state(store), _outbox(store)
    url = f"{(config.key_server_url or '').rstrip('/')}/v1/analytics/reports"
    outcome: dict[str, str] = {}
    for start in range(0, len(keys), _PER_REQUEST):
        chunk = keys[start : start + _PER_REQUEST]
        reports = []
        for k in chunk:
            day, metric = k.split("/")
            b = boxes[k]
            reports.append(
                SealedReport(
                    metric, int(day), base64.b64decode(b.leader), base64.b64decode(b.helper)
                )
            )
        status_code = _post(client, url, reports)
        if status_code == 202:
            verdict = "sent"
        elif status_code is None or status_code == 429 or status_code >= 500:
            verdict = "retry"
        else:
            verdict = f"refused by the key server (HTTP {status_code})"
        outcome.update(dict.fromkeys(chunk, verdict))
    for k, verdict in outcome.items():
        if verdict == "retry":
            box = boxes[k]
            box.attempts += 1
            box.next_try = now + min(RETRY_MAX_S, RETRY_FIRST_S * 4 ** (box.attempts - 1))
            result.failed += 1
            continue
        del boxes[k]
        day, metric = k.split("/")
        for r in state.reports:
            if r.day == int(day) and r.metric == metric:
                r.sent_at = now if verdict == "sent" else None
                if verdict != "sent":
                    r.given_up = verdict
        if verdict == "sent":
            result.sent += 1
        else:
            log.error("analytics report %s %s", k, verdict)
    failed = sum(v == "retry" for v in outcome.values())
    state.error = f"{failed} upload(s) failed; tried again later" if failed else None
    store.save(Outbox(boxes))
    store.save(state)


def _stop(
    agents: Sequence[Participant], indexes: list[int], message: str, result: StepResult
) -> None:
    log.error("analytics: %s", message)
    result.error = message
    for i in indexes:
        state = _state(agents[i].store)
        state.error = message
        agents[i].store.save(state)


def run_step(
    agents: Sequence[Participant], now: float, client: httpx.Client | None = None
) -> StepResult:
    """Prepare what is due and upload what is due, for each of ``agents`` (see above)."""
    result = StepResult()
    busy = [i for i, a in enumerate(agents) if _due_days(a, now) or _sendable(a.store, now)]
    if not busy:
        return result
    own = client is None
    http = client or httpx.Client(timeout=agents[busy[0]].config.http_timeout_s)
    try:
        try:
            config = fetch_config(agents[busy[0]].config, http)
        except AnalyticsConfigError as exc:
            _stop(agents, busy, str(exc), result)
            return result
        pinned = [i for i in busy if _state(agents[i].store).pin == config.pin()]
        if len(pinned) < len(busy):
            _stop(
                agents,
                [i for i in busy if i not in set(pinned)],
                "the published aggregator keys differ from the ones this device pinned: "
                "nothing is sent (run `phe-trace agent analytics on` to accept them)",
                result,
            )
        _prepare(agents, pinned, config, now, result)
        for i in pinned:
            keys = _sendable(agents[i].store, now)
            if keys:
                _send(agents[i].config, agents[i].store, keys, now, http, result)
    finally:
        if own:
            http.close()
    return result


# -- status, export ------------------------------------------------------------


def status(config: AgentConfig, store: AgentStore, now: float) -> dict[str, Any]:
    """Participation, the pinned aggregators and the ε spent per metric (``status``)."""
    state = _state(store)
    params = state.params or {}
    period = int(params.get("period_days", config.retention_days))
    reports = state.reports
    today = utc_day(now)
    return {
        "participating": state.enabled,
        "leader": (state.pin or {}).get("leader_url"),
        "helper": (state.pin or {}).get("helper_url"),
        "epsilon_spent": {
            m: round(_spent(state, m, today, period), 6) for m in params.get("metrics", {})
        },
        "epsilon_budget": {m: v[1] for m, v in params.get("metrics", {}).items()},
        "budget_period_days": period if params else None,
        "reports_sent": sum(r.sent_at is not None for r in reports),
        "reports_waiting": len(_outbox(store)) if state.enabled else 0,
        "error": state.error,
    }
