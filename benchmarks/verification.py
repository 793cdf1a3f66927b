"""Benchmark of the verification service's device API over real HTTP.

A real uvicorn server runs the verification service in a child process (SQLite in a
temporary directory, default settings: Argon2id, padding on); this process plays the
devices with one keep-alive httpx connection. Cases (one JSON line each):

- ``verify``: ``POST /api/verify`` with n distinct fresh codes (claim + token insert);
- ``certificate``: ``POST /api/certificate`` with the n tokens (claim + ES256 signature).

Each is compared with the same endpoint answering a chaff request (``X-Chaff``: same
HTTP, JSON and padding path and the same admission reads — API key, maintenance mode —
but no write and no signature) measured in the same run; the
ratio says what the real work costs on top of the HTTP round trip. Latency percentiles
(``p50_ms``, ``p95_ms``) are per request, sequential.

Usage: ``python benchmarks/verification.py [--n N] [--quick]``.
"""

from __future__ import annotations

import argparse
import base64
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx
from _common import emit

from phe_trace.serving import free_port
from phe_trace.verification import VerificationService, VerificationSettings


def _settings(data_dir: str) -> VerificationSettings:
    """Default settings with no quota or rate limit in the way (secret file in data_dir)."""
    return VerificationSettings(
        data_dir=Path(data_dir), default_daily_quota=10**9, verify_rate_limit=10**9
    )


def _serve(data_dir: str, port: int) -> None:
    """Child process: the verification service on ``port``."""
    from phe_trace import serving
    from phe_trace.verification import create_app

    serving.run(create_app(_settings(data_dir)), host="127.0.0.1", port=port)


def _wait(url: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/.well-known/jwks.json").status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise RuntimeError("verification server did not start")


def _timed(client: httpx.Client, path: str, bodies: list[dict[str, Any]], **kw: Any) -> list[float]:
    times = []
    for body in bodies:
        start = time.perf_counter()
        response = client.post(path, json=body, **kw)
        times.append(time.perf_counter() - start)
        if response.status_code != 200:
            raise RuntimeError(f"{path}: {response.status_code} {response.text[:200]}")
    return times


def _emit(case: str, times: list[float], base: list[float], what: str) -> None:
    seconds = sum(times)
    rate = len(times) / seconds
    base_rate = len(base) / sum(base)
    quantiles = statistics.quantiles(times, n=20)
    emit(
        bench="verification",
        case=case,
        n=len(times),
        seconds=round(seconds, 4),
        rate=round(rate, 1),
        unit="requests/s",
        baseline=f"chaff {what} (same endpoint, admission reads only, no write or signature)",
        baseline_rate=round(base_rate, 1),
        ratio=round(rate / base_rate, 3),
        p50_ms=round(statistics.median(times) * 1000, 2),
        p95_ms=round(quantiles[18] * 1000, 2),
        baseline_p50_ms=round(statistics.median(base) * 1000, 2),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=500, help="codes to verify and certify")
    parser.add_argument("--quick", action="store_true", help="small run (CI)")
    args = parser.parse_args()
    n = 50 if args.quick else args.n
    with tempfile.TemporaryDirectory() as tmp:
        service = VerificationService(_settings(tmp))
        realm = service.accounts.create_realm("bench")
        user = service.accounts.create_user(
            realm.id, "b", "bench-password-1", is_admin=False, actor="b"
        )
        _, api_key = service.accounts.create_api_key(realm.id, "bench", "b")
        codes = [service.issue_code(user, "confirmed", None, None).code for _ in range(n)]
        service.close()
        port = free_port()
        child = multiprocessing.get_context("spawn").Process(target=_serve, args=(tmp, port))
        child.start()
        try:
            url = f"http://127.0.0.1:{port}"
            _wait(url)
            with httpx.Client(base_url=url, headers={"X-API-Key": api_key}, timeout=30) as c:
                chaff = {"X-Chaff": "1"}
                _timed(c, "/api/verify", [{"code": "0"}] * 20, headers=chaff)  # warm-up
                base_v = _timed(c, "/api/verify", [{"code": "0"}] * n, headers=chaff)
                t_verify = _timed(c, "/api/verify", [{"code": code} for code in codes])
                mac = base64.b64encode(os.urandom(32)).decode()
                base_c = _timed(
                    c, "/api/certificate", [{"token": "x", "ekeyhmac": mac}] * n, headers=chaff
                )
                tokens = []
                fresh = VerificationService(_settings(tmp))
                more = [
                    fresh.issue_code(fresh.accounts.user(1), "confirmed", None, None).code
                    for _ in range(n)
                ]
                fresh.close()
                for code in more:
                    tokens.append(c.post("/api/verify", json={"code": code}).json()["token"])
                bodies = [{"token": t, "ekeyhmac": mac} for t in tokens]
                t_cert = _timed(c, "/api/certificate", bodies)
        finally:
            child.terminate()
            child.join(10)
    _emit("verify", t_verify, base_v, "/api/verify")
    _emit("certificate", t_cert, base_c, "/api/certificate")


if __name__ == "__main__":
    main()
