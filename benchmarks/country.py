"""Benchmark of a country's day: 1.1 M keys exported, signed and uploaded to S3 storage.

One JSON line, case ``country-day/<db>``:

1. A sample of real publishes (14 keys each, a fresh ES256 certificate and TEK HMAC per
   request, all checked) goes through ``POST /v1/publish`` of a key server in a child
   process on the benchmark's database; ``publishes_per_cpu_second`` is the sample's
   count over the server process's CPU seconds — the publish rate one core sustains.
2. The rest of the day (``--keys`` in all, default 1,100,000: Germany's worst case) is
   bulk-loaded into the key table with the metadata the publish path stored for the
   sample (same columns, truncated ``created_at`` spread over the day's 24 hours).
3. ``run_export`` writes the day's 24 hourly batches — query, sort, sign (ECDSA P-256),
   zip — into an S3 bucket on a moto server on loopback through the S3 export store
   (conditional puts). ``seconds`` is its wall time; ``cpu_s_per_1000_keys`` counts the
   exporting process (the database and the S3 server are reported apart).
   ``bytes_stored`` sums the bucket's objects; ``bytes_per_key`` divides the zips by keys.
4. Baseline, same run and same database: the same day exported again (batches reset)
   into a local directory store; ``ratio`` = directory seconds / S3 seconds.

Every zip is read back from the bucket and verified with the published key; the keys in
them must be exactly the day's keys. Target: the day's export and upload ≤ 60 s on 2 cores.

Usage: ``python benchmarks/country.py [--keys N] [--sample P] [--postgres URL]
[--quick]`` (PostgreSQL from ``PHE_TRACE_TEST_DATABASE_URL`` when set, else SQLite).
"""

from __future__ import annotations

import argparse
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import boto3
import sqlalchemy as sa
from _common import emit
from botocore.config import Config
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

import server as keyserver_bench
from phe_trace.protocol import export
from phe_trace.server import ServerContext, load_settings, register_health_authority
from phe_trace.server.exporter import run_export
from phe_trace.server.exportstore import DirectoryExportStore
from phe_trace.server.exportstore_s3 import S3ExportStore
from phe_trace.server.signing import load_signing_keys
from phe_trace.server.storage.tables import (
    export_batches,
    export_files,
    export_indexes,
    export_padding,
    exposures,
)

BENCH = "country"
COLUMNS = (
    "key_data",
    "region",
    "traveler",
    "rolling_start_interval_number",
    "rolling_period",
    "transmission_risk_level",
    "report_type",
    "days_since_onset_of_symptoms",
    "created_at",
    "health_authority_id",
)


class Moto:
    """``python -m moto.server`` on a loopback port (stopped by its PID)."""

    def __init__(self) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        keyserver_bench._wait_ready(self.port)
        self.client: Any = boto3.session.Session().client(
            "s3",
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id="bench",
            aws_secret_access_key="bench-secret",
            config=Config(s3={"addressing_style": "path"}, max_pool_connections=4),
        )

    def stop(self) -> None:
        self.process.kill()
        self.process.wait(timeout=10)


