"""The aggregation protocol between leader and helper (SPEC AGG-19 … AGG-24).

For one (day, metric):

1. **Pull.** Each aggregator fetches its sealed boxes from the key server's
   ``/v1/analytics/shares``, opens them with its private key and stores its share; a box
   that does not open, or repeats a nonce, is dropped.
2. **Prepare.** The leader runs ``prep_init`` on its pending shares (batched) and sends
   ``(report id, leader prep share)`` to the helper's ``/v1/aggregator/prepare``. The
   helper runs its own ``prep_init``, combines both prep shares, decides, keeps the
   output share of each accepted report and answers ``(report id, ok, prep message)``.
   The leader finishes with ``prep_next``. A report is prepared at most once.
3. **Aggregate.** If at least ``min_batch_size`` reports were accepted, the leader asks the
   helper's ``/v1/aggregator/aggregate_share`` for the sum over exactly that set of
   report ids. The helper adds its own discrete-Laplace noise to its aggregate share and
   answers once per (day, metric), never below the minimum batch.
4. **Release.** The leader adds its own noise to its aggregate share, unshards, charges
   the day's ε budget and publishes the noisy values with ε, the report count, the noise's
   standard deviation and a 95 % interval per value (AGG-39). A (day, metric) collected
   below the minimum batch is noted as withheld and published as not released (AGG-36).
"""

from __future__ import annotations

import base64
import json
import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy.engine import Engine

from phe_trace.analytics import ReportRejectedError
from phe_trace.analytics.batch import prep_init_batch, prep_shares_to_prep_batch
from phe_trace.analytics.dp import (
    PrivacyLedger,
    check_batch_size,
    interval_halfwidth,
    laplace_noise,
    noise_std,
)
from phe_trace.analytics.errors import AnalyticsError, EncodingError, PrivacyBudgetError
from phe_trace.analytics.metrics import METRICS, context_for
from phe_trace.analytics.prio3 import PrepShare, Prio3
from phe_trace.analytics.reports import open_share

from . import queries
from .errors import BatchTooSmall, PeerError, ProtocolViolation
from .settings import AggregatorSettings
from .storage import ACCEPTED, PENDING, REJECTED, create_engine_for

__all__ = ["Aggregator", "Release", "Withheld"]

log = logging.getLogger("phe_trace.aggregator")
#: Boxes per page fetched from the key server, and reports per prepare request.
_PAGE = 2000
#: The helper answers a pull once it has fetched and opened the whole day's boxes, which
#: takes longer than any other request as the day grows.
_PULL_TIMEOUT = httpx.Timeout(60.0, read=900.0)
#: A page fetch that times out, cannot connect or meets a 502/503/504 is tried again after
#: these pauses (seconds); the cursor makes a repeated page harmless.
_FETCH_RETRY_PAUSES = (1.0, 3.0, 9.0)
_TRANSIENT_STATUS = frozenset({502, 503, 504})
#: What aggregation reads of an accepted report.
_AGGREGATE_COLUMNS = queries.AGGREGATE_COLUMNS
#: What preparation reads of a pending report.
_PREPARE_COLUMNS = queries.PREPARE_COLUMNS


@dataclass(frozen=True)
class Release:
    """A published, differentially private aggregate of one metric on one day."""

    day: int
    metric: str
    values: list[int]
    epsilon: float
    report_count: int
    noise_std: float

    @property
    def interval_halfwidth(self) -> int:
        """h of the 95 % interval ``[value − h, value + h]`` (two noise draws, AGG-39)."""
        return interval_halfwidth(self.epsilon, draws=2)

    def to_json(self) -> dict[str, Any]:
        h = self.interval_halfwidth
        return {
            "day": self.day,
            "date": _date(self.day),
            "metric": self.metric,
            "values": self.values,
            "epsilon": self.epsilon,
            "report_count": self.report_count,
            "noise_std": round(self.noise_std, 4),
            "interval_95": [[max(0, v - h), v + h] for v in self.values],
        }


@dataclass(frozen=True)
class Withheld:
    """A (day, metric) the leader collected and did not release: below the minimum batch."""

    day: int
    metric: str
    min_batch_size: int

    def to_json(self) -> dict[str, Any]:
        return {
            "day": self.day,
            "date": _date(self.day),
            "metric": self.metric,
            "min_batch_size": self.min_batch_size,
        }


