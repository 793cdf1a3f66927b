"""The health authority's aggregate view: Prio3 daily metrics, two aggregators, DP releases.

Every app user's device takes part through the agent's own code
(:mod:`phe_trace.agent.analytics`): at day 0 it opts in under the signed configuration
this view publishes on the key server, and after each simulated day the devices run the
agent's daily step together (:func:`phe_trace.agent.analytics.run_step`, one batched call:
sharding batched per (day, metric), every device with its own randomness, pin, budget and
uploads). The step prepares the day's reports and uploads those due, the previous day's,
each at its own time of the day; then that day is complete and is collected.

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

import base64
import json
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

from phe_trace.agent import Agent
from phe_trace.agent import analytics as device_analytics
from phe_trace.aggregator import (
    Aggregator,
    AggregatorSettings,
    BatchTooSmall,
    PeerError,
    create_app,
)
from phe_trace.analytics import METRICS, DailyObservation, encode_daily
from phe_trace.analytics.config import CONFIG_FORMAT
from phe_trace.analytics.dp import noise_std
from phe_trace.serving import LoopbackServer

from .errors import SimBackendError

__all__ = ["AggregateView", "true_values"]

#: Seconds the helper's process may take to start serving.
_HELPER_START_S = 60.0


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


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
    _ignore_ctrl_c()
    helper = Aggregator(settings)
    server = LoopbackServer(
        create_app(helper), lifespan="off", log_level="error", name="demo-helper"
    )
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
    ) -> None:
        from nacl.public import PrivateKey

        self.ingest_url = ingest_url.rstrip("/")
        self.epoch = epoch
        self.min_batch_size = min_batch_size
        self.epsilon = epsilon
        #: Reports the devices uploaded, and the devices themselves (set at day 0).
        self.uploaded = 0
        self._agents: list[Agent] = []
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

        #: The leader collects in one process of its own, one day after the other.
        self._collector = ProcessPoolExecutor(
            max_workers=1, mp_context=get_context("spawn"), initializer=_ignore_ctrl_c
        )
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
                # The collector's worker is started now (one quick task), so it is not
                # born later outside this block.
                self._collector.submit(os.getpid)
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

    def config_document(self, budget_period_days: int) -> bytes:
        """The analytics configuration the health authority publishes (SPEC AGG-25)."""
        doc = {
            "format": CONFIG_FORMAT,
            "leader": {"url": self.leader_url, "public_key": _b64(self.keys[0])},
            "helper": {"url": self.helper_url, "public_key": _b64(self.keys[1])},
            "min_batch_size": self.min_batch_size,
            "budget_period_days": budget_period_days,
            "metrics": {
                m: {"epsilon_per_day": self.epsilon, "budget": self.epsilon * budget_period_days}
                for m in METRICS
            },
        }
        return json.dumps(doc, indent=1).encode()

    def day_ended(
        self,
        day: int,
        agents: list[Agent],
        truth: list[DailyObservation],
        client: httpx.Client,
    ) -> None:
        """Simulated ``day`` is over: the devices' own daily step, batched (SPEC AGG-28).

        The step prepares the day's reports and uploads those due by now, i.e. the
        previous day's (each due at its own time of this day); that day is then
        complete and the leader collects it. ``truth`` is what the simulation knows the
        devices observed, set beside the release.
        """
        now = float(self.epoch + (day + 1) * 86_400)
        if day == 0:
            config = device_analytics.fetch_config(agents[0].config, client)
            for agent in agents:
                device_analytics.enable(agent.store, config, now - 86_400)
        self._agents = agents
        self._step(now, client)
        number = self.day_number(day)
        self.days[day] = (number, len(truth), true_values(truth))
        if day > 0:
            self._collect_day(day - 1)

    def _step(self, now: float, client: httpx.Client) -> None:
        result = device_analytics.run_step(self._agents, now, client)
        if result.error is not None or result.failed:
            raise SimBackendError(f"devices' analytics step: {result.error or 'upload failed'}")
        self.uploaded += result.sent

    def flush(self, client: httpx.Client) -> None:
        """The last day's reports: the devices' step on the day after the run."""
        if not self.days:
            return
        last = max(self.days)
        self._step(float(self.epoch + (last + 2) * 86_400), client)
        self._collect_day(last)

    def _collect_day(self, day: int) -> None:
        """Start the leader's collection of ``day`` (its uploads are all in)."""
        if day not in self._collecting:
            self._collecting[day] = self._collector.submit(
                _collect_day, self._leader_settings, self.day_number(day)
            )

    def collect(self) -> dict[str, Any]:
        """Wait for the uploads, let the leader collect every (day, metric), read the view."""
        uploaded = self.uploaded // len(METRICS)
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
                "each app user's device opts in under the health authority's signed "
                "configuration (GET /v1/analytics/config) and, after each day, derives the "
                "day's four metrics from its own records, Prio3-shards and seals them to the "
                "pinned aggregators' keys and uploads each at its own random time of the next "
                "day through the key server's POST /v1/analytics/reports; a leader and a helper "
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
            "small_counts": (
                f"the noise does not shrink with the count: a released value is the true "
                f"total plus noise of standard deviation {std:.2f} whatever the total, so a "
                f"count of 0 may be released as {round(2 * std)} or -{round(2 * std)}, and "
                "totals smaller than a few standard deviations say little; the interval "
                "shown beside each value holds the true total with 95 % probability"
            ),
            "sharding": (
                "each device runs the agent's own daily step (phe_trace.agent.analytics."
                "run_step, the simulation's devices in one batched call: each device its own "
                "randomness, nonces, pin, budget and uploads); "
                f"{uploaded} device-days uploaded; the leader collects each day in a process "
                "of its own once the day's uploads are in"
            ),
            "mean_abs_error": {
                m: (round(sum(e) / len(e), 3) if e else None) for m, e in errors.items()
            },
            "days": days,
        }

    def close(self) -> None:
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