def _sample_publishes(ctx: ServerContext, database_url: str, tmp: str, n: int) -> dict[str, Any]:
    """``n`` real publishes through the HTTP API of a key server child process."""
    authority = ec.generate_private_key(ec.SECP256R1())
    pem = (
        authority.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    register_health_authority(
        ctx.engine,
        issuer=keyserver_bench.ISSUER,
        audience=keyserver_bench.AUDIENCE,
        name="bench",
        public_keys={keyserver_bench.KID: pem},
    )
    bodies = keyserver_bench._request_bodies(n, authority)
    requests = [keyserver_bench._http_request("POST", "/v1/publish", b) for b in bodies]
    port = keyserver_bench._free_port()
    child = subprocess.Popen(
        [sys.executable, keyserver_bench.__file__, "--serve", tmp, str(port), database_url, "1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        keyserver_bench._wait_ready(port)
        cpu_before = keyserver_bench._tree_cpu_seconds(child.pid)
        seconds, _, failures = keyserver_bench._drive(port, requests, 16)
        cpu = keyserver_bench._tree_cpu_seconds(child.pid) - cpu_before
    finally:
        child.terminate()
        child.wait(timeout=30)
    if failures:
        raise SystemExit(f"publish sample failed: {len(failures)} errors")
    return {
        "publishes": n,
        "seconds": round(seconds, 3),
        "rate": round(n / seconds, 1),
        "server_cpu_seconds": round(cpu, 3),
        "publishes_per_cpu_second": round(n / cpu, 1),
    }


def _bulk_rows(ctx: ServerContext, count: int, hours: list[int]) -> list[tuple[Any, ...]]:
    """``count`` rows shaped like the stored sample (its metadata, new keys, spread hours)."""
    with ctx.engine.connect() as conn:
        models = conn.execute(sa.select(*(exposures.c[c] for c in COLUMNS))).all()
    rows = []
    for i in range(count):
        model = models[i % len(models)]
        rows.append(
            (secrets.token_bytes(16), *model[1:8], hours[i * len(hours) // count], model[9])
        )
    return rows


def _bulk_load(ctx: ServerContext, rows: list[tuple[Any, ...]]) -> float:
    started = time.perf_counter()
    if ctx.engine.dialect.name == "postgresql":
        raw = ctx.engine.raw_connection()
        try:
            cursor = raw.cursor()
            statement = f"COPY ks_exposures ({', '.join(COLUMNS)}) FROM STDIN"
            with cursor.copy(statement) as copy:  # type: ignore[attr-defined]
                for row in rows:
                    copy.write_row(row)
            raw.commit()
        finally:
            raw.close()
    else:
        with ctx.engine.begin() as conn:
            conn.execute(exposures.insert(), [dict(zip(COLUMNS, r, strict=True)) for r in rows])
    with ctx.engine.begin() as conn:
        if ctx.engine.dialect.name == "postgresql":
            conn.execute(sa.text("ANALYZE ks_exposures"))
    return time.perf_counter() - started


def _reset_exports(ctx: ServerContext) -> None:
    with ctx.engine.begin() as conn:
        for table in (export_files, export_padding, export_batches, export_indexes):
            conn.execute(table.delete())


def _timed_export(ctx: ServerContext, now: float) -> tuple[float, float, Any]:
    cpu, wall = time.process_time(), time.perf_counter()
    report = run_export(ctx, now)
    return time.perf_counter() - wall, time.process_time() - cpu, report


def _bucket_objects(moto: Moto, bucket: str) -> dict[str, int]:
    sizes = {}
    for page in moto.client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", ()):
            sizes[item["Key"]] = int(item["Size"])
    return sizes


def _verify(moto: Moto, bucket: str, names: list[str], public: Any) -> set[bytes]:
    keys: set[bytes] = set()
    for name in names:
        data = moto.client.get_object(Bucket=bucket, Key=f"v1/exports/{name}")["Body"].read()
        keys.update(k.key_data for k in export.verify_export_zip(data, public).keys)
    return keys


def run(keys: int, sample: int, postgres: str | None) -> None:
    hour = int(time.time()) // 3600 * 3600
    hours = [hour - 3600 * h for h in range(23, -1, -1)]  # the day ending with this hour
    now = hour + 3 * 3600  # every window of the day has aged past the 2 h embargo
    database_url, dbname = (
        keyserver_bench._fresh_postgres(postgres) if postgres else ("", "")
    )
    moto = Moto()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            settings = load_settings(data_dir=tmp, database_url=database_url or None)
            bucket = f"bench-{secrets.token_hex(4)}"
            moto.client.create_bucket(Bucket=bucket)
            store = S3ExportStore(moto.client, bucket, "v1/exports")
            ctx = ServerContext.open(settings, store=store)
            publish = _sample_publishes(ctx, database_url, tmp, sample)
            rows = _bulk_rows(ctx, keys - 14 * sample, hours)
            load_seconds = _bulk_load(ctx, rows)
            moto_cpu = keyserver_bench._tree_cpu_seconds(moto.process.pid)
            seconds, cpu, report = _timed_export(ctx, now)
            moto_cpu = keyserver_bench._tree_cpu_seconds(moto.process.pid) - moto_cpu
            sizes = _bucket_objects(moto, bucket)
            signing = load_signing_keys(settings.signing_key_dir, settings.signing_key_id)
            public = {(k.key_id, k.version): k.private_key.public_key() for k in signing}
            exported = _verify(moto, bucket, report.files_written, public)
            with ctx.engine.connect() as conn:
                stored = set(conn.execute(sa.select(exposures.c.key_data)).scalars())
            if exported != {bytes(k) for k in stored} or report.padding_keys:
                raise SystemExit("the bucket does not hold exactly the day's keys")
            _reset_exports(ctx)
            ctx.store = DirectoryExportStore(Path(tmp) / "baseline-exports")
            base_seconds, base_cpu, base_report = _timed_export(ctx, now)
            ctx.close()
    finally:
        moto.stop()
        if dbname and postgres:
            keyserver_bench._drop_postgres(postgres, dbname)
    if len(base_report.files_written) != len(report.files_written):
        raise SystemExit("baseline wrote a different number of files")
    zips = sum(v for k, v in sizes.items() if k.endswith(".zip"))
    index = sum(v for k, v in sizes.items() if k.endswith("index.txt"))
    emit(
        bench=BENCH,
        case=f"country-day/{'postgresql' if postgres else 'sqlite'}",
        n=keys,
        seconds=round(seconds, 3),
        rate=round(keys / seconds, 1),
        unit="keys/s exported, signed and uploaded",
        baseline="same day exported to a local directory store",
        baseline_rate=round(keys / base_seconds, 1),
        ratio=round(base_seconds / seconds, 3),
        target_seconds=60,
        files=len(report.files_written),
        batches=report.batches_written,
        cpu_s_per_1000_keys=round(cpu / keys * 1000, 4),
        baseline_cpu_s_per_1000_keys=round(base_cpu / keys * 1000, 4),
        s3_server_cpu_seconds=round(moto_cpu, 2),
        bytes_stored=zips + index,
        zip_bytes=zips,
        index_bytes=index,
        bytes_per_key=round(zips / keys, 2),
        bulk_load_seconds=round(load_seconds, 2),
        publish_sample=publish,
        cores=os.cpu_count(),
    )


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keys", type=int, default=None, help="keys in the day")
    parser.add_argument("--sample", type=int, default=None, help="publishes through the API")
    parser.add_argument("--postgres", default=os.environ.get("PHE_TRACE_TEST_DATABASE_URL"))
    parser.add_argument("--quick", action="store_true", help="small sizes (CI)")
    args = parser.parse_args(argv)
    keys = args.keys or (30_000 if args.quick else 1_100_000)
    sample = args.sample or (100 if args.quick else 1_000)
    run(keys, sample, args.postgres)


if __name__ == "__main__":
    main(sys.argv[1:])
