"""The service's clock: time is passed in, so tests can expire codes without sleeping.

Every component of the verification service reads "now" from one :class:`Clock` handed to
it at construction; nothing deeper reads the system time.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol

__all__ = ["Clock", "FunctionClock", "ManualClock", "SystemClock"]


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
