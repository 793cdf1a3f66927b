"""A fixed-window rate limiter for ``/api/verify``, one window per API key (VER-11).

In-process: each server process counts on its own, so N processes allow N times the
limit; a deployment with several processes sets the limit accordingly (documented in
``server/README.md``). Keys are API-key ids, never the keys or client addresses.
"""

from __future__ import annotations

import threading
from datetime import datetime

from .errors import RateLimitedError

__all__ = ["RateLimiter"]


class RateLimiter:
    """At most ``limit`` hits per ``window_seconds`` per key."""

    def __init__(self, limit: int, window_seconds: int) -> None:
        self._limit = limit
        self._window = window_seconds
        self._counts: dict[int, tuple[int, int]] = {}
        self._lock = threading.Lock()

    def hit(self, key: int, now: datetime) -> None:
        """Count one request; raise ``too_many_requests`` past the limit."""
        self._take(key, now, 1)

    def check(self, key: int, now: datetime) -> None:
        """Raise ``too_many_requests`` as :meth:`hit` would, without counting (chaff)."""
        self._take(key, now, 0)

    def _take(self, key: int, now: datetime, cost: int) -> None:
        unix = int(now.timestamp())
        window = unix - unix % self._window
        with self._lock:
            start, count = self._counts.get(key, (window, 0))
            if start != window:
                start, count = window, 0
            if count >= self._limit:
                raise RateLimitedError(
                    "too many requests for this API key", retry_after=start + self._window - unix
                )
            if not cost:
                return
            self._counts[key] = (start, count + cost)
            if len(self._counts) > 10_000:
                self._counts = {k: v for k, v in self._counts.items() if v[0] == window}
