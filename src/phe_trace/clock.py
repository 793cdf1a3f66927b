"""The clocks of every role: time is passed in, so tests and the simulator drive it.

Two kinds, one module. The key server, the gateway and the agent read unix seconds from
a :data:`UnixClock` (a function; :func:`system_clock` is the real one). The verification
service reads an aware UTC ``datetime`` from a :class:`Clock` (``.now()``):
:class:`SystemClock` is the real one, :class:`FunctionClock` reads a :data:`UnixClock`,
so a process that hosts both roles runs them on one time. :class:`ManualClock` moves
only when told (tests); :class:`SettableClock` is both kinds at once, set in unix
seconds (the simulator's one clock of every role).

Each role reads "now" from the clock handed to it at construction; nothing deeper reads
the system time (ARCHITECTURE.md: time is a parameter).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol

__all__ = [
    "Clock",
    "FunctionClock",
    "ManualClock",
    "SettableClock",
    "SystemClock",
    "UnixClock",
    "system_clock",
]

#: A clock that returns the current unix time in seconds.
UnixClock = Callable[[], float]


def system_clock() -> float:
    """The real time in unix seconds (the default :data:`UnixClock`)."""
    return time.time()


class Clock(Protocol):
    """Something that tells the current time as an aware UTC datetime."""

    def now(self) -> datetime:
        """The current time (timezone-aware, UTC)."""
        ...


class SystemClock:
    """The real wall clock."""

    def now(self) -> datetime:
        """The current UTC time."""
        return datetime.now(UTC)


class FunctionClock:
    """Adapts a clock that returns unix seconds (the key server's kind) to :class:`Clock`."""

    def __init__(self, unix_seconds: Callable[[], float]) -> None:
        self._unix_seconds = unix_seconds

    def now(self) -> datetime:
        """The wrapped clock's time as an aware UTC datetime."""
        return datetime.fromtimestamp(self._unix_seconds(), UTC)


class ManualClock:
    """A clock that only moves when told to (tests, the simulator)."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("ManualClock needs a timezone-aware start time")
        self._now = start.astimezone(UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        """The time the clock was last set to."""
        with self._lock:
            return self._now

    def advance(self, delta: timedelta) -> None:
        """Move the clock forward by ``delta``."""
        with self._lock:
            self._now += delta

    def set(self, when: datetime) -> None:
        """Jump to ``when`` (timezone-aware)."""
        if when.tzinfo is None:
            raise ValueError("ManualClock needs a timezone-aware time")
        with self._lock:
            self._now = when.astimezone(UTC)


class SettableClock:
    """A time set in unix seconds (``.t``), read as unix seconds (call) or a UTC datetime."""

    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def now(self) -> datetime:
        """The time set, as an aware UTC datetime."""
        return datetime.fromtimestamp(self.t, UTC)
