"""Radio physics: distance → RSSI, as unreliable as Bluetooth attenuation is in real life.

For a scan instance where device *s* (scanner) hears device *t* (transmitter) at
distance *d* metres::

    path_loss = PL_1M + 10 · n · log10(d)                 log-distance model
              + body   (with probability P_BODY a body between the phones: U(5, 15) dB)
              + noise  (log-normal shadowing, N(0, σ))
    rssi      = tx_power_t + tx_error_t − path_loss + rx_error_s

``tx_power_t`` is what *t* advertises in its metadata; ``tx_error_t`` and ``rx_error_s``
are the devices' calibration errors, fixed per device. The agent computes attenuation as
``tx_power − rssi``, so what it sees is ``path_loss − tx_error_t − rx_error_s``.
Some scans miss an advertisement entirely (``P_MISS``), and anything below the
receiver's sensitivity is not heard. Constants are typical indoor values for phones
(attenuation near 50 dB at 1 m), not a measurement campaign.
"""

from __future__ import annotations

import numpy as np

from .world import City, FloatArray, IntArray

__all__ = ["N_PATH_LOSS", "PL_1M_DB", "SENSITIVITY_DBM", "rssi_dbm"]

#: Attenuation at one metre between two phones, dB.
PL_1M_DB = 50.0
#: Path-loss exponent indoors.
N_PATH_LOSS = 2.2
#: Probability that a body shadows the path, and the extra loss range then (dB).
P_BODY = 0.4
BODY_DB = (5.0, 15.0)
#: Standard deviation of the shadowing noise per scan (dB).
NOISE_DB = 4.0
#: Probability that one scan misses the other device's advertisement.
P_MISS = 0.1
#: Below this RSSI nothing is heard (dBm).
SENSITIVITY_DBM = -100.0


def rssi_dbm(
    city: City,
    scanner: IntArray,
    transmitter: IntArray,
    distance_m: FloatArray,
    rng: np.random.Generator,
) -> tuple[IntArray, np.ndarray]:
    """RSSI (integer dBm) of each scan instance and whether it was heard at all."""
    k = len(distance_m)
    loss = PL_1M_DB + 10.0 * N_PATH_LOSS * np.log10(np.maximum(distance_m, 0.1))
    body = np.where(rng.random(k) < P_BODY, rng.uniform(*BODY_DB, k), 0.0)
    loss = loss + body + rng.normal(0.0, NOISE_DB, k)
    rssi = (
        city.tx_power_dbm[transmitter]
        + city.tx_error_db[transmitter]
        - loss
        + city.rx_error_db[scanner]
    )
    heard = (rng.random(k) >= P_MISS) & (rssi >= SENSITIVITY_DBM)
    return np.round(rssi).astype(np.int64), heard
