"""The health authority's aggregate view: Prio3 daily metrics, two aggregators, DP releases.

Every app user's device uploads, once per simulated day, its four daily metrics
(:data:`phe_trace.analytics.METRICS`: notified, risk-level histogram, days from exposure to
notification, reported positive), each sharded with Prio3 and sealed to the two
aggregators' keys (:func:`phe_trace.analytics.daily_reports_batch`), in one
``POST /v1/analytics/reports`` to the real key server. Sharding is the device's work, so
it runs in a process pool beside the simulation (each worker plays devices and posts over
HTTP with one connection of its own), not in the simulation's own process.

Two real aggregators (:mod:`phe_trace.aggregator`) run in the demo's temporary directory,
each with its own X25519 key, SQLite file and uvicorn server on a loopback port; they share
only the Prio3 verification key and the peer token. The helper runs in a process of its
own. Once a day's uploads are in, the leader collects each of its metrics in a collector
process of its own: both pull their boxes from the key server, prepare with each other
over HTTP, each adds its own discrete-Laplace noise, and the leader releases — or, below
the minimum batch, releases nothing. The simulation's process keeps only the key server
(on the simulated clock) and the leader's read-only view, so the aggregators' work does
not hold up the simulated days. The view is read back from the leader's public
``GET /v1/aggregates?day=`` and set beside what the simulation knows to be true.
"""

from __future__ import annotations

import os
import secrets
import signal
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from multiprocessing import get_context
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx

from phe_trace.aggregator import (
    Aggregator,
    AggregatorSettings,
    BatchTooSmall,
    PeerError,
    create_app,
)
from phe_trace.analytics import (
    METRICS,
    DailyObservation,
    daily_reports_batch,
    encode_daily,
    upload_body,
)
from phe_trace.analytics.dp import noise_std

from .errors import SimBackendError

__all__ = ["AggregateView", "true_values"]

#: Devices per task handed to a sharding worker.
_CHUNK = 50
#: Seconds the helper's process may take to start serving.
_HELPER_START_S = 60.0

#: A sharding worker's HTTP client, made at its first task and kept for the next ones.
_WORKER_CLIENT: httpx.Client | None = None


def true_values(observations: list[DailyObservation]) -> dict[str, list[int]]:
    """Plain per-metric totals of what the devices measured (counts: one value)."""
    out = {name: [0] * m.length for name, m in METRICS.items()}
    for obs in observations:
        for name, value in encode_daily(obs).items():
            if METRICS[name].length == 1:
                out[name][0] += value
            else:
                out[name][value] += 1
    return out


def _shard_and_upload(
    ingest_url: str,
    keys: tuple[bytes, bytes],
    day: int,
    observations: list[DailyObservation],
) -> int:
    """A worker plays ``observations``' devices: each shards, seals and posts its own body.

    The devices' sharding is computed together (:func:`daily_reports_batch`: the same
    reports, each device with its own nonces and randomness, the arithmetic batched),
    then each device posts its own body as it would from its own phone.
    """
    global _WORKER_CLIENT
    if _WORKER_CLIENT is None:
        _WORKER_CLIENT = httpx.Client(timeout=60.0)
    client = _WORKER_CLIENT
    for reports in daily_reports_batch(observations, day, *keys):
        body = upload_body(reports)
        resp = client.post(f"{ingest_url}/v1/analytics/reports", json=body)
        if resp.status_code != 202:
            raise SimBackendError(f"analytics upload refused: HTTP {resp.status_code}")
    return len(observations)


def _ignore_ctrl_c() -> None:
    """Children of the demo leave Ctrl-C to the demo, which stops them in order.

    A terminal sends SIGINT to the whole process group; without this each child would
    print its own KeyboardInterrupt traceback while the demo shuts down.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@contextmanager
def _children_born_ignoring_ctrl_c() -> Iterator[None]:
    """Processes started inside this block ignore SIGINT from their first instruction.

    An ignored SIGINT survives ``exec`` and Python then installs no KeyboardInterrupt
    handler, so a Ctrl-C that arrives while a child is still importing cannot print a
    traceback either. Outside the main thread signal dispositions cannot change: no-op.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _serve_helper(settings: AggregatorSettings, conn: Connection) -> None:
    """The helper's process: serve it on a loopback port, send the URL, stop when told."""
    from .live import _Uvicorn

    _ignore_ctrl_c()
    helper = Aggregator(settings)
    server = _Uvicorn(create_app(helper))
    try:
        with suppress(OSError):  # the demo stopped before the helper served: just end
            conn.send(server.start())
            with suppress(EOFError):
                conn.recv()  # "stop", or the demo's end closing the pipe
    finally:
        server.stop()
        helper.close()


