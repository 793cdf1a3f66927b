"""Benchmark: Prio3 aggregate statistics for the histogram metric (SPEC AGG-9).

Cases (one JSON line each; the metric is ``days_to_notification``, Prio3Histogram with
15 buckets, chunk 4, Field128):

* ``device_shard_seal`` — reports sharded and sealed to both aggregators per second, one
  at a time (``make_report``: what a device does). Baseline: sealing alone (two sealed
  boxes of the same payload size per report, no Prio3) — the floor of the work.
* ``batch_shard_seal`` — the same reports made in batches of 50 devices
  (``make_reports``: what the simulator does for the devices it plays). Baseline: the
  one-at-a-time rate above. ``null`` where the code has no batch path.
* ``pair_open_prepare_aggregate`` — reports opened (sealed box), prepared by BOTH
  aggregators (batched), combined, finished and aggregated, per second for the pair in
  one process. Baseline: the per-report path (scalar XOF, one report at a time) on a
  subset in the same run.
* ``service_collect`` — the real service: boxes in the key server's ingestion table
  (SQLite) served by the key server's router, the helper aggregator on a uvicorn server
  with its own SQLite database, each in a process of its own; the leader (this process)
  pulls over HTTP, prepares with the helper over HTTP, aggregates and releases one
  metric. Baseline: the in-process pair rate above.
* ``day_of_100k_devices`` — seconds for 100,000 reports: ``service`` through the real
  service (measured when ``--service-n 100000``, else projected from the measured service
  rate, ``projected: true``) and ``pair_seconds`` at the one-process rate. Target ≤ 60 s.
  ``cpu_seconds`` gives each process's CPU time for that day and ``cpu_floor_seconds`` the
  least wall time two idle cores could take for it (the busiest process, or the total
  over two cores) — on a shared, loaded machine the wall clock overstates the work.

``cpu_seconds`` elsewhere is this process's CPU time (the service case: by process).

Usage: ``python benchmarks/analytics.py [--n N] [--service-n N] [--quick]``.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

import sqlalchemy as sa
from _common import emit
from fastapi import FastAPI
from nacl.public import PrivateKey, PublicKey, SealedBox

from phe_trace.aggregator import Aggregator, AggregatorSettings, create_app
from phe_trace.analytics.batch import prep_init_batch, prep_shares_to_prep_batch
from phe_trace.analytics.metrics import METRICS, context_for
from phe_trace.analytics.reports import SealedReport, make_report, open_share
from phe_trace.server.analytics_ingest import IngestStore
from phe_trace.server.routers import analytics_ingest
from phe_trace.server.storage import migrate
from phe_trace.serving import serve

try:  # the batched device path; absent in older trees, which this script also measures
    from phe_trace.analytics.reports import make_reports
except ImportError:  # pragma: no cover
    make_reports = None  # type: ignore[assignment]

BENCH = "analytics"
METRIC = "days_to_notification"
DAY = 20000
TARGET_DEVICES = 100_000
TARGET_SECONDS = 60
#: Reports prepared per batch in the one-process case (the service pages its own).
CHUNK = 5000
#: Devices per batch in the batched sharding case (the simulator's task size).
DEVICE_CHUNK = 50
PEER_TOKEN = "bench-peer-token-0123456789"


# --- servers in processes of their own --------------------------------------------------


def _settings(
    tmp: Path, role: str, key: bytes, helper_url: str | None, ingest_url: str
) -> AggregatorSettings:
    return AggregatorSettings(
        role=role,  # type: ignore[arg-type]
        database_url=f"sqlite:///{tmp / (role + '.db')}",
        private_key=key.hex(),  # type: ignore[arg-type]
        verify_key=bytes(32).hex(),  # type: ignore[arg-type]
        peer_token=PEER_TOKEN,  # type: ignore[arg-type]
        helper_url=helper_url,
        ingest_url=ingest_url,
        min_batch_size=1,
    )


def _ingest_app(tmp: Path) -> FastAPI:
    app = FastAPI()
    app.include_router(analytics_ingest.router)
    engine = sa.create_engine(f"sqlite:///{tmp / 'k.db'}")
    migrate(engine)  # the key server's tables, the sealed reports' among them
    app.state.analytics_ingest = IngestStore(engine)
    return app


def _child(kind: str, tmp: str, key: bytes, ingest_url: str, conn: Any) -> None:
    """A server process: ``ingest`` (the key server's router) or ``helper``."""
    path = Path(tmp)
    if kind == "ingest":
        app = _ingest_app(path)
    else:
        app = create_app(Aggregator(_settings(path, "helper", key, None, ingest_url)))
    with serve(app) as url:
        ready = time.process_time()
        conn.send(url)
        conn.recv()  # wait until told to stop
        conn.send(time.process_time() - ready)  # CPU seconds spent serving


@contextmanager
def _process(
    kind: str, tmp: Path, key: bytes, ingest_url: str, cpu: dict[str, float]
) -> Iterator[str]:
    """A server in a process of its own; on exit ``cpu[kind]`` is its serving CPU time."""
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_child, args=(kind, str(tmp), key, ingest_url, child), daemon=True)
    proc.start()
    try:
        yield str(parent.recv())
    finally:
        parent.send("stop")
        cpu[kind] = float(parent.recv())
        proc.join(timeout=20)


