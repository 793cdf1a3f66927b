"""Whole-radio scenarios shared by the agent tests: agents on one bumble link."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from pathlib import Path

from phe_trace.agent import Agent, AgentConfig
from phe_trace.agent.radio.bumble import BumbleLink

from .conftest import T0

FAST = (20, 30)  # advertising interval for tests, ms: short scan windows still hear peers


def _config(tmp_path: Path, name: str) -> AgentConfig:
    return AgentConfig(
        data_dir=tmp_path / name,
        radio="bumble",
        scan_period_s=3600,
        scan_jitter_s=0,
        scan_duration_s=0.12,
    )


async def run_bumble_day(
    tmp_path: Path,
    positions: dict[str, tuple[float, float]],
    hours: int = 24,
    start: float = T0,
    pinned: dict[tuple[str, str], int] | None = None,
    setup: Callable[[dict[str, Agent]], None] | None = None,
) -> dict[str, Agent]:
    """Run agents on one link for ``hours`` simulated hours, a step every 5 minutes;
    ``setup`` gets the agents once opened, before the first step."""
    link = BumbleLink()
    for (listener, sender), rssi in (pinned or {}).items():
        link.set_rssi(listener, sender, rssi)
    agents = {
        name: Agent.open(
            _config(tmp_path, name),
            now=start,
            radio=link.radio(name, pos, interval_ms=FAST),
            rng=random.Random(k),
        )
        for k, (name, pos) in enumerate(positions.items())
    }
    if setup is not None:
        setup(agents)
    now = start
    while now < start + hours * 3600:
        await asyncio.gather(*(a.step(now) for a in agents.values()))
        now += 300
    for a in agents.values():
        assert a.radio is not None
        await a.radio.close()
    return agents
