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
4. Baselines, same run and same database, batches reset before each: the same day
   exported into a local directory store (``ratio`` = directory seconds / S3 seconds),
   and exported to S3 with the key query ordered by key bytes in the database as it
   was before (``ordered_query_seconds``; ``speedup`` = those seconds / ``seconds``);
   each file's export.bin must be the same bytes in both buckets.
   On PostgreSQL, ``db`` gives the key table's size per stored key (heap, indexes and
   TOAST) and the WAL written per publish of the sample.

5. Bytes a device downloads (``device``): a device checking every 6 hours (the agent's
   default) fetches the index and every new file; the day's files and index are fetched
   here from the bucket over HTTP with the agent's own downloader, so
   ``steady_bytes_per_day`` = 4 index reads + the day's zips. A device's *first* check
   follows a 14-day index (the measured day and 13 earlier days of the same hourly
   sizes, the retention a key server keeps): ``first_check_bytes_before`` is what every
   device fetched before the agent skipped files (all 14 days, also what a device that
   has recorded 14 days fetches), ``first_check_bytes_after`` what a device that begins
   recording now fetches when it skips the files whose keys cannot match anything it
   can hold (``phe_trace.agent.sync.can_match``, SPEC SCALE-8); both from the same
   stored object sizes and the same index. ``steady``: a real agent checks every 6 hours
   for 17 days against a bucket whose index lists 14 days of hourly files (small signed
   files, counted at the measured day's size of the same hour); ``bytes_per_day_after``
   is its download per day over the last 3 days, ``bytes_per_day_before`` the same run
   with processed files dated by their check as before, when a file the server still
   listed on the day its record expired was downloaded again.

The 1-, 5- and 15-minute load averages of the machine (shared) are printed from before
and after the run.

Every zip is read back from the bucket and verified with the published key; the keys in
them must be exactly the day's keys. Target: the day's export and upload ≤ 60 s on 2 cores.

Usage: ``python benchmarks/country.py [--keys N] [--sample P] [--postgres URL]
[--quick]`` (PostgreSQL from ``PHE_TRACE_TEST_DATABASE_URL`` when set, else SQLite).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import sqlalchemy as sa
from _common import emit
from botocore.config import Config
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

import phe_trace.agent.sync as sync
import server as keyserver_bench
from phe_trace.agent import Agent
from phe_trace.agent.config import AgentConfig
from phe_trace.agent.download import MAX_DOWNLOAD_BYTES, MAX_INDEX_BYTES, download
from phe_trace.agent.radio.sim import SimRadio
from phe_trace.agent.sync import can_match
from phe_trace.protocol import export
from phe_trace.protocol.diagnosis_key import DiagnosisKey, ReportType
from phe_trace.server import ServerContext, load_settings, register_health_authority
from phe_trace.server.exporter import run_export
from phe_trace.server.exportstore import DirectoryExportStore
from phe_trace.server.exportstore_s3 import S3ExportStore
from phe_trace.server.signing import load_signing_keys
from phe_trace.server.storage import queries
from phe_trace.server.storage.tables import (
    export_batches,
    export_files,
    export_indexes,
    export_padding,
    exposures,
)
from phe_trace.serving import free_port

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
    port = free_port()
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


def _ordered_created_in(
    conn: sa.Connection, region: str, start: int, end: int
) -> Iterator[tuple[Any, ...]]:
    """The export's key query as it was: ordered by key bytes in the database."""
    query = (
        sa.select(*queries.EXPORT_COLUMNS)
        .where(
            exposures.c.region == region,
            exposures.c.created_at >= start,
            exposures.c.created_at < end,
        )
        .order_by(exposures.c.key_data)
        .execution_options(yield_per=50_000)
    )
    return iter(conn.execute(query))


def _same_export_bins(moto: Moto, bucket: str, other: str, names: list[str]) -> bool:
    """Whether every file's export.bin is byte for byte the same in both buckets (the
    signatures differ: ECDSA signing is randomised)."""
    for name in names:
        pair = [
            moto.client.get_object(Bucket=b, Key=f"v1/exports/{name}")["Body"].read()
            for b in (bucket, other)
        ]
        first, second = (export.unpack_export_zip(data).export_bin for data in pair)
        if first != second:
            return False
    return True


def _wal_lsn(ctx: ServerContext) -> str | None:
    if ctx.engine.dialect.name != "postgresql":
        return None
    with ctx.engine.connect() as conn:
        return str(conn.execute(sa.text("SELECT pg_current_wal_lsn()")).scalar_one())


def _db_sizes(ctx: ServerContext, wal_bytes: float | None, publishes: int) -> dict[str, Any]:
    """Key table bytes per stored key and WAL bytes per sample publish (PostgreSQL)."""
    if ctx.engine.dialect.name != "postgresql":
        return {}
    with ctx.engine.connect() as conn:
        rows = conn.execute(sa.select(sa.func.count()).select_from(exposures)).scalar_one()
        total = conn.execute(sa.text("SELECT pg_total_relation_size('ks_exposures')")).scalar_one()
    return {
        "key_rows": rows,
        "key_table_bytes": total,
        "key_table_bytes_per_key": round(total / rows, 1),
        "wal_bytes_per_publish": None if wal_bytes is None else round(wal_bytes / publishes),
    }


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


def _fetch(client: httpx.Client, url: str, limit: int) -> bytes:
    return download(client, url, retries=2, backoff_s=0.2, max_bytes=limit)


def _device_downloads(
    moto: Moto, bucket: str, region: str, sizes: dict[str, int], now: float
) -> dict[str, Any]:
    """What a device downloads from the bucket (see the module docstring, step 5)."""
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": "*",
                "Action": "s3:GetObject",
                "Resource": f"arn:aws:s3:::{bucket}/v1/exports/*",
            }
        ],
    }
    moto.client.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))
    base = f"{moto.url}/{bucket}/v1/exports/"
    with httpx.Client(timeout=60) as client:
        index = _fetch(client, base + export.index_file_name(region), MAX_INDEX_BYTES)
        day = export.parse_index(index)
        day_bytes = sum(len(_fetch(client, base + path, MAX_DOWNLOAD_BYTES)) for path in day)
    if day_bytes != sum(sizes[f"v1/exports/{path}"] for path in day):
        raise SystemExit("the device fetched other bytes than the bucket stores")
    checks_per_day = 4
    backlog: dict[str, int] = {}
    for days_back in range(13, -1, -1):
        for path in day:
            name = export.parse_export_file_name(path)
            shift = days_back * 86400
            earlier = export.export_file_name(
                region, name.start_timestamp - shift, name.end_timestamp - shift, name.batch_num
            )
            backlog[earlier] = sizes[f"v1/exports/{path}"]
    index_14 = len(export.format_index(backlog))
    config = AgentConfig()
    floor = now - config.scan_period_s - config.clock_skew_tolerance_s  # empty store
    kept = [p for p in backlog if can_match(p, floor, config.clock_skew_tolerance_s)]
    before = index_14 + sum(backlog.values())
    after = index_14 + sum(backlog[p] for p in kept)
    return {
        "checks_per_day": checks_per_day,
        "day_files": len(day),
        "day_zip_bytes_fetched": day_bytes,
        "index_bytes_14_days": index_14,
        "steady_bytes_per_day": checks_per_day * index_14 + day_bytes,
        "first_check_files_before": len(backlog),
        "first_check_files_after": len(kept),
        "first_check_bytes_before": before,
        "first_check_bytes_after": after,
        "first_check_ratio": round(before / after, 2),
    }