def service_collect(
    reports: list[SealedReport], leader: PrivateKey, helper: PrivateKey
) -> tuple[float, dict[str, float]]:
    """Seconds for the leader to collect and release ``reports``, and CPU seconds by role."""
    tmp = Path(tempfile.mkdtemp(prefix="phe-trace-bench-"))
    store = _ingest_app(tmp).state.analytics_ingest
    store.add([(DAY, METRIC, r.leader_share, r.helper_share) for r in reports])
    cpu: dict[str, float] = {}
    with (
        _process("ingest", tmp, b"", "", cpu) as ingest_url,
        _process("helper", tmp, bytes(helper), ingest_url, cpu) as helper_url,
    ):
        leader_agg = Aggregator(_settings(tmp, "leader", bytes(leader), helper_url, ingest_url))
        start, cpu_start = time.perf_counter(), time.process_time()
        release = leader_agg.collect(DAY, METRIC)
        seconds, cpu["leader"] = time.perf_counter() - start, time.process_time() - cpu_start
        leader_agg.close()
    assert release.report_count == len(reports)
    shutil.rmtree(tmp, ignore_errors=True)
    return seconds, cpu


# --- one process: prepare and aggregate ---------------------------------------------------


def _prepare(
    batch: list[SealedReport], keys: tuple[PrivateKey, PrivateKey], verify_key: bytes, batched: bool
) -> list[list[list[int]]]:
    vdaf = METRICS[METRIC].vdaf()
    ctx = context_for(METRIC, DAY)
    opened = [
        [open_share(bytes(k), i, METRIC, DAY, (r.leader_share, r.helper_share)[i]) for r in batch]
        for i, k in enumerate(keys)
    ]
    if batched:
        inits = [
            prep_init_batch(
                vdaf,
                verify_key,
                ctx,
                i,
                [o.nonce for o in opened[i]],
                [o.public_share for o in opened[i]],
                [o.input_share for o in opened[i]],
            )
            for i in range(2)
        ]
        msgs = prep_shares_to_prep_batch(
            vdaf,
            ctx,
            [[a[1], b[1]] for a, b in zip(inits[0], inits[1], strict=True)],  # type: ignore[index]
        )
        return [
            [vdaf.prep_next(inits[i][j][0], msgs[j][1]) for j in range(len(batch))]  # type: ignore[index]
            for i in range(2)
        ]
    outs: list[list[list[int]]] = [[], []]
    for j in range(len(batch)):
        states, shares = [], []
        for i in range(2):
            o = opened[i][j]
            s, p = vdaf.prep_init(verify_key, ctx, i, o.nonce, o.public_share, o.input_share)
            states.append(s)
            shares.append(p)
        msg = vdaf.prep_shares_to_prep(ctx, shares)
        for i in range(2):
            outs[i].append(vdaf.prep_next(states[i], msg))
    return outs


def pair(
    batch: list[SealedReport], keys: tuple[PrivateKey, PrivateKey], verify_key: bytes, batched: bool
) -> list[int]:
    """Both aggregators, in chunks as the service does (bounded memory)."""
    vdaf = METRICS[METRIC].vdaf()
    length = METRICS[METRIC].length
    aggs = [[0] * length, [0] * length]
    for start in range(0, len(batch), CHUNK):
        outs = _prepare(batch[start : start + CHUNK], keys, verify_key, batched)
        aggs = [vdaf.field.vec_add(aggs[i], vdaf.aggregate(outs[i])) for i in range(2)]
    result: list[int] = vdaf.unshard(aggs, len(batch))
    return result


def _timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    start, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - start, time.process_time() - cpu


# --- cases ----------------------------------------------------------------------------


