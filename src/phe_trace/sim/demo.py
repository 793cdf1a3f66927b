"""One demo run, end to end: pick the server side, simulate, measure, write the report."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from .config import SIM_EPOCH, SimConfig
from .errors import SimError
from .live import LiveBackend, live_backend_available
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


@contextmanager
def _quiet_devices() -> Iterator[None]:
    """Thousands of agents each log their notification; the demo counts them instead."""
    logger = logging.getLogger("phe_trace.agent")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def make_backend(config: SimConfig) -> Backend:
    """The real key server and verification service when the build has them, else the
    stand-in; with two cities, each city's real servers and a gateway between them."""
    if config.cities == 2:
        if live_backend_available() is not None:
            raise SimError("--cities 2 needs the key server and gateway in this build")
        import numpy as np

        from .federated import FederatedBackend

        return FederatedBackend(
            SIM_EPOCH,
            config.export_period_s,
            config.export_padding_keys,
            np.repeat(np.arange(2), config.people),
            config.federation_upload_delay_s,
        )
    if live_backend_available() is None:
        return LiveBackend(
            SIM_EPOCH,
            config.export_period_s,
            config.export_padding_keys,
            config.analytics_min_batch,
            config.analytics_epsilon,
        )
    return StandInBackend(config)


def _parts(result: SimResult) -> dict[str, str]:
    parts = {
        "people, places, encounters, outbreak, tests": "simulated (numpy, seeded)",
        "radio": (
            "simulated: log-distance path loss, body shadowing, noise, per-device "
            "calibration errors; delivered through the agent's sim radio"
        ),
        "device agents: keys, rotation, sealed store, 14-day retention": (
            "real: phe_trace.agent, one per app user"
        ),
    }
    if result.hci:
        h = result.hci
        parts["radio over HCI (--radio bumble)"] = (
            f"real HCI: {h['devices']} devices advertise and scan on bumble virtual controllers "
            f"whenever they meet ({h['scans']} scans, "
            f"{h['advertisements_heard_over_hci']} advertisements heard)"
        )
    if result.home_city is not None:
        parts["two cities, commuters between them"] = (
            f"simulated: {result.config.people} people per city, {result.commuters} commuters "
            "who also work with a team of the other city"
        )
        parts["federation: upload, gateway, audit-verified download, export"] = (
            "real: phe_trace.server.federation against phe_trace.gateway over HTTP"
        )
    if result.backend_real:
        parts["key server, export worker, signed exports"] = "real: " + result.backend
        parts["verification service (codes, tokens, certificates)"] = (
            "real: phe_trace.verification over HTTP; codes issued as a case worker would"
        )
        parts["device checks: download, signature check, matching, scoring, notification"] = (
            "real: Agent.sync with phe_trace.exposure (the agent's default risk configuration)"
        )
        parts["report: verify code, certificate, publish"] = "real: Agent.report over HTTP"
    else:
        parts["key server, verification, exports, matching"] = "STAND-IN: " + result.backend
    return parts


def run_demo(
    config: SimConfig,
    progress: Callable[[DayStats], None] | None = None,
    backend_factory: Callable[[SimConfig], Backend] = make_backend,
) -> DemoOutcome:
    """Run the simulation, compute the metrics and write the report into ``config.out``."""
    with _quiet_devices():
        result = Simulation(config, backend_factory, progress).run()
    metrics = compute_metrics(result)
    try:
        summary = write_report(config.out, result, metrics, _parts(result), result.aggregate)
    except OSError as exc:
        raise SimError(f"cannot write the report to {config.out}: {exc.strerror or exc}") from None
    return DemoOutcome(result, metrics, summary)
