"""The agent's key/rotation schedule and ingest path, driven through the sim radio."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from phe_trace.agent import AgentConfig, RadioError, RadioStateError
from phe_trace.agent.radio.base import Radio, RadioSighting
from phe_trace.agent.radio.sim import SimRadio

from .conftest import T0
from .reference import ref_interval, ref_metadata, ref_rpi


def test_sim_radio_implements_the_radio_interface() -> None:
    """(SPEC AGENT-1)"""
    assert isinstance(SimRadio(), Radio)


def test_payload_is_rpi_and_aem_of_the_days_key(make_agent) -> None:
    """The advertised payload is RPI_j ‖ AEM_j of today's TEK, metadata v1.0 + TX power.

    (SPEC AGENT-3, AGENT-4)
    """
    agent = make_agent(tx_power_dbm=-17)
    now = T0 + 5 * 3600 + 123
    agent.tick(now)
    payload = agent.radio.current_payload()
    [key] = agent.store.teks()
    assert key.rolling_start_interval_number == ref_interval(T0)  # T0 is a day start
    assert key.rolling_period == 144
    assert payload[:16] == ref_rpi(key.key_data, ref_interval(now))
    assert ref_metadata(key.key_data, payload[:16], payload[16:]) == bytes([0x40, 0xEF, 0, 0])


def test_every_payload_of_two_days_is_its_intervals_rpi_and_aem(make_agent) -> None:
    """Each rotation advertises the identifier of the interval it happens in, under the
    key of its day, over whole days (SPEC AGENT-3, AGENT-4, KEY-4, KEY-6)."""
    agent = make_agent(tx_power_dbm=-9)
    seen = 0
    now = T0 + 30
    while now < T0 + 2 * 86400:
        if agent.tick(now).rotated:
            payload = agent.radio.current_payload()
            [key] = [
                k
                for k in agent.store.teks()
                if k.rolling_start_interval_number // 144 == int(now // 86400)
            ]
            assert payload[:16] == ref_rpi(key.key_data, ref_interval(now))
            assert ref_metadata(key.key_data, payload[:16], payload[16:]) == bytes(
                [0x40, 0xF7, 0, 0]
            )
            seen += 1
        now += 97
    assert seen > 2 * 72


def test_a_day_that_has_a_key_keeps_it(make_agent) -> None:
    """AGENT-3: a TEK day has one key: after the next day began, a clock set back into the
    first day advertises that day's identifiers under its own key again, and the store
    still holds one key per day."""
    agent = make_agent()
    morning = T0 + 3600
    agent.tick(morning)
    [first] = agent.store.teks()
    agent.tick(morning + 86400)
    agent.tick(morning + 1200)  # the clock went back to the first day
    payload = agent.radio.current_payload()
    assert payload[:16] == ref_rpi(first.key_data, ref_interval(morning + 1200))
    keys = sorted(agent.store.teks(), key=lambda k: k.rolling_start_interval_number)
    assert [k.rolling_start_interval_number for k in keys] == [
        ref_interval(T0),
        ref_interval(T0) + 144,
    ]
    assert keys[0].key_data == first.key_data


def test_rotation_every_10_to_20_minutes_and_at_midnight(make_agent) -> None:
    """Payload and address change together at 600–1200 s and at each new day's key.

    (SPEC AGENT-2, AGENT-3)
    """
    agent = make_agent()
    radio: SimRadio = agent.radio
    changes: list[tuple[float, bytes, str]] = []
    now = T0 + 86400 - 4 * 3600
    while now < T0 + 86400 + 4 * 3600:
        agent.tick(now)
        if not changes or changes[-1][1] != radio.current_payload():
            changes.append((now, radio.current_payload(), radio.address))
        now += 30
    midnight = T0 + 86400
    for (t_prev, _, addr_prev), (t, _, addr) in itertools.pairwise(changes):
        assert addr != addr_prev
        if t == midnight:
            continue
        assert 600 <= t - t_prev <= 1200 + 30, t - t_prev
    assert any(t == midnight for t, _, _ in changes)
    assert len(agent.store.teks()) == 2
    assert radio.rotations == len(changes)


def test_injected_sightings_are_stored_per_identifier_per_window(make_agent) -> None:
    """Another agent's payload injected into the listener is stored, aggregated.

    (SPEC AGENT-6, AGENT-12)
    """
    a, b = make_agent("a"), make_agent("b", seed=2)
    a.tick(T0)
    b.tick(T0)
    payload = a.radio.current_payload()
    for k, rssi in enumerate((-60, -70, -65)):
        b.radio.inject(payload, rssi=rssi, unix_time=T0 + 10 + k)
    assert b.tick(T0 + 20).ingested == 1
    [record] = b.store.sightings()
    [a_key] = a.store.teks()
    assert record.rpi == ref_rpi(a_key.key_data, ref_interval(T0))
    assert (record.rssi_max, record.rssi_mean, record.count) == (-60, -65, 3)
    assert record.unix_time == T0 + 10 and record.duration_s == 2


def test_own_payload_is_not_recorded(make_agent) -> None:
    """(SPEC AGENT-6)"""
    a = make_agent()
    a.tick(T0)
    a.radio.inject(a.radio.current_payload(), rssi=-40, unix_time=T0 + 1)
    assert a.tick(T0 + 2).ingested == 0
    assert a.store.sightings() == []


def test_sim_radio_refuses_malformed_payloads_and_use_after_close() -> None:
    radio = SimRadio()
    with pytest.raises(RadioError):
        radio.inject(b"\x00" * 19, rssi=-50, unix_time=T0)
    import asyncio

    async def scenario() -> None:
        with pytest.raises(RadioStateError):
            await radio.rotate(b"\x00" * 20)
        await radio.start_advertising(b"\x01" * 20)
        assert radio.current_payload() == b"\x01" * 20
        await radio.close()
        with pytest.raises(RadioStateError):
            radio.inject(b"\x00" * 20, rssi=-50, unix_time=T0)

    asyncio.run(scenario())


def test_clock_going_backwards_keeps_data_and_says_so(make_agent) -> None:
    """A backwards jump warns, keeps every key and sighting, and rotates. (SPEC AGENT-11)"""
    a, b = make_agent("a"), make_agent("b", seed=3)
    now = T0 + 2 * 86400 + 3600
    a.tick(now)
    b.tick(now)
    b.radio.inject(a.radio.current_payload(), rssi=-55, unix_time=now)
    b.tick(now + 60)
    keys_before = [k.key_data for k in b.store.teks()]
    result = b.tick(now - 86400)  # back a whole day
    assert result.rotated
    assert result.warnings and "clock went back by" in result.warnings[0]
    assert set(keys_before) <= {k.key_data for k in b.store.teks()}
    assert len(b.store.sightings()) == 1
    # Forward again to the original day: the same key is used, none is replaced.
    b.tick(now + 120)
    assert {k.key_data for k in b.store.teks()} >= set(keys_before)
    status_warnings = b.store.get_meta("warnings")
    assert status_warnings and "clock went back" in status_warnings["items"][-1]["message"]


def test_a_clock_set_back_within_the_tolerance_is_not_reported(make_agent) -> None:
    """AGENT-11: a step back by up to clock_skew_tolerance_s (120 s) is not reported; one
    second more is, and rotates the identifier at once."""
    agent = make_agent()
    now = T0 + 3600
    agent.tick(now)
    quiet = agent.tick(now - 120)
    assert quiet.warnings == [] and not quiet.rotated
    agent.tick(now + 60)
    loud = agent.tick(now + 60 - 121)
    assert loud.rotated
    assert loud.warnings and "clock went back by 121 s" in loud.warnings[0]


def test_settings_errors_are_reported_together() -> None:
    from phe_trace.agent import AgentConfigError, load_config

    with pytest.raises(AgentConfigError) as info:
        load_config(rotation_min_s=900, rotation_max_s=600, tx_power_dbm=500)
    assert "tx_power_dbm" in str(info.value)
    with pytest.raises(AgentConfigError):
        load_config(scan_period_s=10, scan_jitter_s=20)
    assert AgentConfig().retention_days == 14


def test_env_file_typos_are_refused_other_names_ignored(tmp_path) -> None:
    from phe_trace.agent import AgentConfigError, load_config

    shared = tmp_path / "shared.env"
    shared.write_text("LANG=C.UTF-8\nPHE_TRACE_AGENT_RADIO=sim\n")
    assert load_config(shared).radio == "sim"
    typo = tmp_path / "typo.env"
    typo.write_text("PHE_TRACE_AGENT_RETENTON_DAYS=3\n")
    with pytest.raises(AgentConfigError, match="PHE_TRACE_AGENT_RETENTON_DAYS"):
        load_config(typo)


def test_keys_to_publish_are_the_last_14_days_with_today(make_agent) -> None:
    """(SPEC AGENT-3, AGENT-17)"""
    from phe_trace.agent.report import keys_to_publish

    agent = make_agent()
    for day in range(20):
        agent.tick(T0 + day * 86400 + 600)
    now = T0 + 19 * 86400 + 3600
    keys = keys_to_publish(agent.store, now)
    starts = [k.rolling_start_interval_number for k in keys]
    today = int(T0 // 600) + 19 * 144
    assert starts == [today - 144 * j for j in range(13, -1, -1)]
    assert all(k.rolling_period == 144 for k in keys)


def test_scan_windows_follow_the_duty_cycle(make_agent) -> None:
    """A window every scan_period_s minus up to scan_jitter_s, each scan_duration_s long.

    (SPEC AGENT-5)
    """
    import asyncio

    class CountingRadio(SimRadio):
        def __init__(self) -> None:
            super().__init__()
            self.scans: list[tuple[float, float]] = []

        async def scan(self, duration_s: float, now: float) -> list:  # type: ignore[override]
            self.scans.append((now, duration_s))
            return await super().scan(duration_s, now)

    agent = make_agent(scan_period_s=300, scan_jitter_s=60, scan_duration_s=4)
    radio = CountingRadio()
    agent.radio = radio

    async def run() -> None:
        t = T0
        while t < T0 + 6 * 3600:
            await agent.step(t)
            t += 10

    asyncio.run(run())
    times = [t for t, _ in radio.scans]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(240 <= g <= 300 + 10 for g in gaps), (min(gaps), max(gaps))
    assert max(gaps) - min(gaps) > 10  # jittered, not a fixed period
    assert {d for _, d in radio.scans} == {4}


def test_public_surface_is_pinned() -> None:
    """What the simulator and the CLI import from ``phe_trace.agent``."""
    import phe_trace.agent as agent_pkg

    required = {
        "Agent",
        "AgentConfig",
        "AgentError",
        "AgentStore",
        "RadioSighting",
        "ReportResult",
        "SyncResult",
        "TickResult",
        "load_config",
    }
    assert required <= set(agent_pkg.__all__)
    assert all(hasattr(agent_pkg, name) for name in agent_pkg.__all__)
    assert {"current_payload", "inject", "drain", "set_payload", "rotations"} <= set(dir(SimRadio))


class _GoneController(SimRadio):
    """A radio whose controller stops answering during a scan; ``stop_during`` sets the
    daemon's stop event first, as SIGTERM arriving during the controller's timeout does."""

    def __init__(self, stop_during: asyncio.Event | None) -> None:
        super().__init__()
        self.stop_during = stop_during

    async def scan(self, duration_s: float, now: float) -> list[RadioSighting]:
        if self.stop_during is not None:
            self.stop_during.set()
        raise RadioError("the bumble controller did not answer (stop scanning: TimeoutError)")


def test_a_radio_failing_while_the_agent_stops_ends_the_run_cleanly(make_agent) -> None:
    """SIGTERM during a step on a controller that is gone stops the daemon without an
    error; the same failure with no stop asked for still ends the run with the error
    (SPEC AGENT-1)."""
    agent = make_agent()
    stop = asyncio.Event()
    agent.radio = _GoneController(stop)
    asyncio.run(agent.run(clock=lambda: T0, stop=stop))
    assert stop.is_set()

    other = make_agent("b")
    other.radio = _GoneController(None)
    with pytest.raises(RadioError, match="did not answer"):
        asyncio.run(other.run(clock=lambda: T0, stop=asyncio.Event()))
