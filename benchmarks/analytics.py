"""Benchmark: Prio3 aggregate statistics for the histogram metric (SPEC AGG-9).

Cases (one JSON line each):

* ``device_shard_seal`` — reports sharded (Prio3Histogram, 15 buckets) and sealed to
  both aggregators per second on one core; baseline: plain one-hot summation of the
  same values (what the total would cost without any privacy).
* ``pair_open_prepare_aggregate`` — reports opened (sealed box), prepared by BOTH
  aggregators (batched), combined, finished and aggregated, per second for the pair in
  one process; baseline: the naive per-report path (scalar XOF, one report at a time),
  measured on a subset in the same run.
* ``service_collect`` — the real aggregator service: boxes in the key server's ingestion
  table (SQLite), the helper on a uvicorn server with its own SQLite database, the leader
  pulling over HTTP, preparing with the helper over HTTP, aggregating and releasing one
  metric; baseline: the in-process batched pair rate above.
* ``day_of_100k_devices`` — the time the pair needs for 100,000 reports at the measured
  batched rate (``seconds`` is projected unless ``--n 100000``); target ≤ 60 s.
  ``cpu_seconds`` is the process CPU time: on a shared, loaded machine the wall clock
  overstates the work. Both aggregators run one after the other in this one process; in a
  deployment they run on separate machines at the same time.

Usage: ``python benchmarks/analytics.py [--n N] [--quick]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

import sqlalchemy as sa
import uvicorn
from _common import emit
from fastapi import FastAPI
from nacl.public import PrivateKey

from phe_trace.aggregator import Aggregator, AggregatorSettings, create_app
from phe_trace.analytics.batch import (
    prep_init_batch,
    prep_shares_to_prep_batch,
)
from phe_trace.analytics.metrics import METRICS, context_for
from phe_trace.analytics.reports import SealedReport, make_report, open_share
from phe_trace.server import analytics_ingest
from phe_trace.server.analytics_ingest import IngestStore

BENCH = "analytics"
METRIC = "days_to_notification"
DAY = 20000
TARGET_DEVICES = 100_000
#: Reports prepared per batch (the aggregator service uses 2,000).
CHUNK = 5000


def service_collect(reports: list[SealedReport], leader: PrivateKey, helper: PrivateKey) -> float:
    """Seconds for the leader service to collect and release ``reports`` with a helper."""
    tmp = Path(tempfile.mkdtemp(prefix="phe-trace-bench-"))
    ingest = FastAPI()
    ingest.include_router(analytics_ingest.router)
    ingest.state.analytics_ingest = IngestStore(sa.create_engine(f"sqlite:///{tmp / 'k.db'}"))
    ingest.state.analytics_ingest.add(
        [(DAY, METRIC, r.leader_share, r.helper_share) for r in reports]
    )

    def settings(
        role: str, key: PrivateKey, helper_url: str | None, url: str
    ) -> AggregatorSettings:
        return AggregatorSettings(
            role=role,
            database_url=f"sqlite:///{tmp / (role + '.db')}",
            private_key=bytes(key).hex(),
            verify_key=bytes(32).hex(),
            peer_token="bench-peer-token-0123456789",
            helper_url=helper_url,
            ingest_url=url,
            min_batch_size=1,
        )  # type: ignore[arg-type]

    with _serve(ingest) as ingest_url:
        helper_agg = Aggregator(settings("helper", helper, None, ingest_url))
        with _serve(create_app(helper_agg)) as helper_url:
            leader_agg = Aggregator(settings("leader", leader, helper_url, ingest_url))
            start = time.perf_counter()
            release = leader_agg.collect(DAY, METRIC)
            seconds = time.perf_counter() - start
    assert release.report_count == len(reports)
    shutil.rmtree(tmp, ignore_errors=True)
    return seconds


@contextmanager
def _serve(app: FastAPI) -> Iterator[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=10_000, help="reports in the batch")
    parser.add_argument("--quick", action="store_true", help="small run (1,000 reports)")
    args = parser.parse_args()
    quick = bool(args.quick)
    n = 1000 if quick else args.n
    naive_n = min(n, 300)
    leader, helper = PrivateKey.generate(), PrivateKey.generate()
    keys = (bytes(leader.public_key), bytes(helper.public_key))
    vdaf = METRICS[METRIC].vdaf()
    length = METRICS[METRIC].length
    values = [i * 7 % length for i in range(n)]

    start = time.perf_counter()
    reports = [make_report(METRIC, v, DAY, *keys) for v in values]
    shard_s = time.perf_counter() - start
    start = time.perf_counter()
    totals = [0] * length
    for v in values:
        onehot = [0] * length
        onehot[v] = 1
        totals = [a + b for a, b in zip(totals, onehot, strict=True)]
    plain_s = time.perf_counter() - start
    emit(
        bench=BENCH,
        case="device_shard_seal",
        n=n,
        seconds=round(shard_s, 4),
        rate=round(n / shard_s, 1),
        unit="reports/s",
        baseline="plain_onehot_sum",
        baseline_rate=round(n / plain_s, 1),
        ratio=round(plain_s / shard_s, 6),
    )

    ctx = context_for(METRIC, DAY)
    verify_key = os.urandom(32)

    def prepare(batch: list[object], batched: bool) -> list[list[list[int]]]:
        opened = [
            [
                open_share(bytes(k), i, METRIC, DAY, (r.leader_share, r.helper_share)[i])  # type: ignore[attr-defined]
                for r in batch
            ]
            for i, k in enumerate((leader, helper))
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
                vdaf, ctx, [[a[1], b[1]] for a, b in zip(inits[0], inits[1], strict=True)]
            )
            return [
                [vdaf.prep_next(inits[i][j][0], msgs[j][1]) for j in range(len(batch))]
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

    def pair(batch: list[object], batched: bool) -> list[int]:
        """Both aggregators, in chunks as the service does (bounded memory)."""
        aggs = [[0] * length, [0] * length]
        for start in range(0, len(batch), CHUNK):
            outs = prepare(batch[start : start + CHUNK], batched)
            aggs = [vdaf.field.vec_add(aggs[i], vdaf.aggregate(outs[i])) for i in range(2)]
        result: list[int] = vdaf.unshard(aggs, len(batch))
        return result

    start = time.perf_counter()
    naive_result = pair(reports[:naive_n], batched=False)
    naive_s = time.perf_counter() - start
    start, cpu_start = time.perf_counter(), time.process_time()
    result = pair(reports, batched=True)
    batch_s, batch_cpu = time.perf_counter() - start, time.process_time() - cpu_start
    expected = [values.count(b) for b in range(length)]
    assert result == expected, "aggregate differs from the plain sum"
    assert naive_result == [values[:naive_n].count(b) for b in range(length)]
    rate = n / batch_s
    emit(
        bench=BENCH,
        case="pair_open_prepare_aggregate",
        n=n,
        seconds=round(batch_s, 4),
        rate=round(rate, 1),
        unit="reports/s",
        baseline=f"naive_per_report_path(n={naive_n})",
        baseline_rate=round(naive_n / naive_s, 1),
        ratio=round(rate / (naive_n / naive_s), 3),
        cpu_seconds=round(batch_cpu, 3),
        cpu_rate=round(n / batch_cpu, 1),
    )
    service_n = min(n, 500 if quick else 5000)
    service_s = service_collect(reports[:service_n], leader, helper)
    emit(
        bench=BENCH,
        case="service_collect",
        n=service_n,
        seconds=round(service_s, 3),
        rate=round(service_n / service_s, 1),
        unit="reports/s",
        baseline="pair_open_prepare_aggregate",
        baseline_rate=round(rate, 1),
        ratio=round(service_n / service_s / rate, 3),
    )
    day_s = batch_s if n == TARGET_DEVICES else TARGET_DEVICES / rate
    emit(
        bench=BENCH,
        case="day_of_100k_devices",
        n=TARGET_DEVICES,
        seconds=round(day_s, 2),
        rate=round(rate, 1),
        unit="reports/s",
        baseline="target_60s",
        baseline_rate=round(TARGET_DEVICES / 60, 1),
        ratio=round(60 / day_s, 3),
        projected=n != TARGET_DEVICES,
        target_met=day_s <= 60,
        cpu_seconds=round(TARGET_DEVICES * batch_cpu / n, 2),
    )


if __name__ == "__main__":
    main()
