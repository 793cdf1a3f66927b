"""Benchmark of the device agent: idle cost on the bumble radio, and the daily check.

Cases (one JSON line each; each case runs in a child process of its own so that its
peak RSS is its own):

- ``idle_bumble_hour``: one agent advertising and scanning on a bumble virtual link
  next to one peer, for a simulated hour, with GAEN's parameters (200–270 ms advertising,
  identifier rotation every 10–20 min, a 4 s scan every 5 min minus up to 1 min). Time is
  compressed by ``--speedup`` F: the agent's clock runs F times faster than real time
  and each scan window lasts 4/F real seconds, so the radio's real-time duty cycle is
  GAEN's; CPU seconds per simulated hour = measured CPU × F (this over-counts the
  per-rotation and per-window bookkeeping, which happens as often per simulated hour but
  is multiplied too). Baseline: the same radio schedule driven by a bare loop (no agent:
  no keys, store or aggregation). ``rate`` is CPU seconds per simulated hour;
  ``peak_rss_mb`` is the child's peak RSS (target ≤ 80 MB).
- ``sync_match``: a daily check — download index.txt and 24 signed hourly export files
  holding N diagnosis keys over 14 days from a real HTTP server on loopback, verify their
  signatures, open 14 days of stored sightings (288 scan windows a day, 20 identifiers
  each), index them from their bytes (``phe_trace.exposure.SightingIndex``) and match,
  score, store. 500 sightings are true identifiers of published keys;
  the run aborts unless exactly those match. The benchmark drops its own 100,000 key
  values before the check (the agent's process holds none). Best of ``--repeats`` (3; 1 with
  ``--quick``), each a first check of all files. Baseline: ``phe_trace.exposure.match``
  alone (1 worker) on the same keys and sightings in memory, best of as many. Target:
  ≤ 2 s at N = 100,000.
- ``daily_check``: the next day's check on the same store, after that first check: one new
  signed file of ``DAILY_KEYS`` keys (none of them seen), best of ``--repeats``. The agent
  keeps running between checks, as the daemon and the simulator do, so the sightings it
  opened before are not opened again, and its state records are as the first check saved
  them (each repeat restores the sync state with ``store.save``, as that check did).
  Baseline: the same check by an agent opened afresh on the store just before it (every
  row opened again, as each check used to). ``rate`` is checks per second.

Every line carries ``load_average_1m``: the machine may be shared.

Usage: ``python benchmarks/agent.py [--n N] [--quick] [--speedup F]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import random
import resource
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import emit

DAY = 86_400
T0 = 1_793_577_600.0  # a UTC midnight
WINDOWS_PER_DAY = 288
IDS_PER_WINDOW = 20
TRUE_MATCHES = 500
DAILY_KEYS = 2_000


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# --- idle -----------------------------------------------------------------------------


async def _idle_agent(speedup: float, data_dir: Path) -> tuple[float, float, int]:
    from phe_trace.agent import Agent, AgentConfig
    from phe_trace.agent.radio.bumble import BumbleLink

    link = BumbleLink()
    peer = link.radio("peer", (1.0, 0.0))
    await peer.start_advertising(os.urandom(20))
    config = AgentConfig(data_dir=data_dir, radio="bumble", scan_duration_s=4.0 / speedup)
    agent = Agent.open(config, now=T0, radio=link.radio("agent", (0.0, 0.0)))
    start_real = time.monotonic()

    def clock() -> float:
        return T0 + (time.monotonic() - start_real) * speedup

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.call_later(3600 / speedup, stop.set)
    cpu0, wall0 = _cpu(), time.perf_counter()
    await agent.run(clock=clock, stop=stop)
    cpu, wall = _cpu() - cpu0, time.perf_counter() - wall0
    windows = agent.store.sighting_windows()
    agent.close()
    await peer.close()
    return cpu, wall, windows


async def _idle_bare(speedup: float) -> tuple[float, float, int]:
    from phe_trace.agent.radio.bumble import BumbleLink

    link = BumbleLink()
    peer = link.radio("peer", (1.0, 0.0))
    radio = link.radio("bare", (0.0, 0.0))
    await peer.start_advertising(os.urandom(20))
    await radio.start_advertising(os.urandom(20))
    rng = random.Random(1)
    cpu0, wall0 = _cpu(), time.perf_counter()
    end = time.monotonic() + 3600 / speedup
    next_rotation = time.monotonic() + rng.uniform(600, 1200) / speedup
    scans = 0
    next_scan = time.monotonic()
    while time.monotonic() < end:
        now = time.monotonic()
        if now >= next_rotation:
            await radio.rotate(os.urandom(20))
            next_rotation = now + rng.uniform(600, 1200) / speedup
        if now >= next_scan:
            await radio.scan(4.0 / speedup, 0.0)
            scans += 1
            next_scan = now + (300 - rng.uniform(0, 60)) / speedup
        wake = min(next_rotation, next_scan, end)
        await asyncio.sleep(max(0.0, wake - time.monotonic()))
    cpu, wall = _cpu() - cpu0, time.perf_counter() - wall0
    await radio.close()
    await peer.close()
    return cpu, wall, scans


def case_idle(speedup: float, bare: bool) -> dict[str, float]:
    if bare:
        cpu, wall, windows = asyncio.run(_idle_bare(speedup))
    else:
        with tempfile.TemporaryDirectory() as d:
            cpu, wall, windows = asyncio.run(_idle_agent(speedup, Path(d)))
    return {"cpu": cpu, "wall": wall, "windows": windows}


# --- sync + match ---------------------------------------------------------------------------


def _workload(n: int, data_dir: Path) -> tuple[object, list[bytes], dict[str, bytes], str]:
    from cryptography.hazmat.primitives.asymmetric import ec

    from phe_trace import crypto
    from phe_trace.agent import AgentStore, SightingRecord
    from phe_trace.protocol import export
    from phe_trace.protocol.diagnosis_key import DiagnosisKey, ReportType

    rng = random.Random(20261125)
    first_interval = int(T0 // 600)
    keys = [
        DiagnosisKey(
            rng.randbytes(16), first_interval + 144 * (i % 14), 144, 0, ReportType.CONFIRMED_TEST, 0
        )
        for i in range(n)
    ]
    true_rpis: dict[tuple[int, int], bytes] = {}
    for i in range(TRUE_MATCHES):
        key = keys[i * (n // TRUE_MATCHES)]
        j = 30 + i % 100
        rpi = crypto.rpi(crypto.rpik(key.key_data), key.rolling_start_interval_number + j)
        true_rpis[(key.rolling_start_interval_number + j, i)] = rpi
    store = AgentStore.open(data_dir)
    extra: dict[int, list[bytes]] = {}
    for (interval, _), rpi in true_rpis.items():
        extra.setdefault(int((interval * 600 - T0) // 300), []).append(rpi)
    for day in range(14):
        for w in range(WINDOWS_PER_DAY):
            t = T0 + day * DAY + w * 300
            records = [
                SightingRecord(rng.randbytes(16), rng.randbytes(4), t, 1.0, -70, -72, 3)
                for _ in range(IDS_PER_WINDOW)
            ]
            for rpi in extra.pop(day * WINDOWS_PER_DAY + w, []):
                records.append(SightingRecord(rpi, bytes(4), t, 1.0, -60, -60, 3))
            store.add_sightings(records)
    store.close()
    assert not extra
    signer = export.EcdsaSigner(
        ec.generate_private_key(ec.SECP256R1()), export.SignatureInfo("310", "v1")
    )
    files: dict[str, bytes] = {}
    per_file = -(-n // 24)
    start = int(T0 + 14 * DAY)
    for b in range(24):
        chunk = tuple(keys[b * per_file : (b + 1) * per_file])
        content = export.TemporaryExposureKeyExport(
            start + 3600 * b, start + 3600 * (b + 1), "ZZ", keys=chunk
        )
        files[export.export_file_name("ZZ", start + 3600 * b, start + 3600 * (b + 1), 1)] = (
            export.build_export_zip(content, [signer])
        )
    files["ZZ/index.txt"] = export.format_index(sorted(files))
    return keys, list(true_rpis.values()), files, export.public_key_spki_base64(signer.public_key)


@contextlib.contextmanager
def _static_server(files: dict[str, bytes], root: Path) -> Iterator[str]:
    """Serve ``files`` under /v1/exports/ from a separate process (python -m http.server)."""
    for path, data in files.items():
        target = root / "v1" / "exports" / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "-d", str(root)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def case_sync(n: int, baseline: bool, repeats: int) -> dict[str, float]:
    import httpx

    from phe_trace.agent import Agent, AgentConfig
    from phe_trace.exposure import Sighting, match

    with tempfile.TemporaryDirectory() as d:
        keys, _, files, spki = _workload(n, Path(d) / "agent")
        if baseline:
            from phe_trace.agent import AgentStore

            store = AgentStore.open(Path(d) / "agent")
            sightings = [
                Sighting(r.rpi, r.aem, r.rssi_mean, r.unix_time) for r in store.sightings()
            ]
            store.close()
            seconds = float("inf")
            for _ in range(repeats):
                t = time.perf_counter()
                result = match(keys, sightings, workers=1)  # type: ignore[arg-type]
                seconds = min(seconds, time.perf_counter() - t)
            found = len(result.matches)
        else:
            # The agent's process does not hold the workload's 100,000 key values: drop them,
            # so that the garbage collector's passes cost what they cost the agent.
            del keys
            gc.collect()
            with _static_server(files, Path(d) / "www") as url:
                config = AgentConfig(
                    data_dir=Path(d) / "agent",
                    radio="sim",
                    key_server_url=url,
                    export_public_keys=spki,
                    desktop_notifications=False,
                )
                now = T0 + 14 * DAY - 600  # the end of the 14th day: nothing purged
                agent = Agent.open(config, now=now)
                with httpx.Client() as client:
                    seconds = float("inf")
                    for _ in range(repeats):  # each a first check: nothing processed yet
                        agent.store.put_meta("sync", {"processed": []})
                        agent.store.put_meta("matches", {"items": []})
                        t = time.perf_counter()
                        res = agent.sync(now, client)
                        seconds = min(seconds, time.perf_counter() - t)
                found = res.matched_sightings
                assert res.files_checked == 24 and res.keys_checked == n, res
                agent.close()
    if found != TRUE_MATCHES:
        raise SystemExit(f"expected {TRUE_MATCHES} matches, got {found}")
    return {"seconds": seconds, "sightings": 14 * WINDOWS_PER_DAY * IDS_PER_WINDOW}


def _daily_file(root: Path) -> str:
    """Add one more signed export of ``DAILY_KEYS`` unseen keys to the served files."""
    from cryptography.hazmat.primitives.asymmetric import ec

    from phe_trace.protocol import export
    from phe_trace.protocol.diagnosis_key import DiagnosisKey, ReportType

    rng = random.Random(7)
    first = int(T0 // 600)
    keys = tuple(
        DiagnosisKey(rng.randbytes(16), first + 144 * (i % 14), 144, 0, ReportType.CONFIRMED_TEST)
        for i in range(DAILY_KEYS)
    )
    signer = export.EcdsaSigner(
        ec.generate_private_key(ec.SECP256R1()), export.SignatureInfo("311", "v1")
    )
    start = int(T0 + 15 * DAY)
    name = export.export_file_name("ZZ", start, start + 3600, 1)
    content = export.TemporaryExposureKeyExport(start, start + 3600, "ZZ", keys=keys)
    exports = root / "v1" / "exports"
    (exports / name).write_bytes(export.build_export_zip(content, [signer]))
    names = sorted(str(f.relative_to(exports)) for f in exports.rglob("*.zip"))
    (exports / "ZZ" / "index.txt").write_bytes(export.format_index(names))
    return export.public_key_spki_base64(signer.public_key)


def case_daily(n: int, baseline: bool, repeats: int) -> dict[str, float]:
    """The next day's check after a first check of ``n`` keys (see the module docstring)."""
    import httpx

    from phe_trace.agent import Agent, AgentConfig
    from phe_trace.agent.state import SyncState

    with tempfile.TemporaryDirectory() as d:
        _, _, files, spki = _workload(n, Path(d) / "agent")
        with _static_server(files, Path(d) / "www") as url, httpx.Client() as client:
            config = AgentConfig(
                data_dir=Path(d) / "agent",
                radio="sim",
                key_server_url=url,
                export_public_keys=spki,
                desktop_notifications=False,
            )
            now = T0 + 14 * DAY - 600
            agent = Agent.open(config, now=now)
            first = agent.sync(now, client)
            assert first.matched_sightings == TRUE_MATCHES, first
            done = agent.store.load(SyncState)
            config = config.model_copy(
                update={"export_public_keys": f"{spki},{_daily_file(Path(d) / 'www')}"}
            )
            agent.config = config
            seconds = float("inf")
            for _ in range(repeats):
                if baseline:
                    agent.close()
                    agent = Agent.open(config, now=now)
                agent.store.save(done)  # as the first check left it
                t = time.perf_counter()
                res = agent.sync(now + 60, client)
                seconds = min(seconds, time.perf_counter() - t)
                assert (res.files_checked, res.keys_checked, res.new_windows) == (
                    1,
                    DAILY_KEYS,
                    0,
                ), res
            agent.close()
    return {"seconds": seconds, "sightings": 14 * WINDOWS_PER_DAY * IDS_PER_WINDOW}


