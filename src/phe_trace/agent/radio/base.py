"""The radio interface every backend implements (``protocol_spec/SPEC.md`` §14, AGENT-1).

A radio does four things, all ``async``:

- :meth:`Radio.start_advertising` — begin broadcasting the 20-byte 0xFD6F service data
  (RPI ‖ AEM) as non-connectable advertising at 200–270 ms from a fresh random address;
- :meth:`Radio.rotate` — replace payload *and* address together, as one step, so no
  advertisement ever pairs the old identifier with the new address or vice versa;
- :meth:`Radio.stop_advertising` — stop broadcasting;
- :meth:`Radio.scan` — listen for one window and return what was heard, one
  :class:`RadioSighting` per received advertisement (the agent aggregates per window).

Backends (``bluez``, ``bumble``, ``sim``) are interchangeable behind this interface, like
an HTTP client's transports: the agent's logic never knows which one it drives.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from phe_trace.protocol.advertisement import SERVICE_DATA_LENGTH

from ..errors import RadioError

__all__ = [
    "DEFAULT_ADVERTISING_INTERVAL_MS",
    "Radio",
    "RadioSighting",
    "check_payload",
]

#: The advertising interval range GAEN recommends, in milliseconds (AGENT-1).
DEFAULT_ADVERTISING_INTERVAL_MS = (200, 270)


@dataclass(frozen=True, slots=True)
class RadioSighting:
    """One received exposure-notification advertisement.

    ``service_data`` is the 20-byte 0xFD6F value (RPI ‖ AEM), ``rssi`` the received
    signal strength in dBm as the radio reported it, ``unix_time`` when it was heard and
    ``address`` the sender's (random) Bluetooth address if the backend knows it; the
    address is never stored.
    """

    service_data: bytes
    rssi: int
    unix_time: float
    address: str | None = None


def check_payload(service_data: bytes) -> bytes:
    """Return ``service_data`` if it is exactly 20 bytes, else raise :class:`RadioError`."""
    if not isinstance(service_data, bytes) or len(service_data) != SERVICE_DATA_LENGTH:
        got = len(service_data) if isinstance(service_data, bytes | bytearray) else "non-bytes"
        raise RadioError(f"service data must be {SERVICE_DATA_LENGTH} bytes, got {got}")
    return service_data


@runtime_checkable
class Radio(Protocol):
    """What the agent needs from a radio backend (AGENT-1)."""

    @property
    def name(self) -> str:
        """The backend's name: ``"bluez"``, ``"bumble"`` or ``"sim"``."""
        ...

    @property
    def advertising(self) -> bool:
        """Whether the radio is currently broadcasting."""
        ...

    async def start_advertising(self, service_data: bytes) -> None:
        """Broadcast ``service_data`` (20 bytes) from a fresh random address."""
        ...

    async def rotate(self, service_data: bytes) -> None:
        """Change payload and random address together, as one step (AGENT-2)."""
        ...

    async def stop_advertising(self) -> None:
        """Stop broadcasting (idempotent)."""
        ...

    async def scan(self, duration_s: float, now: float) -> list[RadioSighting]:
        """Listen for ``duration_s`` seconds; ``now`` is the window's start (unix seconds).

        Each sighting's ``unix_time`` is ``now`` plus the time elapsed in the window
        (backends with their own clock of record, like ``sim``, stamp their own times).
        """
        ...

    async def close(self) -> None:
        """Release the radio (stops advertising; further calls raise)."""
        ...
