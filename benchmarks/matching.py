"""Benchmark of exposure matching: N diagnosis keys against 14 days of sightings.

Workload (deterministic seed): N diagnosis keys (random TEKs, full 144-interval days,
day-aligned starts over 14 consecutive days) and 100,000 sightings over the same 14
days, of which 1% are true identifiers of published keys (seen inside their interval)
and the rest random. Every run checks that exactly the true sightings match.

Cases (one JSON line each):
- ``match``: ``phe_trace.exposure.match`` end to end (index, derive, look up, decrypt
  metadata of the matches), default workers (all cores), against the naive baseline
  measured in the same run on a subset of keys: HKDF object + one AES call per
  identifier + a set lookup. ``cpu_seconds`` adds this process's and the workers' CPU
  time, which (unlike wall time) does not grow when other processes share the cores;
- ``match_streamed``: the same with the keys made one by one from a generator, in a
  separate process, to show the memory bound: its peak RSS is the matcher's, not the
  1M-key input list's;
- ``match_1_worker``: the same in this process only (on a subset with ``--n`` ≥ 200k);
- ``bytes_to_matches``: 10,000 keys against 50,000 sightings stored as the agent stores
  them (fixed-size records, concatenated bytes), from those bytes to the ``MatchResult``
  in one process: the :class:`phe_trace.exposure.SightingIndex` built from the bytes in
  bulk (``phe_trace.agent.screen.sighting_index``), then ``match`` on it. Baseline: the
  same records first made ``Sighting`` values, one per record, then ``match`` (target:
  ≤ 120 ms);
- ``match_arrays``: the bulk entry point ``phe_trace.exposure.match_arrays`` (keys as
  arrays, sightings as an index built from arrays) at each N of ``--arrays`` (10k, 100k
  and 1M by default; only those ≤ ``--n``), default workers. Baseline: ``match`` on the
  same keys as ``DiagnosisKey`` values and the same sightings as ``Sighting`` values;
- ``openssl_limit``: the keys/s the machine's AES-128-ECB and HMAC-SHA256 speed allow
  (``openssl speed``, measured now, one process and ``-multi`` all cores), and ``match``'s
  rate as a fraction of it;
- with ``--profile``: ``component_*`` lines splitting one core's time per key into
  packing, derivation (HKDF + AES through the batch path) and the table lookup.

Wall-clock cases report the best of ``--repeats`` runs (default 2; 1 with ``--quick``).

Every line carries ``load_average_1m``: the machine may be shared.

Usage: ``python benchmarks/matching.py [--n N] [--sightings S] [--quick] [--profile]
[--repeats R] [--arrays N,N,…]``.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
from _common import emit, openssl_speed
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from phe_trace import crypto
from phe_trace.agent.records import SightingRecord, encode_sightings, iter_sighting_fields
from phe_trace.agent.screen import sighting_index
from phe_trace.crypto import batch
from phe_trace.exposure import Sighting, SightingIndex, match, match_arrays
from phe_trace.exposure import matcher as matcher_module
from phe_trace.protocol.diagnosis_key import DiagnosisKey, ReportType

FIRST_DAY_START = 2_642_976  # 2020-04-02 00:00 UTC, day-aligned
DAYS = 14
SEED = 20201125


class Workload:
    """N keys (made on demand from one random blob) and sightings, 1% of them true."""

    def __init__(self, n: int, n_sightings: int) -> None:
        rng = random.Random(SEED)
        self.n = n
        self.blob = rng.randbytes(16 * n)
        self.starts = [FIRST_DAY_START + 144 * d for d in range(DAYS)]
        self.n_true = max(1, n_sightings // 100)
        metadata = crypto.Metadata(tx_power_dbm=-8, version_minor=1).to_bytes()
        sightings = []
        for i in range(self.n_true):
            key = self.key(rng.randrange(min(n, 10_000 + i)))
            j = rng.randrange(144)
            ids = crypto.rpis(crypto.rpik(key.key_data), key.rolling_start_interval_number)
            aem = crypto.encrypt_metadata(crypto.aemk(key.key_data), ids[j], metadata)
            t = (key.rolling_start_interval_number + j) * 600 + rng.randrange(600)
            sightings.append(Sighting(ids[j], aem, -70 + rng.randrange(30), t))
        for _ in range(n_sightings - self.n_true):
            t = FIRST_DAY_START * 600 + rng.randrange(DAYS * 86_400)
            sightings.append(Sighting(rng.randbytes(16), rng.randbytes(4), -80, t))
        rng.shuffle(sightings)
        self.sightings = sightings

    def key(self, i: int) -> DiagnosisKey:
        tek = self.blob[16 * i : 16 * i + 16]
        return DiagnosisKey(tek, self.starts[i % DAYS], 144, 6, ReportType.CONFIRMED_TEST, 0)

    def keys(self) -> Iterator[DiagnosisKey]:
        """The keys as a stream (nothing but the 16-byte blob is held)."""
        return map(self.key, range(self.n))


def workload(n: int, n_sightings: int) -> tuple[list[DiagnosisKey], list[Sighting], int]:
    """Keys (as a list), sightings, and the number of sightings that must match."""
    w = Workload(n, n_sightings)
    return list(w.keys()), w.sightings, w.n_true


def stream_child(n: int, n_sightings: int) -> None:
    """Case ``match_streamed``, in its own process so its peak RSS is its own."""
    w = Workload(n, n_sightings)
    seconds, result = timed(lambda: match(w.keys(), w.sightings))
    if len(result.matches) != w.n_true:
        raise SystemExit(f"wrong match count {len(result.matches)}, expected {w.n_true}")
    emit(
        bench="matching",
        case="match_streamed",
        n=n,
        seconds=round(seconds, 3),
        rate=round(n / seconds),
        unit="keys/s",
        sightings=n_sightings,
        matches=len(result.matches),
        cpu_seconds=round(LAST_CPU[0], 3),
        peak_rss_mb=own_peak_rss_mb(),
        note="keys made one by one from a generator inside the timed run (as a reader of "
        "export files would); peak_rss_mb: the larger of this process's VmHWM and its "
        "workers' peak RSS",
    )


def own_peak_rss_mb() -> float:
    """Peak RSS of this process's own address space (VmHWM; ru_maxrss survives exec)."""
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    with open("/proc/self/status") as f:
        hwm = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    return round(max(hwm, kids) / 1024, 1)


