"""The pure export batch planner, as a table (SPEC PUB-26)."""

from __future__ import annotations

import pytest

from phe_trace.server.planner import BatchWindow, plan_batches

H = 3600
DAY = 86400
T0 = 1_795_000_000 - 1_795_000_000 % DAY  # a UTC midnight


@pytest.mark.parametrize(
    ("name", "kwargs", "expected"),
    [
        (
            "first run without keys: only the latest closable window",
            dict(now=T0 + 10 * H + 5, last_end=None, earliest_key=None),
            [(T0 + 7 * H, T0 + 8 * H)],
        ),
        (
            "first run with keys: from the earliest key's window",
            dict(now=T0 + 10 * H, last_end=None, earliest_key=T0 + 5 * H + 1800),
            [(T0 + 5 * H, T0 + 6 * H), (T0 + 6 * H, T0 + 7 * H), (T0 + 7 * H, T0 + 8 * H)],
        ),
        (
            "continues after the newest batch",
            dict(now=T0 + 12 * H, last_end=T0 + 9 * H, earliest_key=T0),
            [(T0 + 9 * H, T0 + 10 * H)],
        ),
        (
            "nothing due while the next window is younger than the minimum age",
            dict(now=T0 + 11 * H + 3599, last_end=T0 + 9 * H, earliest_key=T0),
            [],
        ),
        (
            "never before the retention horizon",
            dict(
                now=T0 + 10 * H,
                last_end=None,
                earliest_key=T0 - 30 * DAY,
                oldest_start=T0 + 6 * H + 10,
            ),
            [(T0 + 6 * H, T0 + 7 * H), (T0 + 7 * H, T0 + 8 * H)],
        ),
        (
            "a cap on windows per run, oldest first",
            dict(now=T0 + 20 * H, last_end=T0, earliest_key=T0, max_batches=2),
            [(T0, T0 + H), (T0 + H, T0 + 2 * H)],
        ),
    ],
)
def test_plan_table(name: str, kwargs: dict, expected: list[tuple[int, int]]) -> None:
    """PUB-26: windows are period-aligned, end ≥ min age ago, contiguous after the last
    batch, never before the retention horizon."""
    args = dict(period=H, min_window_age=2 * H, oldest_start=0)
    args.update(kwargs)
    assert plan_batches(**args) == [BatchWindow(s, e) for s, e in expected], name


def test_daily_period() -> None:
    """With a one-day period windows are UTC days (SPEC PUB-26)."""
    windows = plan_batches(
        now=T0 + 2 * DAY + 3 * H,
        period=DAY,
        min_window_age=2 * H,
        last_end=None,
        earliest_key=T0 + 5,
        oldest_start=0,
    )
    assert windows == [BatchWindow(T0, T0 + DAY), BatchWindow(T0 + DAY, T0 + 2 * DAY)]


def test_period_must_divide_a_day() -> None:
    with pytest.raises(ValueError):
        plan_batches(
            now=T0, period=7 * H, min_window_age=0, last_end=None, earliest_key=None, oldest_start=0
        )
