"""Load run of the key server: a steady publish rate held for a while, with an error bound.

A real ``phe-trace server run`` (SQLite, its own temporary data directory and a test
health authority) is started unless ``--server`` points at one. Cases, one JSON line
each:

- ``healthz_closed_loop`` (the baseline, measured in the same run): ``--workers``
  clients calling ``GET /healthz`` back to back for a few seconds — what the server
  answers per second when it does almost nothing (one ``SELECT 1``).
- ``publish_steady``: an open-loop schedule of ``--rate`` uploads per second for
  ``--seconds`` (60; 10 with ``--quick``), each a real GAEN publish of ``--keys`` fresh
  keys (14) with its own ES256 certificate and TEK HMAC (minted before the clock starts).
  Requests are sent at their scheduled time by ``--workers`` threads; ``rate`` is the
  achieved rate of acknowledged uploads (HTTP 200), ``p50_ms``/``p99_ms`` the latency of
  each request from its sending, ``late`` how many left more than 100 ms after their
  slot, ``errors``/``error_rate`` the uploads not acknowledged. ``ratio`` = achieved
  publish rate / healthz baseline rate.

The script exits 1 when the error rate exceeds ``--max-error-rate`` (1 %) or the achieved
rate falls below 90 % of the target. Usage::

    python benchmarks/load.py [--seconds 60] [--rate 20] [--quick]
    python benchmarks/load.py --server URL --ha-key PEM --issuer ISS --audience AUD --kid KID
"""

from __future__ import annotations

import argparse
import contextlib
import os
import queue
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit

from phe_trace.conformance import ConformanceConfig, KeyServerClient, load_private_key
from phe_trace.conformance.client import day_keys
from phe_trace.serving import free_port

ISSUER = "https://load.test/issuer"
AUDIENCE = "https://load.test/publish"
KID = "load-1"