class _Counting(httpx.HTTPTransport):
    """Records the path of every request."""

    def __init__(self) -> None:
        super().__init__()
        self.paths: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(request.url.path)
        return super().handle_request(request)


def _old_processed_at(path: str, content: export.TemporaryExposureKeyExport, now: float) -> float:
    """How a processed file was dated before SCALE-8 dated it by its name's reach."""
    del path
    ends = [sync._open_until(k) for k in (*content.keys, *content.revised_keys)]
    return max([float(now), *ends])


def _steady_device(moto: Moto, hour_sizes: list[int], now: float, *, before: bool) -> float:
    """Bytes a day a device checking every 6 hours downloads over days 14–16 (step 5)."""
    signer = export.EcdsaSigner(
        ec.generate_private_key(ec.SECP256R1()), export.SignatureInfo("b", "v1")
    )
    bucket = f"bench-{secrets.token_hex(4)}"
    moto.client.create_bucket(Bucket=bucket)
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": "*",
                "Action": "s3:GetObject",
                "Resource": f"arn:aws:s3:::{bucket}/*",
            }
        ],
    }
    moto.client.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))
    day0 = int(now) // 86400 * 86400 - 17 * 86400
    counting = _Counting()
    counted = 0
    dated = sync._processed_at
    with tempfile.TemporaryDirectory() as tmp, httpx.Client(transport=counting) as client:
        config = AgentConfig(
            data_dir=Path(tmp),
            radio="sim",
            region="ZZ",
            export_base_url=f"{moto.url}/{bucket}/",
            export_public_keys=export.public_key_spki_base64(signer.public_key),
            download_backoff_s=0.0,
            desktop_notifications=False,
        )
        device = Agent.open(config, now=day0, radio=SimRadio())
        if before:
            sync._processed_at = _old_processed_at  # type: ignore[assignment]
        try:
            published: dict[str, int] = {}
            t = float(day0)
            for check in range(17 * 4):
                at = day0 + 6 * 3600 * (check + 1) + 17 * 60
                while t < at:
                    device.tick(t)
                    t += 1800
                start = max([day0, *published.values()])
                while start + 3 * 3600 <= at:  # published 2 h after the window ends
                    name = export.export_file_name("ZZ", start, start + 3600, 1)
                    key = DiagnosisKey(
                        secrets.token_bytes(16),
                        start // 600 - 144,
                        144,
                        2,
                        ReportType.CONFIRMED_TEST,
                        0,
                    )
                    data = export.build_export_zip(
                        export.TemporaryExposureKeyExport(start, start + 3600, "ZZ", keys=(key,)),
                        [signer],
                    )
                    moto.client.put_object(Bucket=bucket, Key=name, Body=data)
                    published[name] = start + 3600
                    start += 3600
                listed = sorted(
                    (p for p, e in published.items() if e >= at - 14 * 86400),
                    key=published.__getitem__,
                )
                moto.client.put_object(
                    Bucket=bucket, Key="ZZ/index.txt", Body=export.format_index(listed)
                )
                counting.paths.clear()
                device.sync(at, client)
                if check >= 14 * 4:
                    for path in counting.paths:
                        name = path.split(f"/{bucket}/", 1)[1]
                        if name.endswith(".zip"):
                            hour = (published[name] - 3600) % 86400 // 3600
                            counted += hour_sizes[hour]
                        else:
                            counted += len(export.format_index(listed))
        finally:
            sync._processed_at = dated  # type: ignore[assignment]
            device.close()
    return counted / 3


