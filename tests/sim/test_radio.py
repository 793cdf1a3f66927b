"""Radio physics: RSSI falls with distance as the log-distance model says, with noise."""

from __future__ import annotations

import math

import numpy as np

from phe_trace.sim import radio
from phe_trace.sim.world import build_city


def test_mean_attenuation_follows_log_distance_plus_body_loss() -> None:
    city = build_city(50, 1.0, np.random.default_rng(0))
    rng = np.random.default_rng(1)
    k = 40_000
    scanner = np.zeros(k, dtype=np.int64)
    sender = np.ones(k, dtype=np.int64)
    for d in (1.0, 2.0, 4.0, 8.0):
        rssi, heard = radio.rssi_dbm(city, scanner, sender, np.full(k, d), rng)
        attenuation = city.tx_power_dbm[1] - rssi
        calibration = city.tx_error_db[1] + city.rx_error_db[0]
        # independent expectation: PL(1 m) + 10 n log10 d + P(body) · mean(U(5, 15))
        expected = 50.0 + 22.0 * math.log10(d) + 0.4 * 10.0 - calibration
        assert abs(attenuation.mean() - expected) < 0.3
        assert attenuation.std() > 4.0  # as unreliable as real life
        assert heard.mean() < 0.95  # about one scan in ten misses …
        if d <= 2.0:
            assert heard.mean() > 0.85  # … and nearby almost nothing else is lost


def test_calibration_error_shifts_what_a_device_hears() -> None:
    city = build_city(50, 1.0, np.random.default_rng(4))
    rng = np.random.default_rng(2)
    k = 20_000
    a = int(np.argmax(city.rx_error_db))
    b = int(np.argmin(city.rx_error_db))
    sender = np.full(k, 7, dtype=np.int64)
    ra, _ = radio.rssi_dbm(city, np.full(k, a), sender, np.full(k, 2.0), rng)
    rb, _ = radio.rssi_dbm(city, np.full(k, b), sender, np.full(k, 2.0), rng)
    gap = city.rx_error_db[a] - city.rx_error_db[b]
    assert abs((ra.mean() - rb.mean()) - gap) < 0.3
