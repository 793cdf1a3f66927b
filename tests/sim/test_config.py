"""Demo parameters: checked at the door; when published keys reach devices."""

from __future__ import annotations

import pytest

from phe_trace.sim import SimConfig, SimConfigError
from phe_trace.sim.config import SIM_EPOCH
from phe_trace.sim.metrics import Confusion

H = 3600
DAY = 86_400


def test_every_bad_parameter_is_named_at_once() -> None:
    with pytest.raises(SimConfigError) as err:
        SimConfig.create(people=5, days=0, uptake=-0.1, report_rate=2, radio="x")
    message = str(err.value)
    for name in ("--people", "--days", "--uptake", "--report-rate", "--radio"):
        assert name in message
    assert err.value.code == "sim_config_invalid"


@pytest.mark.parametrize(
    ("published_h", "key_day", "expected_h"),
    [
        # 12-hour windows [0, 12) and [12, 24); a batch is written at the first run
        # (01:00 or 13:00) at least an hour after its window ended.
        (2 * 24 + 15, 1, 3 * 24 + 1),  # afternoon report → batch [12, 24) → 01:00 next day
        (2 * 24 + 9, 1, 2 * 24 + 13),  # morning report → batch [0, 12) → 13:00 same day
        (2 * 24 + 9, 2, 3 * 24 + 1),  # … but the report day's own key waits for its expiry
        (2 * 24 + 11.5, 0, 2 * 24 + 13),
    ],
)
def test_keys_reach_devices_after_their_export_batch(
    published_h: float, key_day: int, expected_h: float
) -> None:
    config = SimConfig()
    got = config.keys_available_at(SIM_EPOCH + published_h * H, key_day)
    assert got == SIM_EPOCH + expected_h * H


def test_precision_and_recall_are_undefined_without_cases() -> None:
    assert Confusion(0, 0, 0, 0).precision is None
    assert Confusion(0, 0, 0, 0).recall is None
    c = Confusion(3, 1, 2, 1)
    assert c.precision == pytest.approx(3 / 4)
    assert c.recall == pytest.approx(3 / 5)
