"""The protocol's time base: 10-minute intervals and 144-interval days.

``protocol_spec/SPEC.md`` §2 (requirements TIME-1 … TIME-4).
"""

from __future__ import annotations

from .errors import IntervalRangeError

__all__ = [
    "INTERVAL_SECONDS",
    "MAX_INTERVAL",
    "TEK_ROLLING_PERIOD",
    "en_interval_number",
    "interval_start_seconds",
    "rolling_start_interval_number",
]

#: Length of one ENIntervalNumber interval in seconds (SPEC TIME-1).
INTERVAL_SECONDS = 600
#: Intervals per Temporary Exposure Key: 144 × 10 min = 24 h (SPEC TIME-3).
TEK_ROLLING_PERIOD = 144
#: The largest interval number: interval numbers are unsigned 32-bit (SPEC TIME-2).
MAX_INTERVAL = 0xFFFFFFFF


def check_interval(name: str, interval: int) -> int:
    """Return ``interval`` if it is an int in the uint32 range, else raise."""
    if isinstance(interval, bool) or not isinstance(interval, int):
        raise IntervalRangeError(f"{name} must be an int, got {type(interval).__name__}")
    if not 0 <= interval <= MAX_INTERVAL:
        raise IntervalRangeError(f"{name} must be in 0..{MAX_INTERVAL}, got {interval}")
    return interval


def en_interval_number(unix_seconds: float) -> int:
    """ENIntervalNumber: ``floor(unix_seconds / 600)`` as an unsigned 32-bit value (TIME-1)."""
    if isinstance(unix_seconds, bool) or not isinstance(unix_seconds, int | float):
        raise IntervalRangeError(
            f"unix_seconds must be a number, got {type(unix_seconds).__name__}"
        )
    if unix_seconds != unix_seconds or unix_seconds < 0:  # NaN or negative
        raise IntervalRangeError(f"unix_seconds must be >= 0, got {unix_seconds}")
    if unix_seconds == float("inf"):
        raise IntervalRangeError("unix_seconds must be finite")
    return check_interval("interval", int(unix_seconds // INTERVAL_SECONDS))


def rolling_start_interval_number(interval: int) -> int:
    """The first interval of the 144-interval day holding ``interval`` (TIME-3)."""
    check_interval("interval", interval)
    return interval - interval % TEK_ROLLING_PERIOD


def interval_start_seconds(interval: int) -> int:
    """Unix time (seconds) at which ``interval`` begins."""
    return check_interval("interval", interval) * INTERVAL_SECONDS