def shard_cases(values: list[int], keys: tuple[bytes, bytes]) -> list[SealedReport]:
    n = len(values)
    reports, shard_s, shard_cpu = _timed(
        lambda: [make_report(METRIC, v, DAY, *keys) for v in values]
    )
    size = len(reports[0].leader_share) - len(SealedBox(PublicKey(keys[0])).encrypt(b""))
    payload = bytes(size)

    def seal_only() -> None:
        for _ in range(n):
            for k in keys:
                SealedBox(PublicKey(k)).encrypt(payload)

    _, seal_s, _ = _timed(seal_only)
    device_rate = n / shard_s
    emit(
        bench=BENCH,
        case="device_shard_seal",
        n=n,
        seconds=round(shard_s, 4),
        rate=round(device_rate, 1),
        unit="reports/s",
        baseline="seal_only_two_boxes",
        baseline_rate=round(n / seal_s, 1),
        ratio=round(seal_s / shard_s, 4),
        cpu_seconds=round(shard_cpu, 3),
    )
    batch_s = batch_cpu = None
    if make_reports is not None:

        def batched() -> list[SealedReport]:
            out: list[SealedReport] = []
            for i in range(0, n, DEVICE_CHUNK):
                out += make_reports(METRIC, values[i : i + DEVICE_CHUNK], DAY, *keys)
            return out

        reports, batch_s, batch_cpu = _timed(batched)
    emit(
        bench=BENCH,
        case="batch_shard_seal",
        n=n,
        seconds=None if batch_s is None else round(batch_s, 4),
        rate=None if batch_s is None else round(n / batch_s, 1),
        unit="reports/s",
        baseline="device_shard_seal",
        baseline_rate=round(device_rate, 1),
        ratio=None if batch_s is None else round(shard_s / batch_s, 3),
        cpu_seconds=None if batch_cpu is None else round(batch_cpu, 3),
        devices_per_batch=DEVICE_CHUNK,
    )
    return list(reports)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=10_000, help="reports sharded and prepared")
    parser.add_argument(
        "--service-n", type=int, default=None, help="reports through the service (default n)"
    )
    parser.add_argument("--quick", action="store_true", help="small run (1,000 reports)")
    args = parser.parse_args()
    n = 1000 if args.quick else args.n
    service_n = args.service_n or n
    leader, helper = PrivateKey.generate(), PrivateKey.generate()
    keys = (bytes(leader.public_key), bytes(helper.public_key))
    length = METRICS[METRIC].length
    values = [i * 7 % length for i in range(max(n, service_n))]

    reports = shard_cases(values[:n], keys)
    if service_n > n:  # more reports for the service only, made the fastest way available
        extra = values[n:service_n]
        if make_reports is None:
            reports += [make_report(METRIC, v, DAY, *keys) for v in extra]
        else:
            reports += make_reports(METRIC, extra, DAY, *keys)

    verify_key = os.urandom(32)
    naive_n = min(n, 300)
    naive_result, naive_s, _ = _timed(
        lambda: pair(reports[:naive_n], (leader, helper), verify_key, batched=False)
    )
    result, batch_s, batch_cpu = _timed(
        lambda: pair(reports[:n], (leader, helper), verify_key, batched=True)
    )
    assert result == [values[:n].count(b) for b in range(length)], "aggregate differs"
    assert naive_result == [values[:naive_n].count(b) for b in range(length)]
    rate = n / batch_s
    emit(
        bench=BENCH,
        case="pair_open_prepare_aggregate",
        n=n,
        seconds=round(batch_s, 4),
        rate=round(rate, 1),
        unit="reports/s",
        baseline=f"per_report_path(n={naive_n})",
        baseline_rate=round(naive_n / naive_s, 1),
        ratio=round(rate / (naive_n / naive_s), 3),
        cpu_seconds=round(batch_cpu, 3),
        cpu_rate=round(n / batch_cpu, 1),
    )

    service_s, cpu = service_collect(reports[:service_n], leader, helper)
    service_rate = service_n / service_s
    emit(
        bench=BENCH,
        case="service_collect",
        n=service_n,
        seconds=round(service_s, 3),
        rate=round(service_rate, 1),
        unit="reports/s",
        baseline="pair_open_prepare_aggregate",
        baseline_rate=round(rate, 1),
        ratio=round(service_rate / rate, 3),
        cpu_seconds={role: round(v, 2) for role, v in sorted(cpu.items())},
        processes="leader (this) + helper + key server, one each",
    )
    # The least wall time two otherwise idle cores could take for the CPU the three
    # processes used (the busiest one, or all of it spread over both cores).
    cpu_floor = max(max(cpu.values()), sum(cpu.values()) / 2)
    projected = service_n != TARGET_DEVICES
    day_s = service_s if not projected else TARGET_DEVICES / service_rate
    emit(
        bench=BENCH,
        case="day_of_100k_devices",
        n=TARGET_DEVICES,
        seconds=round(day_s, 2),
        rate=round(TARGET_DEVICES / day_s, 1),
        unit="reports/s",
        baseline=f"target_{TARGET_SECONDS}s",
        baseline_rate=round(TARGET_DEVICES / TARGET_SECONDS, 1),
        ratio=round(TARGET_SECONDS / day_s, 3),
        through="service (leader + helper over HTTP)",
        projected=projected,
        measured_n=service_n,
        target_met=day_s <= TARGET_SECONDS,
        pair_seconds=round(TARGET_DEVICES / rate, 2),
        pair_projected=n != TARGET_DEVICES,
        cpu_seconds={role: round(v * TARGET_DEVICES / service_n, 2) for role, v in cpu.items()},
        cpu_floor_seconds=round(cpu_floor * TARGET_DEVICES / service_n, 2),
    )


if __name__ == "__main__":
    main()
