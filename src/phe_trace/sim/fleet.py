"""Every app user's device: the real agent (:class:`phe_trace.agent.Agent`) on a sim radio.

The fleet is the simulator's hand on the devices: it advances an agent's clock
(``tick``: key of the day, identifier rotation, ingest of what its radio heard), reads
the payload it advertises, and injects what another device heard. Each agent has its
own store (sealed SQLite, in memory) and its own randomness; nothing is shared.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import suppress

import numpy as np

from phe_trace.agent import Agent, AgentConfig, AgentError
from phe_trace.agent.radio.sim import SimRadio
from phe_trace.agent.records import iter_sighting_fields

from .world import City, IntArray

__all__ = ["Fleet"]


class Fleet:
    """The agents of all app users, indexed by person number."""

    def __init__(
        self,
        city: City,
        now: float,
        seed: int,
        scan_period_s: int,
        settings: dict[str, object] | list[dict[str, object]] | None = None,
        home: IntArray | None = None,
    ) -> None:
        """``settings``: the agents' settings, or one dict per city with ``home`` giving
        each person's city (two cities: each device follows its own city's servers)."""
        self.city = city
        self.agents: dict[int, Agent] = {}
        self.radios: dict[int, SimRadio] = {}
        self._last = np.full(city.n, -np.inf)
        rng = random.Random(seed)  # noqa: S311 - simulation, not cryptography
        per_city = settings if isinstance(settings, list) else [settings or {}]
        # One validated settings object per city, copied per device (validation once, not
        # 10,000 times).
        bases = [
            AgentConfig(
                data_dir=None,
                radio="sim",
                scan_period_s=float(scan_period_s),
                scan_jitter_s=0.0,
                desktop_notifications=False,
                **dict(extra),  # type: ignore[arg-type]
            )
            for extra in per_city
        ]
        for person in np.flatnonzero(city.has_app):
            p = int(person)
            radio = SimRadio()
            base = bases[0 if home is None else int(home[p])]
            config = base.model_copy(update={"tx_power_dbm": int(city.tx_power_dbm[p])})
            self.agents[p] = Agent.open(
                config,
                radio=radio,
                now=now,
                rng=random.Random(rng.getrandbits(64)),  # noqa: S311
            )
            self.radios[p] = radio

    def __len__(self) -> int:
        return len(self.agents)

    def __iter__(self) -> Iterator[int]:
        return iter(self.agents)

    def advance(self, people: IntArray, now: float) -> dict[int, bytes]:
        """Tick each of ``people`` to ``now``; return the payload each advertises."""
        out: dict[int, bytes] = {}
        last = self._last
        for person in people.tolist():
            if now > last[person]:
                self.agents[person].tick(now)
                last[person] = now
            payload = self.radios[person].current_payload()
            if payload is not None:
                out[person] = payload
        return out

    def hear(self, listener: int, payload: bytes, rssi: int, unix_time: float) -> None:
        """``listener``'s radio heard ``payload`` at ``rssi`` dBm."""
        self.radios[listener].inject(payload, rssi, unix_time)

    def tick(self, person: int, now: float) -> None:
        """Advance one agent (ingesting whatever its radio queued)."""
        if now > self._last[person]:
            self.agents[person].tick(now)
            self._last[person] = now

    def sightings(self, person: int) -> list[tuple[bytes, bytes, float, int]]:
        """What ``person``'s agent stored, read back from its sealed store (through the
        path its checks read, which opens only rows it has not opened before)."""
        return [
            (rpi, aem, t, rssi_mean)
            for plain in self.agents[person].store.sighting_plaintexts()
            for rpi, aem, t, _, _, rssi_mean, _ in iter_sighting_fields(plain)
        ]

    def close(self) -> None:
        for agent in self.agents.values():
            with suppress(AgentError, OSError):
                agent.close()
        self.agents.clear()
        self.radios.clear()