def _date(day: int) -> str:
    import datetime as dt

    return (dt.date(1970, 1, 1) + dt.timedelta(days=day)).isoformat()


def _signed(x: int, q: int) -> int:
    return x if x <= q // 2 else x - q


def _vdaf(metric: str) -> Prio3[Any, Any]:
    spec = METRICS.get(metric)
    if spec is None:
        raise ProtocolViolation(f"unknown metric {metric!r}")
    return spec.vdaf()


class Aggregator:
    """One aggregator (leader or helper): its keys, database and peer connections."""

    def __init__(
        self,
        settings: AggregatorSettings,
        engine: Engine | None = None,
        http: httpx.Client | None = None,
    ) -> None:
        settings.check()
        self.settings = settings
        self.agg_id = settings.agg_id
        self.engine = engine or create_engine_for(settings.database_url)
        self.http = http or httpx.Client(timeout=60.0)
        self._private_key = settings.private_key_bytes()
        self._verify_key = settings.verify_key_bytes()

    def close(self) -> None:
        """Release the HTTP client and database connections."""
        self.http.close()
        self.engine.dispose()

    def public_key(self) -> bytes:
        """This aggregator's X25519 public key (what devices seal to)."""
        from nacl.public import PrivateKey

        return bytes(PrivateKey(self._private_key).public_key)

    # --- 1. pull ---------------------------------------------------------------------

    def pull(self, day: int, metric: str) -> int:
        """Fetch, open and store new boxes for (day, metric); returns how many were kept."""
        role = self.settings.role
        headers = {}
        if self.settings.ingest_token is not None:
            headers["Authorization"] = f"Bearer {self.settings.ingest_token.get_secret_value()}"
        with self.engine.connect() as conn:
            after = queries.fetch_cursor(conn, day, metric) or 0
        kept = 0
        seen = self._seen(day, metric)  # read once: a page checks only against memory
        while True:
            page = self._fetch_page(
                {"role": role, "day": day, "metric": metric, "after": after, "limit": _PAGE},
                headers,
            )
            kept += self._store_boxes(day, metric, page["shares"], seen)
            after = int(page["next_after"])
            self._save_cursor(day, metric, after)
            if len(page["shares"]) < _PAGE:
                return kept

    def _fetch_page(self, params: dict[str, Any], headers: dict[str, str]) -> Any:
        """One page of boxes from the key server, retrying what is transient."""
        url = f"{self.settings.ingest_url.rstrip('/')}/v1/analytics/shares"
        for attempt, pause in enumerate((*_FETCH_RETRY_PAUSES, None)):
            try:
                resp = self.http.get(url, params=params, headers=headers)
                if resp.status_code in _TRANSIENT_STATUS and pause is not None:
                    raise httpx.HTTPStatusError("transient", request=resp.request, response=resp)
                resp.raise_for_status()
                return resp.json()
            except (httpx.TimeoutException, httpx.TransportError, httpx.HTTPStatusError) as exc:
                transient = not isinstance(exc, httpx.HTTPStatusError) or (
                    exc.response.status_code in _TRANSIENT_STATUS
                )
                if not transient or pause is None:
                    raise PeerError(f"cannot fetch shares from the key server: {exc}") from None
                log.warning(
                    "fetching shares from the key server failed (%s); try %d again in %.0f s",
                    type(exc).__name__,
                    attempt + 2,
                    pause,
                )
                time.sleep(pause)
            except ValueError as exc:
                raise PeerError(f"cannot fetch shares from the key server: {exc}") from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _store_boxes(
        self,
        day: int,
        metric: str,
        items: list[dict[str, str]],
        seen: tuple[set[str], set[bytes]],
    ) -> int:
        """Open and store a page of boxes; ``seen`` (ids, nonces stored) is kept current."""
        _vdaf(metric)  # refuses an unknown metric
        rows = []
        for item in items:
            try:
                opened = open_share(
                    self._private_key, self.agg_id, metric, day, base64.b64decode(item["share"])
                )
            except (ReportRejectedError, ValueError):
                continue
            rows.append(
                {
                    "report_id": item["report_id"],
                    "day": day,
                    "metric": metric,
                    "nonce": opened.nonce,
                    "public_share": opened.encoded_public_share,
                    "input_share": opened.encoded_input_share,
                    "status": PENDING,
                }
            )
        ids, nonces = seen
        with self.engine.begin() as conn:
            fresh = []
            for row in rows:
                rid, nonce = str(row["report_id"]), row["nonce"]
                assert isinstance(nonce, bytes)
                if rid in ids or nonce in nonces:
                    continue  # already stored, or a replayed nonce (AGG-20)
                ids.add(rid)
                nonces.add(nonce)
                fresh.append(row)
            if fresh:
                queries.insert_shares(conn, fresh)
        return len(fresh)

    def _seen(self, day: int, metric: str) -> tuple[set[str], set[bytes]]:
        """The report ids and nonces already stored for (day, metric)."""
        with self.engine.connect() as conn:
            stored = queries.stored_ids_and_nonces(conn, day, metric)
        return {str(r) for r, _ in stored}, {bytes(n) for _, n in stored}

    def _save_cursor(self, day: int, metric: str, after: int) -> None:
        with self.engine.begin() as conn:
            queries.save_cursor(conn, day, metric, after)

    # --- 2. prepare ------------------------------------------------------------------

    def _load(
        self,
        day: int,
        metric: str,
        report_ids: list[str] | None,
        status: int,
        columns: tuple[Any, ...] = queries.ALL_SHARE_COLUMNS,
    ) -> list[Any]:
        with self.engine.connect() as conn:
            return queries.load_shares(conn, day, metric, report_ids, status, columns)

    def _prep_init(
        self, vdaf: Prio3[Any, Any], day: int, metric: str, rows: list[Any]
    ) -> list[Any]:
        return prep_init_batch(
            vdaf,
            self._verify_key,
            context_for(metric, day),
            self.agg_id,
            [bytes(r.nonce) for r in rows],
            [vdaf.decode_public_share(bytes(r.public_share)) for r in rows],
            [vdaf.decode_input_share(self.agg_id, bytes(r.input_share)) for r in rows],
        )

    def _set_status(self, updates: list[tuple[str, int, bytes | None]]) -> None:
        if not updates:
            return
        with self.engine.begin() as conn:
            queries.set_status(conn, updates)

    def handle_prepare(
        self, day: int, metric: str, items: list[tuple[str, bytes]]
    ) -> list[tuple[str, bool, bytes | None]]:
        """Helper: finish preparation of the leader's reports (step 2)."""
        vdaf = _vdaf(metric)
        wanted = [rid for rid, _ in items]
        rows = {r.report_id: r for r in self._load(day, metric, wanted, PENDING, _PREPARE_COLUMNS)}
        if len(rows) < len(set(wanted)):
            self.pull(day, metric)
            rows = {
                r.report_id: r for r in self._load(day, metric, wanted, PENDING, _PREPARE_COLUMNS)
            }
        known = [(rid, share) for rid, share in items if rid in rows]
        ordered = [rows[rid] for rid, _ in known]
        inits = self._prep_init(vdaf, day, metric, ordered)
        pairs: list[list[PrepShare]] = []
        for (_, leader_bytes), init in zip(known, inits, strict=True):
            try:
                leader_ps = vdaf.decode_prep_share(leader_bytes)
            except EncodingError:
                leader_ps = PrepShare([], None)
            pairs.append([leader_ps, init[1]] if init is not None else [])
        decided = prep_shares_to_prep_batch(vdaf, context_for(metric, day), pairs)
        results: dict[str, tuple[bool, bytes | None]] = {}
        updates: list[tuple[str, int, bytes | None]] = []
        for (rid, _), init, (ok, msg) in zip(known, inits, decided, strict=True):
            out = None
            if ok and init is not None:
                try:
                    out = vdaf.prep_next(init[0], msg)
                except ReportRejectedError:
                    ok = False
            ok = ok and out is not None
            results[rid] = (ok, msg if ok else None)
            updates.append(
                (
                    rid,
                    ACCEPTED if ok else REJECTED,
                    vdaf.field.encode_vec(out) if out is not None else None,
                )
            )
        self._set_status(updates)
        return [(rid, *results.get(rid, (False, None))) for rid in wanted]

    def _prepare_with_helper(self, day: int, metric: str) -> None:
        """Step 2, pipelined: chunk k+1 is queried here while the helper finishes chunk k."""
        vdaf = _vdaf(metric)
        rows = self._load(day, metric, None, PENDING, _PREPARE_COLUMNS)
        with ThreadPoolExecutor(max_workers=1) as pool:
            inflight: tuple[dict[str, Any], Future[dict[str, Any]]] | None = None
            for start in range(0, len(rows), _PAGE):
                states, send = self._leader_chunk(vdaf, day, metric, rows[start : start + _PAGE])
                body = {"day": day, "metric": metric, "items": send}
                future = pool.submit(self._peer, "prepare", body)
                if inflight is not None:
                    self._finish_chunk(vdaf, *inflight)
                inflight = (states, future)
            if inflight is not None:
                self._finish_chunk(vdaf, *inflight)

    def _leader_chunk(
        self, vdaf: Prio3[Any, Any], day: int, metric: str, chunk: list[Any]
    ) -> tuple[dict[str, Any], list[dict[str, str]]]:
        """prep_init of one chunk: states kept here, prep shares to send to the helper."""
        inits = self._prep_init(vdaf, day, metric, chunk)
        rejected: list[tuple[str, int, bytes | None]] = []
        send = []
        states: dict[str, Any] = {}
        for row, init in zip(chunk, inits, strict=True):
            if init is None:
                rejected.append((row.report_id, REJECTED, None))
                continue
            states[row.report_id] = init[0]
            share = base64.b64encode(vdaf.encode_prep_share(init[1])).decode()
            send.append({"report_id": row.report_id, "prep_share": share})
        self._set_status(rejected)
        return states, send

    def _finish_chunk(
        self, vdaf: Prio3[Any, Any], states: dict[str, Any], future: Future[dict[str, Any]]
    ) -> None:
        """prep_next with the helper's answers; anything unanswered is rejected."""
        answer = future.result()
        updates: list[tuple[str, int, bytes | None]] = []
        for item in answer["results"]:
            rid = item["report_id"]
            if rid not in states:
                continue
            status, out_bytes = REJECTED, None
            if item["ok"]:
                msg = base64.b64decode(item["prep_msg"]) if item["prep_msg"] else None
                try:
                    out_bytes = vdaf.field.encode_vec(vdaf.prep_next(states[rid], msg))
                    status = ACCEPTED
                except ReportRejectedError:
                    pass
            updates.append((rid, status, out_bytes))
            del states[rid]
        updates += [(rid, REJECTED, None) for rid in states]
        self._set_status(updates)

    def _peer(self, endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
        assert self.settings.helper_url is not None
        token = self.settings.peer_token.get_secret_value()
        extra: dict[str, Any] = {"timeout": _PULL_TIMEOUT} if endpoint == "pull" else {}
        try:
            resp = self.http.post(
                f"{self.settings.helper_url.rstrip('/')}/v1/aggregator/{endpoint}",
                json=body,
                headers={"Authorization": f"Bearer {token}"},
                **extra,
            )
        except httpx.HTTPError as exc:
            raise PeerError(f"helper unreachable: {exc}") from None
        if resp.status_code != 200:
            code = resp.json().get("code", "error") if resp.content else "error"
            raise PeerError(f"helper refused {endpoint}: HTTP {resp.status_code} {code}")
        result: dict[str, Any] = resp.json()
        return result

    # --- 3. aggregate ----------------------------------------------------------------

    def _noisy_agg_share(self, vdaf: Prio3[Any, Any], rows: list[Any]) -> list[int]:
        agg = vdaf.field.sum_encoded([bytes(r.out_share) for r in rows], vdaf.flp.output_len)
        noise = laplace_noise(vdaf.flp.output_len, self.settings.epsilon)
        q = vdaf.field.modulus
        return [(a + n) % q for a, n in zip(agg, noise, strict=True)]

    def _record_release(self, day: int, metric: str, count: int, values: list[int] | None) -> None:
        with self.engine.begin() as conn:
            rows = queries.release_epsilons(conn, day)
            ledger = PrivacyLedger(self.settings.daily_budget, {day: {m: e for m, e in rows}})
            try:
                ledger.charge(day, metric, self.settings.epsilon)
            except PrivacyBudgetError as exc:
                raise ProtocolViolation(str(exc)) from None
            queries.insert_release(
                conn,
                day=day,
                metric=metric,
                report_count=count,
                epsilon=self.settings.epsilon,
                values_json=None if values is None else json.dumps(values),
            )

    def handle_aggregate_share(self, day: int, metric: str, report_ids: list[str]) -> bytes:
        """Helper: the noisy aggregate share over exactly ``report_ids`` (step 3), once."""
        vdaf = _vdaf(metric)
        if len(set(report_ids)) != len(report_ids):
            raise ProtocolViolation("repeated report ids")
        try:
            check_batch_size(len(report_ids), self.settings.min_batch_size)
        except PrivacyBudgetError as exc:
            raise BatchTooSmall(str(exc)) from None
        rows = self._load(day, metric, report_ids, ACCEPTED, _AGGREGATE_COLUMNS)
        if len(rows) != len(report_ids):
            raise ProtocolViolation("the report set differs from the reports this helper accepted")
        share = self._noisy_agg_share(vdaf, rows)
        self._record_release(day, metric, len(rows), None)
        return vdaf.encode_agg_share(share)

    # --- 4. collect (leader) -----------------------------------------------------------

    def release(self, day: int, metric: str) -> Release | None:
        """A stored release of (day, metric), if any."""
        with self.engine.connect() as conn:
            row = queries.release_row(conn, day, metric)
        if row is None or row.values_json is None:
            return None
        return Release(
            day,
            metric,
            json.loads(row.values_json),
            row.epsilon,
            row.report_count,
            noise_std(row.epsilon, draws=2),
        )

    def releases(self, day: int | None = None) -> list[Release]:
        with self.engine.connect() as conn:
            keys = queries.released_pairs(conn, day)
        out = [self.release(d, m) for d, m in keys]
        return [r for r in out if r is not None]

    def withheld(self, day: int | None = None) -> list[Withheld]:
        """The (day, metric) pairs collected below the minimum batch and not released since."""
        with self.engine.connect() as conn:
            rows = queries.withheld_rows(conn, day)
        return [Withheld(int(d), str(m), int(n)) for d, m, n in rows]

    def _note_withheld(self, day: int, metric: str) -> None:
        with self.engine.begin() as conn:
            queries.note_withheld(conn, day, metric, self.settings.min_batch_size)

    def collect(self, day: int, metric: str) -> Release:
        """Leader: pull, prepare with the helper, aggregate and release (steps 1-4).

        Raises BatchTooSmall (nothing released, the pair noted as withheld) below the
        minimum batch size.
        """
        if self.settings.role != "leader":
            raise ProtocolViolation("only the leader collects")
        done = self.release(day, metric)
        if done is not None:
            return done
        vdaf = _vdaf(metric)
        with ThreadPoolExecutor(max_workers=1) as pool:
            # The helper fetches its boxes while the leader fetches its own.
            helper_pull = pool.submit(self._peer, "pull", {"day": day, "metric": metric})
            self.pull(day, metric)
            helper_pull.result()
        self._prepare_with_helper(day, metric)
        rows = self._load(day, metric, None, ACCEPTED, _AGGREGATE_COLUMNS)
        try:
            check_batch_size(len(rows), self.settings.min_batch_size)
        except PrivacyBudgetError as exc:
            self._note_withheld(day, metric)
            raise BatchTooSmall(str(exc)) from None
        answer = self._peer(
            "aggregate_share",
            {"day": day, "metric": metric, "report_ids": [r.report_id for r in rows]},
        )
        try:
            helper_share = vdaf.decode_agg_share(base64.b64decode(answer["agg_share"]))
        except (AnalyticsError, KeyError, ValueError):
            raise PeerError("helper sent a malformed aggregate share") from None
        leader_share = self._noisy_agg_share(vdaf, rows)
        q = vdaf.field.modulus
        total = vdaf.unshard([leader_share, helper_share], len(rows))
        values = [_signed(v, q) for v in (total if isinstance(total, list) else [total])]
        self._record_release(day, metric, len(rows), values)
        log.info("released day=%d metric=%s reports=%d", day, metric, len(rows))
        release = self.release(day, metric)
        assert release is not None
        return release
