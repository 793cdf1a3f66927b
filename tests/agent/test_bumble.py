"""Agents on a bumble virtual link: real HCI advertising and scanning, no hardware."""

from __future__ import annotations

from pathlib import Path

import pytest

from phe_trace.agent import RadioStateError
from phe_trace.agent.radio.base import Radio
from phe_trace.agent.radio.bumble import BumbleLink

from .conftest import T0
from .reference import ref_rpi
from .scenario import FAST, run_bumble_day


async def test_bumble_radio_delivers_payload_rssi_and_rotated_address() -> None:
    """RSSI follows the distance model; rotation changes payload and address together.

    (SPEC AGENT-1, AGENT-2)
    """
    link = BumbleLink(rssi_at_1m_dbm=-55, exponent=2.0, range_m=10)
    tx = link.radio("tx", (0, 0), interval_ms=FAST)
    rx = link.radio("rx", (10**0.5, 0), interval_ms=FAST)  # ~3.16 m: -55 - 10 = -65 dBm
    far = link.radio("far", (50, 0), interval_ms=FAST)
    assert isinstance(tx, Radio)
    try:
        with pytest.raises(RadioStateError):
            await tx.rotate(bytes(20))
        await tx.start_advertising(bytes(range(20)))
        await far.start_advertising(bytes(range(1, 21)))
        first = await rx.scan(0.25, now=T0)
        assert first, "nothing heard"
        assert {s.service_data for s in first} == {bytes(range(20))}  # `far` is out of range
        assert {s.rssi for s in first} == {-65}
        assert all(T0 <= s.unix_time < T0 + 5 for s in first)
        addr1 = tx.address
        await tx.rotate(bytes(range(2, 22)))
        second = await rx.scan(0.25, now=T0 + 600)
        assert {s.service_data for s in second} == {bytes(range(2, 22))}
        assert {s.address for s in second} == {tx.address} != {addr1}
        # NRPA: the two most significant bits of the address are 00.
        assert int(tx.address.split(":")[0], 16) >> 6 == 0
        link.set_rssi("rx", "tx", -80)
        assert {s.rssi for s in await rx.scan(0.15, now=T0 + 700)} == {-80}
        await tx.stop_advertising()
        assert await rx.scan(0.15, now=T0 + 800) == []
    finally:
        for r in (tx, rx, far):
            await r.close()


async def test_three_agents_record_each_other_across_rotations(tmp_path: Path) -> None:
    """Each agent stores the others' identifiers, for several rotations, never its own.

    (SPEC AGENT-2, AGENT-5, AGENT-6)
    """
    agents = await run_bumble_day(tmp_path, {"a": (0, 0), "b": (1.5, 0), "c": (0, 2)})
    try:
        for name, agent in agents.items():
            own = {k.key_data for k in agent.store.teks()}
            assert len(own) == 1  # one simulated day, one key
            heard = {s.rpi for s in agent.store.sightings()}
            for other_name, other in agents.items():
                [tek] = [k.key_data for k in other.store.teks()]
                rpis = {ref_rpi(tek, int(T0 // 600) + j) for j in range(144)}
                found = heard & rpis
                if other_name == name:
                    assert not found
                else:
                    # 24 hourly windows, identifiers rotating every 10–20 min: most
                    # windows see a different identifier.
                    assert len(found) >= 12, (name, other_name, len(found))
    finally:
        for agent in agents.values():
            agent.close()