def naive(keys: list[DiagnosisKey], sightings: list[Sighting]) -> int:
    """HKDF object per key, one AES call per identifier, a set lookup per identifier."""
    seen = {s.rpi for s in sightings}
    found = 0
    for key in keys:
        rpik = HKDF(hashes.SHA256(), 16, None, b"EN-RPIK").derive(key.key_data)
        enc = Cipher(algorithms.AES(rpik), modes.ECB()).encryptor()
        start = key.rolling_start_interval_number
        for j in range(start, start + key.rolling_period):
            if enc.update(b"EN-RPI" + bytes(6) + j.to_bytes(4, "little")) in seen:
                found += 1
    return found


def _cpu() -> float:
    """CPU seconds of this process and its waited-for children (the worker processes)."""
    own, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


LAST_CPU = [0.0]  # CPU seconds of the last timed() run


def timed(fn):  # type: ignore[no-untyped-def]
    cpu = _cpu()
    start = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - start
    LAST_CPU[0] = _cpu() - cpu
    return seconds, result


def best(repeats, fn):  # type: ignore[no-untyped-def]
    """The fastest of ``repeats`` wall-clock runs: (seconds, result, CPU seconds)."""
    runs = []
    for _ in range(repeats):
        seconds, result = timed(fn)
        runs.append((seconds, result, LAST_CPU[0]))
    return min(runs, key=lambda run: run[0])


def cpu_timed(fn):  # type: ignore[no-untyped-def]
    start = time.process_time()
    result = fn()
    return time.process_time() - start, result


def profile(keys: list[DiagnosisKey], sightings: list[Sighting]) -> None:
    """Split one core's per-key CPU time into packing, derivation and lookup."""
    index = matcher_module.SightingIndex.from_sightings(sightings)
    n = len(keys)
    chunks = [keys[i : i + 8192] for i in range(0, n, 8192)]
    t_pack, packed = cpu_timed(lambda: [matcher_module._pack(c, 0)[0] for c in chunks])
    buf = bytearray(1024 * 144 * 16)

    def derive(lookup: bool) -> None:
        for p in packed:
            for b in range(0, len(p.starts), 1024):
                teks = p.teks[16 * b : 16 * (b + 1024)]
                nbytes = batch.rpis_into(buf, teks, p.starts[b : b + 1024], p.periods[b : b + 1024])
                if lookup:
                    index.lookup(buf, nbytes)

    t_derive, _ = cpu_timed(lambda: derive(False))
    t_both, _ = cpu_timed(lambda: derive(True))
    t_lookup = max(t_both - t_derive, 0.0)  # table lookups on freshly derived identifiers
    t_index, _ = cpu_timed(lambda: matcher_module.SightingIndex.from_sightings(sightings))
    t_all, _ = cpu_timed(lambda: [matcher_module._match_packed(index, p, 12) for p in packed])
    for case, seconds in (
        ("component_pack", t_pack),
        ("component_derive", t_derive),
        ("component_lookup", t_lookup),
        ("component_match_packed_total", t_all),
        ("component_sighting_index", t_index),
    ):
        emit(
            bench="matching",
            case=case,
            n=n,
            seconds=round(seconds, 4),
            rate=round(n / seconds),
            unit="keys/s",
            us_per_key=round(seconds / n * 1e6, 3),
            clock="process CPU time, one core",
            backend=batch.backend(),
        )