def _collect_day(settings: AggregatorSettings, day: int) -> dict[str, str]:
    """The leader's collection of every metric of ``day``; metric → why not released."""
    leader = Aggregator(settings)
    refused: dict[str, str] = {}
    try:
        for metric in METRICS:
            try:
                leader.collect(day, metric)
            except BatchTooSmall as exc:
                refused[metric] = str(exc)
            except PeerError as exc:  # shown in the report; the demo's other days go on
                refused[metric] = f"collection failed: {exc}"
    finally:
        leader.close()
    return refused


class AggregateView:
    """Leader and helper aggregators for one demo run, and the devices' daily uploads."""

    def __init__(
        self,
        tmp: Path,
        ingest_url: str,
        epoch: int,
        serve: Callable[[Any], str],
        min_batch_size: int,
        epsilon: float,
        workers: int | None = None,
    ) -> None:
        from nacl.public import PrivateKey

        self.ingest_url = ingest_url.rstrip("/")
        self.epoch = epoch
        self.min_batch_size = min_batch_size
        self.epsilon = epsilon
        tmp.mkdir(parents=True, exist_ok=True)
        verify_key = secrets.token_hex(32)  # shared by the two aggregators only
        peer_token = secrets.token_urlsafe(24)

        def settings(role: str, helper_url: str | None) -> AggregatorSettings:
            return AggregatorSettings(
                role=role,  # type: ignore[arg-type]
                database_url=f"sqlite:///{tmp / f'aggregator-{role}.sqlite3'}",
                private_key=bytes(PrivateKey.generate()).hex(),  # type: ignore[arg-type]
                verify_key=verify_key,  # type: ignore[arg-type]
                peer_token=peer_token,  # type: ignore[arg-type]
                helper_url=helper_url,
                ingest_url=self.ingest_url,
                min_batch_size=min_batch_size,
                epsilon=epsilon,
                daily_budget=epsilon * len(METRICS),
            )

        cpus = os.cpu_count() or 1
        pool_size = workers or max(1, min(4, cpus))
        self._pool = ProcessPoolExecutor(
            max_workers=pool_size,
            mp_context=get_context("spawn"),
            initializer=_ignore_ctrl_c,
        )
        self._pending: list[Future[int]] = []
        #: The leader collects in one process of its own, one day after the other.
        self._collector = ProcessPoolExecutor(
            max_workers=1, mp_context=get_context("spawn"), initializer=_ignore_ctrl_c
        )
        self._uploads: dict[int, list[Future[int]]] = {}
        self._collecting: dict[int, Future[dict[str, str]]] = {}
        #: simulated day → (UTC day number, devices, true totals per metric)
        self.days: dict[int, tuple[int, int, dict[str, list[int]]]] = {}
        self.leader: Aggregator | None = None
        helper_settings = settings("helper", None)
        self._helper_conn, child = get_context("spawn").Pipe()
        self._helper = get_context("spawn").Process(
            target=_serve_helper, args=(helper_settings, child), daemon=True, name="demo-helper"
        )
        try:
            with _children_born_ignoring_ctrl_c():
                self._helper.start()
                # Every pool worker is started now (one quick task per worker), so none is
                # born later outside this block.
                for pool, n in ((self._pool, pool_size), (self._collector, 1)):
                    for _ in range(n):
                        pool.submit(os.getpid)
            child.close()
            self.helper_url = self._helper_started()
            self._leader_settings = settings("leader", self.helper_url)
            self.leader = Aggregator(self._leader_settings)
            self.leader_url = serve(create_app(self.leader))
        except BaseException:
            self.close()
            raise
        self.keys = (
            self.leader.public_key(),
            bytes(PrivateKey(helper_settings.private_key_bytes()).public_key),
        )

    def day_number(self, day: int) -> int:
        return (self.epoch + day * 86_400) // 86_400

    def upload_day(self, day: int, observations: list[DailyObservation]) -> None:
        """Every device's four reports for simulated ``day`` (sharded in the pool)."""
        number = self.day_number(day)
        self.days[day] = (number, len(observations), true_values(observations))
        futures = [
            self._pool.submit(
                _shard_and_upload, self.ingest_url, self.keys, number, observations[i : i + _CHUNK]
            )
            for i in range(0, len(observations), _CHUNK)
        ]
        self._pending += futures
        self._uploads[day] = futures
        self._collect_ready(wait=False)

    def _collect_ready(self, wait: bool) -> None:
        """Start the leader's collection of each day whose uploads are all in."""
        for day, futures in sorted(self._uploads.items()):
            if day in self._collecting:
                continue
            if not wait and not all(f.done() for f in futures):
                break
            for f in futures:
                f.result()  # an upload that failed ends the run here
            number = self.day_number(day)
            self._collecting[day] = self._collector.submit(
                _collect_day, self._leader_settings, number
            )

    def collect(self) -> dict[str, Any]:
        """Wait for the uploads, let the leader collect every (day, metric), read the view."""
        uploaded = sum(f.result() for f in self._pending)
        self._pending.clear()
        self._collect_ready(wait=True)
        refused: dict[tuple[int, str], str] = {}
        for day, future in sorted(self._collecting.items()):
            for metric, why in future.result().items():
                refused[(self.day_number(day), metric)] = why
        std = noise_std(self.epsilon, draws=2)
        days = []
        errors: dict[str, list[int]] = {m: [] for m in METRICS}
        with httpx.Client(timeout=60.0) as client:
            for day, (number, devices, truth) in sorted(self.days.items()):
                resp = client.get(f"{self.leader_url}/v1/aggregates", params={"day": number})
                if resp.status_code != 200:
                    raise SimBackendError(f"the leader's aggregates: HTTP {resp.status_code}")
                published = {a["metric"]: a for a in resp.json()["aggregates"]}
                metrics: dict[str, Any] = {}
                for metric in METRICS:
                    entry: dict[str, Any] = {"true": truth[metric]}
                    got = published.get(metric)
                    if got is None:
                        entry["released"] = None
                        reason = refused.get((number, metric))
                        entry["status"] = (
                            "not released"
                            if reason is None
                            else f"not released ({reason})"
                            if reason.startswith("collection failed")
                            else f"not released (below minimum batch {self.min_batch_size})"
                        )
                    else:
                        error = [
                            abs(int(r) - t)
                            for r, t in zip(got["values"], truth[metric], strict=True)
                        ]
                        errors[metric] += error
                        entry.update(
                            status="released",
                            released=got["values"],
                            epsilon=got["epsilon"],
                            report_count=got["report_count"],
                            abs_error=error,
                        )
                    metrics[metric] = entry
                date = datetime.fromtimestamp(number * 86_400, UTC).date().isoformat()
                days.append(
                    {"day": day, "date": date, "utc_day_number": number, "devices": devices}
                    | {"metrics": metrics}
                )
        return {
            "how": (
                "each app user's device uploads its four daily metrics once per simulated day, "
                "Prio3-sharded and sealed to the two aggregators' keys (phe_trace.analytics), "
                "through the key server's POST /v1/analytics/reports; a leader and a helper "
                "aggregator (phe_trace.aggregator, each its own keys, SQLite file and HTTP "
                "server) prepare over HTTP, each adds discrete-Laplace noise to its aggregate "
                "share, and the leader publishes at GET /v1/aggregates; the true values are "
                "the simulation's plain totals of what the devices measured"
            ),
            "metrics": {
                "notified": "devices that showed a (first) exposure notification that day",
                "risk_level": "histogram of the day's check: 0 no match, 1 low, 2 high risk",
                "days_to_notification": (
                    "histogram of days from the latest exposure to the notification; "
                    "bucket 14 = not notified that day"
                ),
                "reported_positive": "devices that published their keys that day",
            },
            "min_batch_size": self.min_batch_size,
            "epsilon_per_metric_per_day": self.epsilon,
            "epsilon_per_device_per_day": self.epsilon * len(METRICS),
            "noise": (
                f"each aggregator adds one discrete-Laplace draw of scale 1/ε = "
                f"{1 / self.epsilon:g} (sensitivity 1: one report per device, metric and day); "
                f"std of a released value {std:.3f}"
            ),
            "noise_std": round(std, 4),
            "choice": (
                f"minimum batch {self.min_batch_size} and ε {self.epsilon:g} per metric and day "
                "(the aggregators' defaults are 100 and 1.0): every app user uploads every "
                "metric every day, zeros included, so a day's batch is the number of "
                "participating devices (about 500 in the default demo of 1,000 people at "
                "uptake 0.5), well above the minimum; a smaller city's days stay unreleased"
            ),
            "sharding": (
                "devices' Prio3 sharding runs in a process pool beside the simulation "
                f"(only app users upload); {uploaded} device-days uploaded; the leader "
                "collects each day in a process of its own once the day's uploads are in"
            ),
            "mean_abs_error": {
                m: (round(sum(e) / len(e), 3) if e else None) for m, e in errors.items()
            },
            "days": days,
        }

    def close(self) -> None:
        for future in self._pending:
            future.cancel()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._collector.shutdown(wait=True, cancel_futures=True)
        if self.leader is not None:
            self.leader.close()
            self.leader = None
        self._stop_helper()

    def _helper_started(self) -> str:
        """The helper's URL, once its process serves (or an error if it never does)."""
        try:
            if self._helper_conn.poll(_HELPER_START_S):
                return str(self._helper_conn.recv())
        except (EOFError, OSError):
            pass  # the process ended before it served
        raise SimBackendError("the helper aggregator's process did not start serving")

    def _stop_helper(self) -> None:
        if self._helper_conn.closed:
            return
        with suppress(OSError):
            self._helper_conn.send("stop")
        self._helper_conn.close()
        if self._helper.pid is None:
            return  # never started
        self._helper.join(timeout=20)
        if self._helper.is_alive():
            self._helper.kill()
            self._helper.join(timeout=5)
