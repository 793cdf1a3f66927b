"""Benchmark of the diagnosis-key server: verified publishes, and exports of many keys.

Cases (one JSON line each):

- ``publish/<db>`` (closed loop, maximum throughput): N verified publishes (14 keys
  each, a fresh ES256 certificate and TEK HMAC per request, all checked by the server)
  from ``--clients`` concurrent keep-alive connections on loopback to a real uvicorn
  server in a child process, on SQLite and — when ``--postgres URL`` or
  ``PHE_TRACE_TEST_DATABASE_URL`` is given — on a fresh PostgreSQL database. Each client
  sends its next request as soon as the last is answered, so the server is always
  saturated: ``rate`` is the maximum publishes/s, and the latencies ``p50_ms`` and
  ``p99_ms`` are mostly queueing (about clients / rate). Baseline: ``GET /healthz`` (the
  same HTTP stack and a database round trip, no work) from the same clients. Target:
  ≥ 300/s.
- ``publish-open/<db>`` (open loop, fixed offered load): the same server and N further
  publishes, sent at ``--rate`` per second (default 300) with Poisson arrivals (seeded)
  over ``--clients`` connections. A request whose connection is still busy waits for a
  free one, and its latency counts from its *scheduled* send time, so a slow server
  cannot hide queueing by slowing the clients down (no coordinated omission). ``rate``
  is the achieved publishes/s; ``p50_ms``/``p99_ms`` are the latencies at that load.
  Baseline: ``GET /healthz`` on the same schedule. Target: p99 ≤ 100 ms at 300/s.
- ``export/<n>``: ``run_export`` of one batch holding n keys (SQLite): query, build,
  sort, sign with ECDSA P-256, zip, write, index. ``rate`` is keys/s. Baseline: building
  and serializing the same keys as raw protobuf messages (``export_pb2``), the floor of
  any Python exporter. The first file is verified with the published key. Target:
  1,000,000 keys ≤ 15 s.

Certificates are signed before the clock starts; the client is a minimal HTTP/1.1
writer on raw sockets so that client overhead stays small next to the server's.

Usage: ``python benchmarks/server.py [--n N] [--quick] [--clients C] [--rate R]
[--postgres URL] [--workers W] [--skip-export]``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import secrets
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import jwt
from _common import emit
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from phe_trace.protocol import export
from phe_trace.protocol import export_pb2 as pb
from phe_trace.protocol.tekmac import TekHmacKey, tek_hmac
from phe_trace.server import ServerContext, load_settings, register_health_authority, run_export
from phe_trace.server.signing import load_signing_keys
from phe_trace.serving import free_port

BENCH = "server"
ISSUER, AUDIENCE, KID = "bench-ha", "bench-keyserver", "v1"


# ---------------------------------------------------------------- publish ----


def _serve(data_dir: str, port: int, database_url: str, workers: int) -> None:
    """Child process: run the key server with default settings on ``port``."""
    from phe_trace import serving
    from phe_trace.server import create_app

    if workers > 1:  # as `phe-trace server run --workers N --role keyserver`
        os.environ.update(PHE_TRACE_DATA_DIR=data_dir, PHE_TRACE_ROLE="keyserver")
        if database_url:
            os.environ["PHE_TRACE_DATABASE_URL"] = database_url
        serving.run(
            "phe_trace.hosting:create_app_from_environment",
            host="127.0.0.1",
            port=port,
            workers=workers,
        )
        return
    settings = load_settings(data_dir=data_dir, database_url=database_url or None)
    serving.run(create_app(settings), host="127.0.0.1", port=port)


def _request_bodies(n: int, authority: ec.EllipticCurvePrivateKey) -> list[bytes]:
    now = time.time()
    today = int(now // 600) - int(now // 600) % 144
    bodies = []
    for _ in range(n):
        keys = [(secrets.token_bytes(16), today - 144 * d) for d in range(1, 15)]
        hmac_key = secrets.token_bytes(32)
        mac = tek_hmac(hmac_key, [TekHmacKey(k, s, 144, 0) for k, s in keys])
        claims = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "iat": int(now),
            "nbf": int(now),
            "exp": int(now) + 3600,
            "reportType": "confirmed",
            "tekmac": base64.b64encode(mac).decode(),
        }
        token = jwt.encode(claims, authority, algorithm="ES256", headers={"kid": KID})
        body = {
            "temporaryExposureKeys": [
                {
                    "key": base64.b64encode(k).decode(),
                    "rollingStartNumber": s,
                    "rollingPeriod": 144,
                    "transmissionRisk": 0,
                }
                for k, s in keys
            ],
            "healthAuthorityID": "bench.app",
            "verificationPayload": token,
            "hmacKey": base64.b64encode(hmac_key).decode(),
            "padding": base64.b64encode(secrets.token_bytes(768)).decode(),
        }
        bodies.append(json.dumps(body).encode())
    return bodies


def _http_request(method: str, path: str, body: bytes = b"") -> bytes:
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _read_response(reader: asyncio.StreamReader) -> int:
    """Read one HTTP/1.1 response with a Content-Length body; its status code."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    await reader.readexactly(length)
    return status


