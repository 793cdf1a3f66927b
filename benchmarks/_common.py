"""Shared helpers for benchmark scripts: JSON result lines, machine facts, OpenSSL limits.

Each benchmark prints one JSON object per measured case (``ARCHITECTURE.md``: benchmarks are
scripts), with a baseline measured in the same run so that ratios mean something on a
noisy machine.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import shutil
import subprocess
import time
from collections.abc import Callable
from typing import Any

FIELDS = (
    "bench",
    "case",
    "n",
    "seconds",
    "rate",
    "unit",
    "baseline",
    "baseline_rate",
    "ratio",
    "peak_rss_mb",
    "machine",
)


def machine() -> str:
    """A short description of the machine: CPU model, cores, Python."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{model}; {os.cpu_count()} cpu; Python {platform.python_version()}"


def peak_rss_mb() -> float:
    """Peak resident set size of this process (and waited-for children) in MiB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return round(max(own, children) / 1024, 1)


def emit(**fields: Any) -> dict[str, Any]:
    """Print one result line with every standard field (null where it does not apply)."""
    row = {key: fields.pop(key, None) for key in FIELDS}
    if row["machine"] is None:
        row["machine"] = machine()
    if row["peak_rss_mb"] is None:
        row["peak_rss_mb"] = peak_rss_mb()
    row.update(fields)
    print(json.dumps(row), flush=True)
    return row


def best_of(repeats: int, fn: Callable[[], object]) -> float:
    """The fastest of ``repeats`` wall-clock timings of ``fn()`` in seconds."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def openssl_speed(args: list[str], seconds: int = 1) -> float | None:
    """Bytes per second reported by ``openssl speed -mr`` for the given algorithm args.

    Returns ``None`` when the ``openssl`` command is not available.
    """
    exe = shutil.which("openssl")
    if exe is None:
        return None
    out = subprocess.run(
        [exe, "speed", "-mr", "-seconds", str(seconds), *args],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    for line in out.splitlines():
        if line.startswith("+F:"):
            return float(line.rsplit(":", 1)[1])
    return None
