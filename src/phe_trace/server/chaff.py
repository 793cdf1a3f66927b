"""Chaff: fake publish requests (``X-Chaff`` header) answered like real ones, never stored.

``protocol_spec/SPEC.md`` §11 (PUB-23). A device sends chaff so that an observer of its
traffic cannot tell a real upload from noise. The server answers a chaff request with
the same status, headers and body shape as a real success — a genuine revision token
over random keys, the same padding range — after a delay drawn around the moving
average of real publish latency. Nothing is parsed into storage, nothing is logged
beyond a counter.
"""

from __future__ import annotations

import json
import random
import secrets
import threading

from phe_trace.protocol.publish import PublishResponse

from .revision import RevisableKey, RevisionKeyRing

__all__ = ["CHAFF_HEADER", "LatencyTracker", "chaff_response"]

#: Header marking a chaff request (any non-empty value), as in GAEN.
CHAFF_HEADER = "x-chaff"
_DEFAULT_KEYS = 14


class LatencyTracker:
    """Exponential moving average of real publish latency (seconds)."""

    def __init__(self, initial: float = 0.02, weight: float = 0.1) -> None:
        self._value = initial
        self._weight = weight
        self._lock = threading.Lock()

    def observe(self, seconds: float) -> None:
        """Fold one real publish latency into the average."""
        with self._lock:
            self._value += self._weight * (seconds - self._value)

    def delay(self, cap_seconds: float) -> float:
        """A delay for one chaff answer: the average ±25 %, at most ``cap_seconds``."""
        jitter = 0.75 + random.random() / 2  # noqa: S311 - timing noise, not a secret
        return min(self._value * jitter, cap_seconds)


def _claimed_key_count(body: bytes) -> int:
    try:
        keys = json.loads(body).get("temporaryExposureKeys")
    except (ValueError, AttributeError):
        return _DEFAULT_KEYS
    return len(keys) if isinstance(keys, list) and 1 <= len(keys) <= 30 else _DEFAULT_KEYS


def chaff_response(body: bytes, ring: RevisionKeyRing, padding: str) -> PublishResponse:
    """A success-shaped answer for a chaff request with ``body``."""
    count = _claimed_key_count(body)
    fake = [RevisableKey(secrets.token_bytes(16), 2_600_000 + 144 * i, 144) for i in range(count)]
    return PublishResponse(
        revisionToken=ring.encrypt(fake), insertedExposures=count, padding=padding
    )
