"""``--radio bumble``: encounters among a few devices travel over virtual HCI controllers."""

from __future__ import annotations

import numpy as np

from phe_trace.protocol.advertisement import SERVICE_DATA_LENGTH
from phe_trace.sim.hci import HciBridge, pick_bumble_devices
from phe_trace.sim.world import build_city


def test_picked_devices_share_a_household_and_run_the_app() -> None:
    city = build_city(300, 0.8, np.random.default_rng(2))
    picked = pick_bumble_devices(city, 4)
    assert 2 <= len(picked) <= 4
    assert all(city.has_app[p] for p in picked)
    assert len({int(city.household[p]) for p in picked}) <= 2


def test_an_encounter_is_heard_over_hci_with_the_drawn_rssi() -> None:
    bridge = HciBridge([1, 2, 3])
    try:
        payloads = {
            1: bytes(range(SERVICE_DATA_LENGTH)),
            2: bytes(range(1, 21)),
            3: bytes(range(2, 22)),
        }
        # 2 hears 1 at -61 dBm and 1 hears 2 at -70; 3 is silent for both and hears nobody
        heard = bridge.deliver([(2, 1, -61), (1, 2, -70)], payloads, 1_772_409_600.0)
        assert sorted(heard) == sorted([(2, payloads[1], -61), (1, payloads[2], -70)])
        # a new payload (rotation) is what the next slot carries
        payloads[1] = bytes(range(3, 23))
        heard = bridge.deliver([(3, 1, -80)], payloads, 1_772_409_900.0)
        assert heard == [(3, payloads[1], -80)]
        assert bridge.scans == 3 and bridge.delivered == 3
    finally:
        bridge.close()