def run(keys: int, sample: int, postgres: str | None) -> None:
    load_before = os.getloadavg()
    hour = int(time.time()) // 3600 * 3600
    hours = [hour - 3600 * h for h in range(23, -1, -1)]  # the day ending with this hour
    now = hour + 3 * 3600  # every window of the day has aged past the 2 h embargo
    database_url, dbname = keyserver_bench._fresh_postgres(postgres) if postgres else ("", "")
    moto = Moto()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            settings = load_settings(data_dir=tmp, database_url=database_url or None)
            bucket = f"bench-{secrets.token_hex(4)}"
            moto.client.create_bucket(Bucket=bucket)
            store = S3ExportStore(moto.client, bucket, "v1/exports")
            ctx = ServerContext.open(settings, store=store)
            wal_start = _wal_lsn(ctx)
            publish = _sample_publishes(ctx, database_url, tmp, sample)
            wal_end = _wal_lsn(ctx)
            wal_bytes: float | None = None
            if wal_start is not None and wal_end is not None:
                diff = sa.text("SELECT pg_wal_lsn_diff(:b, :a)")
                with ctx.engine.connect() as conn:
                    wal_bytes = float(
                        conn.execute(diff, {"a": wal_start, "b": wal_end}).scalar_one()
                    )
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
            device = _device_downloads(moto, bucket, settings.region, sizes, now)
            by_hour = sorted(
                (
                    export.parse_export_file_name(k.split("/", 2)[2]).start_timestamp
                    % 86400
                    // 3600,
                    v,
                )
                for k, v in sizes.items()
                if k.endswith(".zip")
            )
            hour_sizes = [v for _, v in by_hour]
            steady_before = _steady_device(moto, hour_sizes, now, before=True)
            steady_after = _steady_device(moto, hour_sizes, now, before=False)
            device["steady"] = {
                "bytes_per_day_before": round(steady_before),
                "bytes_per_day_after": round(steady_after),
                "ratio": round(steady_before / steady_after, 2),
            }
            db = _db_sizes(ctx, wal_bytes, sample)
            _reset_exports(ctx)
            ctx.store = DirectoryExportStore(Path(tmp) / "baseline-exports")
            base_seconds, base_cpu, base_report = _timed_export(ctx, now)
            _reset_exports(ctx)
            bucket_ordered = f"bench-{secrets.token_hex(4)}"
            moto.client.create_bucket(Bucket=bucket_ordered)
            ctx.store = S3ExportStore(moto.client, bucket_ordered, "v1/exports")
            unordered = queries.exposures_created_in
            queries.exposures_created_in = _ordered_created_in  # type: ignore[assignment]
            try:
                ordered_seconds, _, ordered_report = _timed_export(ctx, now)
            finally:
                queries.exposures_created_in = unordered  # type: ignore[assignment]
            same_bins = _same_export_bins(moto, bucket, bucket_ordered, report.files_written)
            ctx.close()
    finally:
        moto.stop()
        if dbname and postgres:
            keyserver_bench._drop_postgres(postgres, dbname)
    if len(base_report.files_written) != len(report.files_written):
        raise SystemExit("baseline wrote a different number of files")
    if sorted(ordered_report.files_written) != sorted(report.files_written) or not same_bins:
        raise SystemExit("the ordered query wrote other export.bin bytes")
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
        ordered_query_seconds=round(ordered_seconds, 3),
        speedup=round(ordered_seconds / seconds, 2),
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
        device=device,
        db=db,
        cores=os.cpu_count(),
        load_average_before=[round(x, 2) for x in load_before],
        load_average_after=[round(x, 2) for x in os.getloadavg()],
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
