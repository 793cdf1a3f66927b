"""The BlueZ backend's D-Bus side against a fake org.bluez on a private dbus-daemon."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from phe_trace.agent import (
    BluezUnavailableError,
    BluezVersionError,
    NoAdapterError,
    RadioError,
    RadioPermissionError,
    RadioStateError,
)
from phe_trace.agent.radio.base import Radio
from phe_trace.agent.radio.bluez import BluezRadio, sighting_from_advertisement

from .fake_bluez import DBUS_DAEMON, private_bus, start_fake_bluez

pytestmark = pytest.mark.skipif(
    DBUS_DAEMON is None, reason="dbus-daemon is not installed (Debian package `dbus`)"
)

UUID = "0000fd6f-0000-1000-8000-00805f9b34fb"


@pytest.fixture
def bus_address(tmp_path: Path) -> Iterator[str]:
    yield from private_bus(tmp_path)


async def test_registers_broadcast_advertisement_with_the_gaen_properties(bus_address: str) -> None:
    """Type broadcast, 0xFD6F UUID, 20-byte service data, 200–270 ms. (SPEC AGENT-1)"""
    fake_bus, state = await start_fake_bluez(bus_address)
    radio = BluezRadio("hci0", bus_address=bus_address)
    assert isinstance(radio, Radio)
    try:
        await radio.start_advertising(bytes(range(20)))
        [reg] = state.registered.values()
        props = reg.properties
        assert props["Type"] == "broadcast"
        assert props["ServiceUUIDs"] == [UUID]
        assert set(props["ServiceData"]) == {UUID}
        assert props["ServiceData"][UUID].signature == "ay"
        assert props["ServiceData"][UUID].value == bytes(range(20))
        assert (props["MinInterval"], props["MaxInterval"]) == (200, 270)
        # Nothing else that would overflow the 31-byte legacy advertisement.
        assert not {"LocalName", "Includes", "ManufacturerData", "Appearance"} & set(props)
    finally:
        await radio.close()
        fake_bus.disconnect()


async def test_rotation_reregisters_and_stop_unregisters(bus_address: str) -> None:
    """Rotation = unregister old + register new data; stop unregisters. (SPEC AGENT-2)"""
    fake_bus, state = await start_fake_bluez(bus_address)
    radio = BluezRadio("hci0", bus_address=bus_address)
    try:
        with pytest.raises(RadioStateError):
            await radio.rotate(bytes(20))
        await radio.start_advertising(b"\x01" * 20)
        await radio.rotate(b"\x02" * 20)
        [reg] = state.registered.values()
        assert reg.properties["ServiceData"][UUID].value == b"\x02" * 20
        kinds = [k for k, _ in state.history]
        assert kinds == ["register", "unregister", "register"]
        assert state.history[0][1] != state.history[2][1]  # a new object each time
        await radio.stop_advertising()
        assert state.registered == {}
        assert not radio.advertising
        await radio.close()
        with pytest.raises(RadioStateError):
            await radio.start_advertising(b"\x03" * 20)
    finally:
        await radio.close()
        fake_bus.disconnect()


async def test_no_bluez_on_the_bus(bus_address: str) -> None:
    radio = BluezRadio("hci0", bus_address=bus_address)
    with pytest.raises(BluezUnavailableError, match=r"bluetooth\.service"):
        await radio.start_advertising(bytes(20))


async def test_no_such_adapter(bus_address: str) -> None:
    fake_bus, _ = await start_fake_bluez(bus_address, adapter="hci0")
    try:
        radio = BluezRadio("hci1", bus_address=bus_address)
        with pytest.raises(NoAdapterError, match="hci1"):
            await radio.start_advertising(bytes(20))
    finally:
        fake_bus.disconnect()


async def test_bluez_without_advertising_manager(bus_address: str) -> None:
    fake_bus, _ = await start_fake_bluez(bus_address, with_manager=False)
    try:
        radio = BluezRadio("hci0", bus_address=bus_address)
        with pytest.raises(BluezVersionError, match=r"5\.43"):
            await radio.start_advertising(bytes(20))
    finally:
        fake_bus.disconnect()


@pytest.mark.parametrize(
    ("error", "expected", "text"),
    [
        ("org.freedesktop.DBus.Error.AccessDenied", RadioPermissionError, "bluetooth"),
        ("org.bluez.Error.NotReady", RadioError, "powered off"),
        ("org.bluez.Error.NotPermitted", RadioError, "Maximum"),
    ],
)
async def test_registration_errors_are_clear(
    bus_address: str, error: str, expected: type[Exception], text: str
) -> None:
    fake_bus, state = await start_fake_bluez(bus_address)
    radio = BluezRadio("hci0", bus_address=bus_address)
    try:
        state.fail_next = (error, "Maximum advertisements reached")
        with pytest.raises(expected, match=text):
            await radio.start_advertising(bytes(20))
        assert not radio.advertising
        # The next attempt works: nothing was left half-registered.
        await radio.start_advertising(bytes(20))
        assert len(state.registered) == 1
    finally:
        await radio.close()
        fake_bus.disconnect()


def test_bleak_advertisement_data_to_sighting() -> None:
    """Only 20-byte 0xFD6F service data becomes a sighting. (SPEC AGENT-6)"""
    from bleak.backends.scanner import AdvertisementData

    def adv(service_data: dict[str, bytes], rssi: int = -70) -> AdvertisementData:
        return AdvertisementData(None, {}, service_data, [UUID], None, rssi, ())

    device = SimpleNamespace(address="12:34:56:78:9A:BC")
    s = sighting_from_advertisement(adv({UUID: bytes(range(20))}), 1000.5, device)
    assert s is not None
    assert (s.service_data, s.rssi, s.unix_time, s.address) == (
        bytes(range(20)),
        -70,
        1000.5,
        device.address,
    )
    assert sighting_from_advertisement(adv({UUID: bytes(19)}), 1.0) is None
    other = "0000feaa-0000-1000-8000-00805f9b34fb"
    assert sighting_from_advertisement(adv({other: bytes(20)}), 1.0) is None


def _cli(*args: str, bus: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PHE_TRACE_AGENT_")}
    env["DBUS_SYSTEM_BUS_ADDRESS"] = bus
    return subprocess.run(
        [sys.executable, "-m", "phe_trace.cli", "agent", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )


def test_check_radio_command(bus_address: str, tmp_path: Path) -> None:
    """`phe-trace agent check-radio` names the problem, or registers and removes an advert.

    (SPEC AGENT-1)
    """
    missing = _cli("check-radio", bus=f"unix:path={tmp_path / 'no-such-socket'}")
    assert missing.returncode != 0
    assert len(missing.stderr.strip().splitlines()) == 1
    assert "system D-Bus" in missing.stderr
    no_bluez = _cli("check-radio", bus=bus_address)
    assert no_bluez.returncode != 0 and "BlueZ is not running" in no_bluez.stderr
    # The daemon stops at once with the same clear message (and keeps its store).
    daemon = _cli("run", "--data-dir", str(tmp_path / "store"), bus=bus_address)
    assert daemon.returncode != 0
    assert daemon.stderr.strip().splitlines()[-1].startswith("phe-trace: error: BlueZ is not")
    assert (tmp_path / "store" / "store.key").exists()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        fake_bus, state = asyncio.run_coroutine_threadsafe(
            start_fake_bluez(bus_address), loop
        ).result(timeout=10)
        ok = _cli("check-radio", bus=bus_address)
        assert ok.returncode == 0, ok.stderr
        assert "advertising works" in ok.stdout
        assert [k for k, _ in state.history] == ["register", "unregister"]
        loop.call_soon_threadsafe(fake_bus.disconnect)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)
