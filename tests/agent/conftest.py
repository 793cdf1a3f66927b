"""Fixtures for the agent's tests: a fixed start time and agent factories."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from phe_trace.agent import Agent, AgentConfig
from phe_trace.agent.radio.sim import SimRadio

#: 2026-11-02 00:00:00 UTC — a day boundary (a multiple of 86400).
T0 = 1_793_577_600.0


@pytest.fixture
def t0() -> float:
    return T0


@pytest.fixture
def make_agent(tmp_path: Path) -> Iterator[Callable[..., Agent]]:
    """Build agents with a SimRadio and a store in their own directory under tmp_path."""
    opened: list[Agent] = []

    def build(name: str = "a", now: float = T0, seed: int | None = 1, **settings: object) -> Agent:
        config = AgentConfig(data_dir=tmp_path / name, radio="sim", **settings)  # type: ignore[arg-type]
        rng = random.Random(seed) if seed is not None else None
        agent = Agent.open(config, now=now, radio=SimRadio(), rng=rng)
        opened.append(agent)
        return agent

    yield build
    for agent in opened:
        try:
            agent.close()
        except Exception:
            pass
