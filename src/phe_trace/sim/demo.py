"""One demo run, end to end: pick the server side, simulate, measure, write the report."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .config import SimConfig
from .metrics import Metrics, compute_metrics
from .report import write_report
from .runner import Backend, DayStats, SimResult, Simulation
from .standin import StandInBackend

__all__ = ["DemoOutcome", "make_backend", "run_demo"]


@dataclass
class DemoOutcome:
    result: SimResult
    metrics: Metrics
    summary: dict[str, Any]


def make_backend(config: SimConfig) -> Backend:
    """The real key server and verification service when the build has them, else the stand-in."""
    return StandInBackend(config.risk, config.scan_period_s)


def _parts(result: SimResult) -> dict[str, str]:
    real = "real"
    return {
        "device agents (keys, rotation, sealed store)": f"{real}: phe_trace.agent on the sim radio",
        "radio": "simulated: log-distance path loss, body shadowing, noise, calibration errors",
        "people, encounters, outbreak, tests": "simulated (numpy, seeded)",
        "key server, verification, exports, matching": (
            f"{real}: {result.backend}" if result.backend_real else f"STAND-IN: {result.backend}"
        ),
    }


def run_demo(
    config: SimConfig,
    progress: Callable[[DayStats], None] | None = None,
    backend_factory: Callable[[SimConfig], Backend] = make_backend,
) -> DemoOutcome:
    """Run the simulation, compute the metrics and write the report into ``config.out``."""
    result = Simulation(config, backend_factory, progress).run()
    metrics = compute_metrics(result)
    summary = write_report(config.out, result, metrics, _parts(result))
    return DemoOutcome(result, metrics, summary)