@contextlib.contextmanager
def local_server() -> Iterator[tuple[str, Path]]:
    """A fresh ``phe-trace server run`` on a loopback port; yields (URL, HA key PEM)."""
    with tempfile.TemporaryDirectory(prefix="phe-trace-load-") as tmp:
        root = Path(tmp)
        key = ec.generate_private_key(ec.SECP256R1())
        pem, pub = root / "ha.pem", root / "ha.pub.pem"
        pem.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        pub.write_bytes(
            key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("PHE_TRACE_")}
        env["PHE_TRACE_EXPORT_INTERVAL_SECONDS"] = "0"
        cli = [sys.executable, "-m", "phe_trace.cli", "server"]
        data = ["--data-dir", str(root / "data")]
        subprocess.run(
            [*cli, "health-authority", "add", *data, "--issuer", ISSUER, "--audience",
             AUDIENCE, "--name", "load", "--public-key", str(pub), "--key-version", KID],
            env=env, check=True, capture_output=True,
        )  # fmt: skip
        port = free_port()
        log = (root / "server.log").open("wb")
        process = subprocess.Popen(
            [*cli, "run", "--host", "127.0.0.1", "--port", str(port), "--role", "keyserver", *data],
            env=env, stdout=log, stderr=log,
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                        break
                if time.monotonic() > deadline or process.poll() is not None:
                    raise SystemExit("the key server did not start")
                time.sleep(0.1)
            yield url, pem
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
            log.close()


def healthz_rate(url: str, workers: int, seconds: float) -> tuple[int, float]:
    """Closed-loop GET /healthz with ``workers`` threads: (requests, requests per second)."""
    stop = time.perf_counter() + seconds
    counts = [0] * workers

    def run(i: int) -> None:
        with httpx.Client(base_url=url, timeout=10) as http:
            while time.perf_counter() < stop:
                if http.get("/healthz").status_code == 200:
                    counts[i] += 1

    start = time.perf_counter()
    threads = [threading.Thread(target=run, args=(i,)) for i in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    return sum(counts), sum(counts) / elapsed


@dataclass
class Outcome:
    latencies: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    late: int = 0
    ok: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def publish_steady(
    client_config: ConformanceConfig, rate: float, seconds: float, keys: int, workers: int
) -> tuple[Outcome, float, int]:
    """Send ``rate × seconds`` uploads on an open-loop schedule; (outcome, elapsed, sent)."""
    total = int(rate * seconds)
    now = time.time()
    with httpx.Client() as http:
        minting = KeyServerClient(client_config, http)
        bodies = [minting.body(day_keys(now, keys), now) for _ in range(total)]
    slots: queue.Queue[tuple[float, dict[str, Any]] | None] = queue.Queue()
    outcome = Outcome()
    start = time.perf_counter() + 0.5
    for i, body in enumerate(bodies):
        slots.put((start + i / rate, body))
    for _ in range(workers):
        slots.put(None)

    def run() -> None:
        with httpx.Client(timeout=30) as http:
            client = KeyServerClient(client_config, http)
            while (item := slots.get()) is not None:
                due, body = item
                wait = due - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
                sent = time.perf_counter()
                try:
                    response = client.publish(body)
                    ok = response.status_code == 200
                    reason = str(response.status_code)
                except httpx.HTTPError as exc:
                    ok, reason = False, type(exc).__name__
                done = time.perf_counter()
                with outcome.lock:
                    outcome.latencies.append(done - sent)
                    outcome.late += sent - due > 0.1
                    if ok:
                        outcome.ok += 1
                    else:
                        outcome.errors[reason] = outcome.errors.get(reason, 0) + 1

    threads = [threading.Thread(target=run) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return outcome, time.perf_counter() - start, total


def _percentile(values: list[float], q: float) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--rate", type=float, default=20.0, help="uploads per second")
    parser.add_argument("--keys", type=int, default=14, help="keys per upload")
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--max-error-rate", type=float, default=0.01)
    parser.add_argument("--quick", action="store_true", help="a 10 s run")
    parser.add_argument("--n", type=int, default=None, help="uploads (overrides --seconds)")
    parser.add_argument("--server", help="an already running key server (else one is started)")
    parser.add_argument("--ha-key", type=Path, help="certificate-issuing PEM (with --server)")
    parser.add_argument("--issuer", default=ISSUER)
    parser.add_argument("--audience", default=AUDIENCE)
    parser.add_argument("--kid", default=KID)
    args = parser.parse_args()
    seconds = 10.0 if args.quick else args.seconds
    if args.n:
        seconds = args.n / args.rate
    with contextlib.ExitStack() as stack:
        if args.server:
            if args.ha_key is None:
                raise SystemExit("--server needs --ha-key")
            url, pem = args.server, args.ha_key
        else:
            url, pem = stack.enter_context(local_server())
        config = ConformanceConfig(
            server=url, ha_key=load_private_key(pem.read_bytes()), issuer=args.issuer,
            audience=args.audience, kid=args.kid,
        )  # fmt: skip
        base_seconds = 3.0 if args.quick else 5.0
        base_n, base_rate = healthz_rate(url, args.workers, base_seconds)
        emit(
            bench="load", case="healthz_closed_loop", n=base_n, seconds=round(base_seconds, 3),
            rate=round(base_rate, 1), unit="requests/s", workers=args.workers,
        )  # fmt: skip
        outcome, elapsed, sent = publish_steady(config, args.rate, seconds, args.keys, args.workers)
    achieved = outcome.ok / elapsed
    errors = sent - outcome.ok
    error_rate = errors / sent if sent else 0.0
    emit(
        bench="load", case="publish_steady", n=sent, seconds=round(elapsed, 3),
        rate=round(achieved, 2), unit="publish/s", baseline="healthz_closed_loop",
        baseline_rate=round(base_rate, 1), ratio=round(achieved / base_rate, 4),
        target_rate=args.rate, keys_per_upload=args.keys, workers=args.workers,
        p50_ms=round(_percentile(outcome.latencies, 50) * 1000, 1),
        p99_ms=round(_percentile(outcome.latencies, 99) * 1000, 1),
        errors=errors, error_rate=round(error_rate, 4), error_kinds=outcome.errors,
        late=outcome.late,
    )  # fmt: skip
    if error_rate > args.max_error_rate or achieved < 0.9 * args.rate:
        print(
            f"load: error rate {error_rate:.2%} (bound {args.max_error_rate:.2%}), "
            f"achieved {achieved:.1f}/s of {args.rate}/s",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
