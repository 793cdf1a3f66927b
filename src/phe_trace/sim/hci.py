"""``--radio bumble``: a handful of devices whose encounters travel over real HCI.

The chosen devices (the app users of the city's largest households, so that they meet
every day) each get a :class:`phe_trace.agent.radio.bumble.BumbleRadio` on one shared
virtual link, besides their sim radio. Whenever two of them are in the same scan slot,
the sender advertises its agent's *current* payload as real legacy 0xFD6F advertising
data from a random address, the link is told the RSSI the radio physics drew for that
pair, the listener scans for a short real-time window, and whatever its controller
reported — parsed by the protocol's own parser — is handed to the listener's agent.
Everything else about those devices is unchanged.

This costs real time (one short scan per slot in which they meet), which is why only a
few devices do it.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

import numpy as np

from .world import City

__all__ = ["HciBridge", "pick_bumble_devices"]

_SCAN_S = 0.08
_INTERVAL_MS = (20, 30)


def pick_bumble_devices(city: City, count: int) -> list[int]:
    """App users of the largest households, up to ``count`` people."""
    users = np.flatnonzero(city.has_app)
    if count <= 0 or not len(users):
        return []
    sizes = np.bincount(city.household[users], minlength=city.households)
    order = np.argsort(-sizes, kind="stable")
    picked: list[int] = []
    for hh in order:
        if sizes[hh] < 2 and picked:
            break
        picked += [int(p) for p in users[city.household[users] == hh]]
        if len(picked) >= count:
            break
    return picked[:count]


class HciBridge:
    """Delivers encounters among a few devices over bumble virtual controllers."""

    def __init__(self, people: list[int]) -> None:
        from phe_trace.agent.radio.bumble import BumbleLink

        self.people = set(people)
        self.loop = asyncio.new_event_loop()
        self.link = BumbleLink(range_m=1.0)
        self.radios: dict[int, Any] = {}

        async def _create() -> None:  # bumble's controllers need a running loop
            for i, person in enumerate(people):
                # far apart: only pairs whose RSSI the simulation pins hear each other
                self.radios[person] = self.link.radio(
                    f"p{person}", (100.0 * (i + 1), 0.0), interval_ms=_INTERVAL_MS
                )

        self.loop.run_until_complete(_create())
        self._advertised: dict[int, bytes] = {}
        #: Advertisements that went through the virtual controllers, and scans run.
        self.delivered = 0
        self.scans = 0

    def deliver(
        self, encounters: list[tuple[int, int, int]], payloads: dict[int, bytes], now: float
    ) -> list[tuple[int, bytes, int]]:
        """One scan slot: ``(listener, sender, rssi)`` → what each listener really heard."""
        return self.loop.run_until_complete(self._deliver(encounters, payloads, now))

    async def _deliver(
        self, encounters: list[tuple[int, int, int]], payloads: dict[int, bytes], now: float
    ) -> list[tuple[int, bytes, int]]:
        senders = {s for _, s, _ in encounters if s in payloads}
        for sender in senders:
            radio = self.radios[sender]
            if self._advertised.get(sender) != payloads[sender]:
                if radio.advertising:
                    await radio.rotate(payloads[sender])
                else:
                    await radio.start_advertising(payloads[sender])
                self._advertised[sender] = payloads[sender]
        wanted: dict[int, set[bytes]] = defaultdict(set)
        for listener, sender, rssi in encounters:
            if sender in senders:
                self.link.set_rssi(f"p{listener}", f"p{sender}", rssi)
                wanted[listener].add(payloads[sender])
        listeners = sorted(wanted)
        heard = await asyncio.gather(*(self.radios[p].scan(_SCAN_S, now) for p in listeners))
        self.scans += len(listeners)
        for listener, sender, _ in encounters:
            self.link.set_rssi(f"p{listener}", f"p{sender}", None)
        out = []
        for listener, sightings in zip(listeners, heard, strict=True):
            first: dict[bytes, int] = {}
            for s in sightings:
                if s.service_data in wanted[listener]:
                    first.setdefault(s.service_data, s.rssi)
            out += [(listener, data, rssi) for data, rssi in first.items()]
        self.delivered += len(out)
        return out

    def close(self) -> None:
        async def _close() -> None:
            for radio in self.radios.values():
                await radio.close()

        try:
            self.loop.run_until_complete(_close())
        finally:
            self.loop.close()