def bytes_to_matches(repeats: int) -> None:
    """Case ``bytes_to_matches`` (see the module docstring)."""
    w = Workload(10_000, 50_000)
    keys = list(w.keys())
    plain = encode_sightings(
        [SightingRecord(s.rpi, s.aem, s.unix_time, 0.0, s.rssi, s.rssi, 1) for s in w.sightings]
    )

    def from_values() -> object:
        values = [
            Sighting(rpi, aem, rssi_mean, t)
            for rpi, aem, t, _, _, rssi_mean, _ in iter_sighting_fields(plain)
        ]
        return match(keys, values, workers=1)

    t_index, _, _ = best(repeats, lambda: sighting_index(plain, 0))
    t_bytes, result, cpu = best(repeats, lambda: match(keys, sighting_index(plain, 0), workers=1))
    t_values, expected, cpu_values = best(repeats, from_values)
    if len(result.matches) != w.n_true or result != expected:
        raise SystemExit(f"bytes_to_matches: {len(result.matches)} matches, expected {w.n_true}")
    emit(
        bench="matching",
        case="bytes_to_matches",
        n=len(keys),
        seconds=round(t_bytes, 4),
        rate=round(len(keys) / t_bytes),
        unit="keys/s",
        baseline="each stored record made a Sighting value, then match (1 worker)",
        baseline_rate=round(len(keys) / t_values),
        ratio=round(t_bytes / t_values, 3),
        sightings=len(w.sightings),
        matches=len(result.matches),
        index_seconds=round(t_index, 4),
        cpu_seconds=round(cpu, 4),
        baseline_seconds=round(t_values, 4),
        baseline_cpu_seconds=round(cpu_values, 4),
        target_seconds=0.12,
        load_average_1m=os.getloadavg()[0],
    )