async def _one_connection(
    port: int, requests: list[bytes], latencies: list[float], failures: list[int]
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for raw in requests:
            started = time.perf_counter()
            writer.write(raw)
            status = await _read_response(reader)
            latencies.append(time.perf_counter() - started)
            if status != 200:
                failures.append(status)
    finally:
        writer.close()


def _drive(port: int, requests: list[bytes], clients: int) -> tuple[float, list[float], list[int]]:
    """Send ``requests`` over ``clients`` connections; (seconds, latencies, failures)."""
    shares = [requests[i::clients] for i in range(clients)]
    latencies: list[float] = []
    failures: list[int] = []

    async def main() -> float:
        started = time.perf_counter()
        await asyncio.gather(*(_one_connection(port, s, latencies, failures) for s in shares))
        return time.perf_counter() - started

    return asyncio.run(main()), latencies, failures


def _drive_open(
    port: int, requests: list[bytes], clients: int, rate: float, seed: int = 1
) -> tuple[float, list[float], list[int]]:
    """Send ``requests`` at ``rate``/s (Poisson arrivals) over ``clients`` connections.

    Latency is measured from each request's scheduled send time: a request that finds
    every connection busy waits, and that wait counts. Returns (seconds from the first
    scheduled send to the last answer, latencies, failures).
    """
    rng = random.Random(seed)
    offsets, t = [], 0.0
    for _ in requests:
        offsets.append(t)
        t += rng.expovariate(rate)
    latencies: list[float] = []
    failures: list[int] = []
    next_index = 0

    async def connection(start: float) -> None:
        nonlocal next_index
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while next_index < len(requests):
                i = next_index
                next_index += 1
                scheduled = start + offsets[i]
                delay = scheduled - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                writer.write(requests[i])
                status = await _read_response(reader)
                latencies.append(time.perf_counter() - scheduled)
                if status != 200:
                    failures.append(status)
        finally:
            writer.close()

    async def main() -> float:
        start = time.perf_counter() + 0.2  # connections open before the first send
        await asyncio.gather(*(connection(start) for _ in range(clients)))
        return time.perf_counter() - start

    return asyncio.run(main()), latencies, failures


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _fresh_postgres(base: str) -> tuple[str, str]:
    import psycopg

    admin = base.replace("postgresql+psycopg://", "postgresql://", 1)
    name = f"phe_trace_bench_{secrets.token_hex(4)}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return admin.rsplit("/", 1)[0] + "/" + name, name


def _drop_postgres(base: str, name: str) -> None:
    import psycopg

    admin = base.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def bench_publish(
    n: int, clients: int, db: str, database_url: str, workers: int = 1, rate: float = 300.0
) -> None:
    """Closed-loop then open-loop publishes against one server; one JSON line each."""
    authority = ec.generate_private_key(ec.SECP256R1())
    pem = (
        authority.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(data_dir=tmp, database_url=database_url or None)
        ctx = ServerContext.open(settings)
        register_health_authority(
            ctx.engine, issuer=ISSUER, audience=AUDIENCE, name="bench", public_keys={KID: pem}
        )
        bodies = _request_bodies(2 * n, authority)
        closed = [_http_request("POST", "/v1/publish", b) for b in bodies[:n]]
        opened = [_http_request("POST", "/v1/publish", b) for b in bodies[n:]]
        health = [_http_request("GET", "/healthz")] * n
        port = free_port()
        child = subprocess.Popen(
            [sys.executable, __file__, "--serve", tmp, str(port), database_url, str(workers)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            _wait_ready(port)
            _drive(port, health[: min(n, 200)], clients)  # warm-up
            cpu_before = _tree_cpu_seconds(child.pid)
            base_seconds, _, _ = _drive(port, health, clients)
            base_cpu = _tree_cpu_seconds(child.pid) - cpu_before
            cpu_before = _tree_cpu_seconds(child.pid)
            seconds, latencies, failures = _drive(port, closed, clients)
            server_cpu = _tree_cpu_seconds(child.pid) - cpu_before
            open_base = _drive_open(port, health, clients, rate)
            open_run = _drive_open(port, opened, clients, rate)
        finally:
            child.terminate()
            child.wait(timeout=30)
        from phe_trace.server.storage.queries import count_exposures

        with ctx.engine.connect() as conn:
            stored = count_exposures(conn)
        ctx.close()
    failures += open_run[2]
    if failures or stored != 14 * 2 * n:
        raise SystemExit(f"publish benchmark failed: {len(failures)} errors, {stored} keys stored")
    suffix = f"{db}/{workers}-workers" if workers > 1 else db
    emit(
        bench=BENCH,
        case=f"publish/{suffix}",
        n=n,
        seconds=round(seconds, 3),
        rate=round(n / seconds, 1),
        unit="publishes/s",
        baseline="GET /healthz",
        baseline_rate=round(n / base_seconds, 1),
        ratio=round((n / seconds) / (n / base_seconds), 3),
        clients=clients,
        workers=workers,
        p50_ms=_ms(_percentile(latencies, 0.50)),
        p99_ms=_ms(_percentile(latencies, 0.99)),
        keys_per_publish=14,
        server_cpu_ms_per_publish=round(server_cpu / n * 1000, 3),
        server_cpu_ms_per_baseline=round(base_cpu / n * 1000, 3),
    )
    seconds, latencies, _ = open_run
    emit(
        bench=BENCH,
        case=f"publish-open/{suffix}",
        n=n,
        seconds=round(seconds, 3),
        rate=round(n / seconds, 1),
        unit="publishes/s",
        baseline="GET /healthz, same schedule",
        baseline_rate=round(n / open_base[0], 1),
        ratio=round(open_base[0] / seconds, 3),
        offered_rate=rate,
        arrivals="poisson",
        clients=clients,
        workers=workers,
        p50_ms=_ms(_percentile(latencies, 0.50)),
        p99_ms=_ms(_percentile(latencies, 0.99)),
        max_ms=_ms(max(latencies)),
        baseline_p50_ms=_ms(_percentile(open_base[1], 0.50)),
        baseline_p99_ms=_ms(_percentile(open_base[1], 0.99)),
        keys_per_publish=14,
    )


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def _tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its descendants (Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
        todo += [int(c) for c in children]
    return total


def _wait_ready(port: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("server did not start")


# ----------------------------------------------------------------- export ----


def _raw_protobuf(rows: list[tuple[Any, ...]]) -> float:
    started = time.perf_counter()
    message = pb.TemporaryExposureKeyExport(
        start_timestamp=1, end_timestamp=2, region="ZZ", batch_num=1, batch_size=1
    )
    for key_data, start, _period, risk, rtype, dsos in sorted(rows):
        k = message.keys.add()
        k.key_data = key_data
        k.transmission_risk_level = risk
        k.rolling_start_interval_number = start
        k.report_type = rtype
        k.days_since_onset_of_symptoms = dsos
    message.SerializeToString()
    return time.perf_counter() - started


def bench_export(n: int) -> None:
    now = int(time.time())
    created = now - now % 3600 - 3 * 3600
    start = (created // 600) - (created // 600) % 144 - 144
    rows = [(secrets.token_bytes(16), start - 144 * (i % 13), 144, 2, 1, i % 10) for i in range(n)]
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(data_dir=tmp, database_url=None, export_min_records=0)
        ctx = ServerContext.open(settings)
        with sqlite3.connect(settings.effective_database_url.removeprefix("sqlite:///")) as db:
            db.executemany(
                "INSERT INTO ks_exposures (key_data, region, traveler, "
                "rolling_start_interval_number, rolling_period, transmission_risk_level, "
                "report_type, days_since_onset_of_symptoms, created_at) "
                "VALUES (?, 'ZZ', 0, ?, ?, ?, ?, ?, ?)",
                [(*r, created) for r in rows],
            )
        started = time.perf_counter()
        report = run_export(ctx, now)
        seconds = time.perf_counter() - started
        signing = load_signing_keys(settings.signing_key_dir, settings.signing_key_id)
        public = {(k.key_id, k.version): k.private_key.public_key() for k in signing}
        total = 0
        for name in report.files_written:
            path = settings.effective_export_dir / name
            total += len(export.verify_export_zip(path.read_bytes(), public).keys)
        ctx.close()
    if total != n:
        raise SystemExit(f"export benchmark wrote {total} keys, expected {n}")
    baseline = _raw_protobuf(rows)
    emit(
        bench=BENCH,
        case=f"export/{n}",
        n=n,
        seconds=round(seconds, 3),
        rate=round(n / seconds, 1),
        unit="keys/s",
        baseline="raw protobuf build+serialize",
        baseline_rate=round(n / baseline, 1),
        ratio=round(baseline / seconds, 3),
        files=len(report.files_written),
    )


def main(argv: list[str]) -> None:
    if argv[:1] == ["--serve"]:
        _serve(argv[1], int(argv[2]), argv[3], int(argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=None, help="publishes per case")
    parser.add_argument("--quick", action="store_true", help="small sizes (CI)")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--rate", type=float, default=300.0, help="open-loop publishes/s")
    parser.add_argument("--postgres", default=os.environ.get("PHE_TRACE_TEST_DATABASE_URL"))
    parser.add_argument("--workers", type=int, default=1, help="server worker processes")
    parser.add_argument("--skip-export", action="store_true")
    args = parser.parse_args(argv)
    n = args.n or (300 if args.quick else 3000)
    bench_publish(n, args.clients, "sqlite", "", rate=args.rate)
    if args.postgres:
        url, name = _fresh_postgres(args.postgres)
        try:
            bench_publish(n, args.clients, "postgresql", url, rate=args.rate)
        finally:
            _drop_postgres(args.postgres, name)
    if args.postgres and args.workers > 1:
        url, name = _fresh_postgres(args.postgres)
        try:
            bench_publish(n, args.clients, "postgresql", url, args.workers, args.rate)
        finally:
            _drop_postgres(args.postgres, name)
    if not args.skip_export:
        for size in (20_000,) if args.quick else (100_000, 1_000_000):
            bench_export(size)


if __name__ == "__main__":
    main(sys.argv[1:])
