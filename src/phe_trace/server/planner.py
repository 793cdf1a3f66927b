"""The pure export batch planner (SPEC PUB-26): which time windows to export, given now.

Windows are aligned to ``period`` (seconds, a divisor of a day). A window may be
exported once it ended at least ``min_window_age`` ago — keys created in it (hour
truncated, or embargoed to their expiry) are then all committed. Planning continues
after the newest existing batch; the very first plan starts at the earliest stored key
(or, with no keys, exports only the latest closable window), never earlier than the
retention horizon.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BatchWindow", "plan_batches"]


@dataclass(frozen=True, slots=True, order=True)
class BatchWindow:
    """A half-open export window [start, end) in unix seconds."""

    start: int
    end: int


def _floor(value: int, period: int) -> int:
    return value - value % period


def plan_batches(
    *,
    now: int,
    period: int,
    min_window_age: int,
    last_end: int | None,
    earliest_key: int | None,
    oldest_start: int,
    max_batches: int = 1000,
) -> list[BatchWindow]:
    """New windows to export at ``now``, oldest first (at most ``max_batches``)."""
    if period <= 0 or 86400 % period:
        raise ValueError("period must be a positive divisor of 86400")
    close_limit = _floor(now - min_window_age, period)
    if last_end is not None:
        start = last_end
    elif earliest_key is not None:
        start = _floor(earliest_key, period)
    else:
        start = close_limit - period
    start = max(start, _floor(oldest_start, period))
    windows: list[BatchWindow] = []
    while start + period <= close_limit and len(windows) < max_batches:
        windows.append(BatchWindow(start, start + period))
        start += period
    return windows
