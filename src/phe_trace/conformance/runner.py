"""Run the battery and collect one :class:`CheckResult` per check."""

from __future__ import annotations

import httpx

from .client import ConformanceConfig, KeyServerClient
from .export_checks import EXPORT_CHECKS
from .model import (
    FAIL,
    PASS,
    SKIP,
    Battery,
    Check,
    CheckFailedError,
    CheckResult,
    CheckSkippedError,
)
from .publish_checks import PUBLISH_CHECKS

__all__ = ["ALL_CHECKS", "run_conformance"]

#: The documented battery, in the order it runs: publish first, then the export store.
ALL_CHECKS: tuple[Check, ...] = PUBLISH_CHECKS + EXPORT_CHECKS


def run_check(check: Check, battery: Battery) -> CheckResult:
    """One check; a transport error or an unexpected answer is a failure, never a crash."""
    try:
        note = check.run(battery)
    except CheckFailedError as exc:
        return CheckResult(check.requirements, check.title, FAIL, str(exc))
    except CheckSkippedError as exc:
        return CheckResult(check.requirements, check.title, SKIP, str(exc))
    except httpx.HTTPError as exc:
        return CheckResult(check.requirements, check.title, FAIL, f"HTTP: {type(exc).__name__}")
    return CheckResult(check.requirements, check.title, PASS, note or "")


def run_conformance(
    config: ConformanceConfig,
    now: float,
    *,
    publish: bool = True,
    exports: bool = True,
    http: httpx.Client | None = None,
) -> tuple[list[CheckResult], Battery]:
    """Run the battery against ``config.server`` at wall-clock ``now`` (unix seconds).

    ``now`` must be the real time: the server under test checks the minted certificates
    against its own clock. Returns the rows and the battery (``published`` lists the
    synthetic keys uploaded, for a later ``--expect-published`` run).
    """
    own = http is None
    client = http or httpx.Client(timeout=config.timeout_s)
    try:
        battery = Battery(KeyServerClient(config, client), now)
        checks = (PUBLISH_CHECKS if publish else ()) + (EXPORT_CHECKS if exports else ())
        return [run_check(check, battery) for check in checks], battery
    finally:
        if own:
            client.close()
