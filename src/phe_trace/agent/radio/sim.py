"""``sim``: an in-memory radio for the city simulator — no packets, no event loop needed.

Thousands of agents must run in one process, so this backend does no per-packet work:
it only *holds* the payload its agent currently advertises and *queues* the
advertisements the simulator says its agent heard. The simulator decides who hears whom
(its own mobility and distance model) and delivers each encounter by calling
:meth:`SimRadio.inject` on the listener's radio. The agent takes queued sightings in
through exactly the same path as sightings from a real scan window
(:meth:`phe_trace.agent.Agent.ingest`), so aggregation, sealing, retention and matching
are the real code.

The contract the simulator relies on (``protocol_spec/SPEC.md`` AGENT-12)::

    from phe_trace.agent import Agent, AgentConfig
    from phe_trace.agent.radio.sim import SimRadio

    radio = SimRadio()
    agent = Agent.open(config, radio=radio, now=t0)   # config.data_dir: one dir per agent
    ...
    agent.tick(now)                  # keys, rotation, scan bookkeeping, purge; sync, cheap
    payload = radio.current_payload()          # 20 bytes RPI ‖ AEM, or None if silent
    other_radio.inject(payload, rssi=-67, unix_time=now)   # "other heard this agent"
    ...
    agent.tick(later)                # drains the injected sightings into the store

- :meth:`current_payload` — the 20-byte service data being advertised now, or ``None``
  before the first :meth:`Agent.tick` / after stop. It changes only at rotation
  (every 10–20 simulated minutes and at each new day's key).
- :attr:`rotations` — how many times payload and address changed (a cheap change
  detector: cache the payload and re-read only when this grows).
- :attr:`address` — the current simulated random address; changes with the payload.
- :meth:`inject` — queue one heard advertisement: the 20-byte service data, the RSSI
  in dBm as the listener's radio would report it, and the unix time it was heard.
  Malformed payloads raise :class:`~phe_trace.agent.errors.RadioError` at once.
- :meth:`drain` — hand the queue to the agent (the agent calls it in ``tick``).

The asynchronous :class:`~phe_trace.agent.radio.base.Radio` methods work too (the
agent's ``run`` loop may drive a ``SimRadio``); ``scan`` then returns the queue
immediately without waiting.
"""

from __future__ import annotations

import secrets

from ..errors import RadioStateError
from .base import RadioSighting, check_payload

__all__ = ["SimRadio"]


def _random_address() -> str:
    raw = bytearray(secrets.token_bytes(6))
    raw[0] &= 0x3F  # non-resolvable private address: top two bits 00
    return ":".join(f"{b:02X}" for b in raw)


class SimRadio:
    """In-memory radio: holds the advertised payload and a queue of injected sightings."""

    __slots__ = ("_address", "_closed", "_payload", "_queue", "rotations")

    def __init__(self) -> None:
        self._payload: bytes | None = None
        self._address: str | None = None
        self._queue: list[RadioSighting] = []
        self._closed = False
        #: Number of payload/address changes so far (start counts as the first).
        self.rotations = 0

    # -- the simulator's side -------------------------------------------------------

    @property
    def name(self) -> str:
        return "sim"

    @property
    def advertising(self) -> bool:
        return self._payload is not None

    @property
    def address(self) -> str | None:
        """The simulated random address of the current advertisement (None if silent).

        Drawn when first read after a change of payload (a simulator with thousands of
        radios that never reads it draws none); it stays the same until the next change.
        """
        if self._payload is not None and self._address is None:
            self._address = _random_address()
        return self._address

    def current_payload(self) -> bytes | None:
        """The 20-byte service data advertised now, or ``None`` when not advertising."""
        return self._payload

    def inject(self, service_data: bytes, rssi: int, unix_time: float) -> None:
        """Queue one advertisement this radio's agent heard (see the module docstring)."""
        self._check_open()
        self._queue.append(RadioSighting(check_payload(service_data), int(rssi), unix_time))

    def pending(self) -> int:
        """How many injected sightings wait for the agent's next tick."""
        return len(self._queue)

    # -- the agent's synchronous side ------------------------------------------------

    def set_payload(self, service_data: bytes) -> None:
        """Advertise ``service_data`` from a new address (start or rotation, one step)."""
        self._check_open()
        self._payload = check_payload(service_data)
        self._address = None  # a new one, drawn when read (see ``address``)
        self.rotations += 1

    def clear_payload(self) -> None:
        """Stop advertising."""
        self._payload = None
        self._address = None

    def drain(self) -> list[RadioSighting]:
        """Return and forget every queued sighting, oldest first as injected."""
        queue, self._queue = self._queue, []
        return queue

    # -- the asynchronous Radio interface ----------------------------------------------

    async def start_advertising(self, service_data: bytes) -> None:
        self.set_payload(service_data)

    async def rotate(self, service_data: bytes) -> None:
        if self._payload is None:
            raise RadioStateError("rotate() before start_advertising()")
        self.set_payload(service_data)

    async def stop_advertising(self) -> None:
        self.clear_payload()

    async def scan(self, duration_s: float, now: float) -> list[RadioSighting]:
        self._check_open()
        return self.drain()

    async def close(self) -> None:
        self.clear_payload()
        self._queue = []
        self._closed = True

    def _check_open(self) -> None:
        if self._closed:
            raise RadioStateError("the radio is closed")
