"""Benchmark of the key schedule's hot path: all identifiers of full days of keys.

Cases (one JSON line each):
- ``rpis``: per key, RPIK by HKDF and the 144 identifiers by ONE AES-ECB call
  (``crypto.rpik`` + ``crypto.rpis_bytes``), against the naive baseline of one cipher
  call per identifier (HKDF object + 144 single-block encryptions), measured in the same
  run on a subset of the keys;
- ``rpis_batch``: the same identifiers with ``crypto.batch.rpis_into``, 8,192 keys per call
  into one reused buffer (HKDF and AES driven through libcrypto without per-key Python
  objects), same baseline;
- ``openssl_limit``: what this machine's AES-128-ECB and HMAC-SHA256 speed allow
  (``openssl speed``, measured now), and how far each path is from it.

Everything runs on one core (one thread, like ``openssl speed`` without ``-multi``).
``openssl speed`` divides by the CPU user time of its process, not by wall time, so the
batch path is timed both ways: ``cpu_rate`` (CPU time of the calling thread) is the one
compared with the limit (``ratio``); ``ratio_wall`` uses wall time, which on a shared
machine also counts time spent waiting for the CPU.

Usage: ``python benchmarks/crypto.py [--n N] [--quick]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import best_of, emit, openssl_speed
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from phe_trace import crypto
from phe_trace.crypto import batch

START = 2_642_976


def ours(keys: list[bytes]) -> int:
    total = 0
    for tek in keys:
        total += len(crypto.rpis_bytes(crypto.rpik(tek), START))
    return total // 16


def naive(keys: list[bytes]) -> int:
    total = 0
    for tek in keys:
        rpik = HKDF(hashes.SHA256(), 16, None, b"EN-RPIK").derive(tek)
        for j in range(START, START + 144):
            block = b"EN-RPI" + bytes(6) + j.to_bytes(4, "little")
            enc = Cipher(algorithms.AES(rpik), modes.ECB()).encryptor()
            total += len(enc.update(block))
    return total // 16


def best_wall_and_cpu(repeats: int, fn: Callable[[], object]) -> tuple[float, float]:
    """Fastest wall-clock and fastest CPU time (this thread) of ``repeats`` runs of ``fn()``."""
    wall = cpu = float("inf")
    for _ in range(repeats):
        start_wall, start_cpu = time.perf_counter(), time.thread_time()
        fn()
        cpu = min(cpu, time.thread_time() - start_cpu)
        wall = min(wall, time.perf_counter() - start_wall)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=100_000, help="keys (full days) to derive")
    parser.add_argument("--quick", action="store_true", help="small run (CI)")
    args = parser.parse_args()
    n = 10_000 if args.quick else args.n
    n_naive = max(200, n // 50)
    keys = [os.urandom(16) for _ in range(n)]
    repeats = 3

    assert ours(keys[:50]) == naive(keys[:50]) == 50 * 144
    t_ours = best_of(repeats, lambda: ours(keys))
    t_naive = best_of(repeats, lambda: naive(keys[:n_naive]))
    ids_rate = n * 144 / t_ours
    naive_rate = n_naive * 144 / t_naive
    emit(
        bench="crypto",
        case="rpis",
        n=n,
        seconds=round(t_ours, 4),
        rate=round(ids_rate),
        unit="identifiers/s",
        baseline=f"naive: HKDF object + one AES call per identifier ({n_naive} keys)",
        baseline_rate=round(naive_rate),
        ratio=round(ids_rate / naive_rate, 1),
        us_per_key=round(t_ours / n * 1e6, 3),
    )

    teks = b"".join(keys)
    starts, counts = [START] * n, [144] * n
    assert batch.rpis_concat(teks[:800], starts[:50], counts[:50]) == b"".join(
        crypto.rpis_bytes(crypto.rpik(k), START) for k in keys[:50]
    )
    chunk = 8192  # keys per call, into one reused buffer, as the matcher streams them
    out = bytearray(chunk * 144 * 16)

    def batched() -> None:
        for i in range(0, n, chunk):
            k = min(chunk, n - i)
            batch.rpis_into(out, teks[16 * i : 16 * (i + k)], starts[i : i + k], counts[i : i + k])

    t_batch, cpu_batch = best_wall_and_cpu(repeats, batched)
    batch_rate = n * 144 / t_batch
    batch_cpu_rate = n * 144 / cpu_batch
    emit(
        bench="crypto",
        case="rpis_batch",
        n=n,
        seconds=round(t_batch, 4),
        rate=round(batch_rate),
        unit="identifiers/s",
        baseline=f"naive: HKDF object + one AES call per identifier ({n_naive} keys)",
        baseline_rate=round(naive_rate),
        ratio=round(batch_rate / naive_rate, 1),
        us_per_key=round(t_batch / n * 1e6, 3),
        cpu_seconds=round(cpu_batch, 4),
        cpu_rate=round(batch_cpu_rate),
        cpu_us_per_key=round(cpu_batch / n * 1e6, 3),
        backend=batch.backend(),
        cores=1,
    )

    aes = openssl_speed(["-evp", "aes-128-ecb", "-bytes", "2304"])
    hmac = openssl_speed(["-hmac", "sha256", "-bytes", "32"])
    if aes is None or hmac is None:
        emit(bench="crypto", case="openssl_limit", note="openssl command not available")
        return
    # Per key: 144 AES blocks (2304 bytes) and HKDF = 2 HMAC-SHA256 calls on short input.
    per_key = 2304 / aes + 2 * (32 / hmac)
    limit_ids = 144 / per_key
    emit(
        bench="crypto",
        case="openssl_limit",
        n=n,
        seconds=round(per_key * n, 4),
        rate=round(limit_ids),
        unit="identifiers/s",
        us_per_key=round(per_key * 1e6, 3),
        baseline="rpis_batch (this run, CPU time)",
        baseline_rate=round(batch_cpu_rate),
        ratio=round(limit_ids / batch_cpu_rate, 2),
        ratio_wall=round(limit_ids / batch_rate, 2),
        limit_over_rpis=round(limit_ids / ids_rate, 2),
        aes_128_ecb_2304B_MBps=round(aes / 1e6),
        hmac_sha256_32B_ops_per_s=round(hmac / 32),
        cores=1,
        note=(
            "ratio = how many times faster the machine's AES+HMAC limit (openssl speed, "
            "CPU user time, one core) is than rpis_batch (CPU time of its thread, one core); "
            "ratio_wall uses rpis_batch's wall time"
        ),
    )


if __name__ == "__main__":
    main()