def arrays_case(w: Workload, all_keys: list[DiagnosisKey], n: int, repeats: int) -> None:
    """Case ``match_arrays`` at ``n`` keys (see the module docstring)."""
    teks = w.blob[: 16 * n]
    starts = np.array([w.starts[i % DAYS] for i in range(n)], dtype=np.int64)
    periods = np.full(n, 144, dtype=np.int64)
    rpis = b"".join(s.rpi for s in w.sightings)
    times = np.array([s.unix_time for s in w.sightings], dtype=np.float64)
    keys = all_keys[:n]

    def bulk() -> object:
        return match_arrays(teks, starts, periods, SightingIndex.from_arrays(rpis, times))

    t_arrays, found, cpu = best(repeats, bulk)
    t_match, expected, cpu_match = best(repeats, lambda: match(keys, w.sightings))
    if len(found) != len(expected.matches):  # type: ignore[arg-type]
        raise SystemExit(f"match_arrays found {len(found)}, match {len(expected.matches)}")  # type: ignore[arg-type]
    emit(
        bench="matching",
        case="match_arrays",
        n=n,
        seconds=round(t_arrays, 4),
        rate=round(n / t_arrays),
        unit="keys/s",
        baseline="match on DiagnosisKey and Sighting values (same keys, same sightings)",
        baseline_rate=round(n / t_match),
        ratio=round(t_arrays / t_match, 3),
        sightings=len(w.sightings),
        matches=len(found),  # type: ignore[arg-type]
        workers=len(os.sched_getaffinity(0)),
        cpu_seconds=round(cpu, 3),
        cpu_us_per_key=round(cpu / n * 1e6, 3),
        baseline_cpu_us_per_key=round(cpu_match / n * 1e6, 3),
        load_average_1m=os.getloadavg()[0],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=1_000_000, help="diagnosis keys")
    parser.add_argument("--sightings", type=int, default=100_000, help="sightings (14 days)")
    parser.add_argument("--quick", action="store_true", help="small run (CI)")
    parser.add_argument("--profile", action="store_true", help="also print per-component costs")
    parser.add_argument("--repeats", type=int, default=2, help="best of this many runs per case")
    parser.add_argument(
        "--arrays", default="10000,100000,1000000", help="key counts of the match_arrays case"
    )
    parser.add_argument("--stream-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stream_child:
        stream_child(args.n, args.sightings)
        return
    n = 100_000 if args.quick else args.n
    n_sightings = 20_000 if args.quick else args.sightings
    n_naive = min(n, 2_000 if args.quick else 20_000)
    w = Workload(n, n_sightings)
    keys, sightings, n_true = list(w.keys()), w.sightings, w.n_true

    repeats = 1 if args.quick else max(1, args.repeats)
    bytes_to_matches(repeats)
    for n_arrays in sorted({int(x) for x in args.arrays.split(",") if x.strip()}):
        if n_arrays <= n:
            arrays_case(w, keys, n_arrays, repeats)
    t_naive, found, cpu_naive = best(repeats, lambda: naive(keys[:n_naive], sightings))
    if not 0 < found <= n_true:
        raise SystemExit(f"naive baseline found {found} of {n_true} true sightings")
    naive_rate = n_naive / t_naive
    baseline = f"naive: HKDF + one AES call per identifier + set lookup ({n_naive} keys)"

    t_match, result, cpu_match = best(repeats, lambda: match(keys, sightings))
    if len(result.matches) != n_true:
        raise SystemExit(f"wrong match count {len(result.matches)}, expected {n_true}")
    rate = n / t_match
    emit(
        bench="matching",
        case="match",
        n=n,
        seconds=round(t_match, 3),
        rate=round(rate),
        unit="keys/s",
        baseline=baseline,
        baseline_rate=round(naive_rate),
        ratio=round(rate / naive_rate, 1),
        sightings=n_sightings,
        matches=len(result.matches),
        workers=len(os.sched_getaffinity(0)),
        backend=batch.backend(),
        naive_seconds_extrapolated=round(n / naive_rate, 1),
        cpu_seconds=round(cpu_match, 3),
        cpu_us_per_key=round(cpu_match / n * 1e6, 3),
        baseline_cpu_us_per_key=round(cpu_naive / n_naive * 1e6, 3),
        ratio_cpu=round((cpu_naive / n_naive) / (cpu_match / n), 1),
        load_average_1m=os.getloadavg()[0],
    )

    subprocess.run(  # match_streamed: its own process, so its own peak RSS
        [
            sys.executable,
            __file__,
            "--stream-child",
            "--n",
            str(n),
            "--sightings",
            str(n_sightings),
        ],
        check=True,
    )

    n_serial = min(n, 200_000)
    t_serial, serial, cpu_serial = best(
        repeats, lambda: match(keys[:n_serial], sightings, workers=1)
    )
    emit(
        bench="matching",
        case="match_1_worker",
        n=n_serial,
        seconds=round(t_serial, 3),
        rate=round(n_serial / t_serial),
        unit="keys/s",
        baseline=baseline,
        baseline_rate=round(naive_rate),
        ratio=round(n_serial / t_serial / naive_rate, 1),
        matches=len(serial.matches),
        backend=batch.backend(),
        cpu_seconds=round(cpu_serial, 3),
        cpu_us_per_key=round(cpu_serial / n_serial * 1e6, 3),
    )

    cores = len(os.sched_getaffinity(0))
    aes = openssl_speed(["-evp", "aes-128-ecb", "-bytes", "2304"])
    hmac = openssl_speed(["-hmac", "sha256", "-bytes", "32"])
    aes_multi = openssl_speed(["-multi", str(cores), "-evp", "aes-128-ecb", "-bytes", "2304"])
    hmac_multi = openssl_speed(["-multi", str(cores), "-hmac", "sha256", "-bytes", "32"])
    if None in (aes, hmac, aes_multi, hmac_multi):
        emit(bench="matching", case="openssl_limit", note="openssl command not available")
    else:
        assert aes and hmac and aes_multi and hmac_multi
        # Per key: 144 AES blocks (2304 bytes) and HKDF = 2 HMAC-SHA256 calls on short input.
        per_key_1 = 2304 / aes + 2 * (32 / hmac)
        per_key_all = 2304 / aes_multi + 2 * (32 / hmac_multi)
        limit = 1 / per_key_all
        emit(
            bench="matching",
            case="openssl_limit",
            n=n,
            seconds=round(per_key_all * n, 4),
            rate=round(limit),
            unit="keys/s",
            baseline="match (this run)",
            baseline_rate=round(rate),
            ratio=round(limit / rate, 2),
            limit_keys_per_s_1_core=round(1 / per_key_1),
            aes_128_ecb_2304B_MBps=round(aes / 1e6),
            aes_128_ecb_2304B_MBps_multi=round(aes_multi / 1e6),
            hmac_sha256_32B_ops_per_s=round(hmac / 32),
            hmac_sha256_32B_ops_per_s_multi=round(hmac_multi / 32),
            note="ratio = how many times faster the machine's AES+HMAC limit is than match",
        )
    if args.profile:
        profile(keys[: min(n, 200_000)], sightings)


if __name__ == "__main__":
    main()