# --- driver ---------------------------------------------------------------------------------


def _child(args: list[str]) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, *args], capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise SystemExit(f"case {args} failed:\n{out.stderr}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=100_000, help="published keys to check")
    parser.add_argument("--quick", action="store_true", help="small run (CI)")
    parser.add_argument("--speedup", type=float, default=None, help="idle time compression")
    parser.add_argument("--repeats", type=int, default=None, help="best of (sync_match)")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--baseline", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    speedup = args.speedup or (240.0 if args.quick else 30.0)
    n = 20_000 if args.quick else args.n
    args.repeats = args.repeats or (1 if args.quick else 3)
    if args.case == "idle":
        row = case_idle(speedup, args.baseline)
    elif args.case == "sync":
        row = case_sync(n, args.baseline, args.repeats)
    elif args.case == "daily":
        row = case_daily(n, args.baseline, args.repeats)
    if args.case:
        row["rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(row))
        return
    flags = ["--speedup", str(speedup), "--n", str(n), "--repeats", str(args.repeats)]
    agent = _child(["--case", "idle", *flags])
    bare = _child(["--case", "idle", "--baseline", *flags])
    rate, base_rate = agent["cpu"] * speedup, bare["cpu"] * speedup
    emit(
        bench="agent",
        case="idle_bumble_hour",
        n=int(agent["windows"]),
        seconds=round(agent["wall"], 3),
        rate=round(rate, 3),
        unit="cpu_seconds_per_simulated_hour",
        baseline="bare bumble radio, same schedule, no agent",
        baseline_rate=round(base_rate, 3),
        ratio=round(rate / base_rate, 3) if base_rate else None,
        peak_rss_mb=round(agent["rss"], 1),
        baseline_peak_rss_mb=round(bare["rss"], 1),
        speedup=speedup,
        load_average_1m=os.getloadavg()[0],
    )
    sync = _child(["--case", "sync", *flags])
    base = _child(["--case", "sync", "--baseline", *flags])
    emit(
        bench="agent",
        case="sync_match",
        n=n,
        seconds=round(sync["seconds"], 3),
        rate=round(n / sync["seconds"], 1),
        unit="keys_per_second",
        baseline="phe_trace.exposure.match alone, in memory, 1 worker",
        baseline_rate=round(n / base["seconds"], 1),
        ratio=round(sync["seconds"] / base["seconds"], 3),
        peak_rss_mb=round(sync["rss"], 1),
        baseline_peak_rss_mb=round(base["rss"], 1),
        sightings=int(sync["sightings"]),
        load_average_1m=os.getloadavg()[0],
    )
    daily = _child(["--case", "daily", *flags])
    cold = _child(["--case", "daily", "--baseline", *flags])
    emit(
        bench="agent",
        case="daily_check",
        n=DAILY_KEYS,
        seconds=round(daily["seconds"], 4),
        rate=round(1 / daily["seconds"], 2),
        unit="checks_per_second",
        baseline="the same check by an agent opened afresh (every stored row opened again)",
        baseline_rate=round(1 / cold["seconds"], 2),
        ratio=round(daily["seconds"] / cold["seconds"], 3),
        peak_rss_mb=round(daily["rss"], 1),
        baseline_peak_rss_mb=round(cold["rss"], 1),
        sightings=int(daily["sightings"]),
        load_average_1m=os.getloadavg()[0],
    )


if __name__ == "__main__":
    main()
