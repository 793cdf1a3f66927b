"""``bumble``: real advertising and scanning at the HCI level on virtual controllers.

Several agents in one process share a :class:`BumbleLink` — a bumble ``LocalLink`` plus a
distance model. Each :class:`BumbleRadio` owns one virtual controller and host; it
advertises real legacy 0xFD6F advertising data (Flags, UUID list, service data —
:func:`phe_trace.protocol.advertisement.build_advertising_data`) non-connectably from a
non-resolvable private address, and scans passively, parsing what arrives with the
protocol's own parser. This is how tests run whole tracing scenarios without hardware.

Agents in separate processes share a link through a *radio room*
(:func:`serve_room`, ``phe-trace agent room``): one process runs bumble controllers on one
``LocalLink``, each behind an HCI transport such as ``tcp-server:127.0.0.1:9101``, and each
agent drives one of them over the matching ``tcp-client:`` transport
(:func:`open_hci_radio`, ``phe-trace agent run --radio bumble --hci …``). There the
controllers report bumble's fixed RSSI of −50 dBm for every advertisement.

Quirks of bumble's virtual controller this backend handles:
RSSI is hard-coded to −50, so a controller subclass rewrites each advertising report's
RSSI from the link's distance model for the (listener, sender) pair; each PDU is also
reported as a fake scan response, which is dropped.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
from typing import Any

from bumble import core, hci
from bumble.controller import Controller
from bumble.device import Advertisement, AdvertisingType, Device
from bumble.host import Host
from bumble.link import LocalLink
from bumble.transport.common import AsyncPipeSink

from phe_trace.protocol.advertisement import build_advertising_data, parse_advertising_data
from phe_trace.protocol.errors import AdvertisementError

from ..errors import RadioError, RadioStateError
from .base import DEFAULT_ADVERTISING_INTERVAL_MS, RadioSighting, check_payload

__all__ = ["BumbleLink", "BumbleRadio", "open_hci_radio", "room_transports", "serve_room"]


class BumbleLink:
    """A shared virtual medium with per-pair RSSI from a log-distance path-loss model.

    ``rssi = rssi_at_1m_dbm − 10 · exponent · log10(max(distance_m, 0.1))``, unless a
    pair's RSSI was pinned with :meth:`set_rssi`. Radios out of ``range_m`` hear nothing.
    """

    def __init__(
        self,
        *,
        rssi_at_1m_dbm: float = -55.0,
        exponent: float = 2.0,
        range_m: float = 30.0,
    ) -> None:
        self.link = LocalLink()  # type: ignore[no-untyped-call]
        self.rssi_at_1m_dbm = rssi_at_1m_dbm
        self.exponent = exponent
        self.range_m = range_m
        self._positions: dict[str, tuple[float, float]] = {}
        self._by_address: dict[str, str] = {}
        self._pinned: dict[tuple[str, str], int] = {}
        self._public_counter = 0

    def radio(
        self, name: str, position: tuple[float, float] = (0.0, 0.0), **kwargs: Any
    ) -> BumbleRadio:
        """A new radio on this link, placed at ``position`` (metres)."""
        if name in self._positions:
            raise RadioStateError(f"a radio named {name!r} is already on the link")
        self._positions[name] = position
        self._public_counter += 1
        return BumbleRadio(self, name, self._public_counter, **kwargs)

    def move(self, name: str, position: tuple[float, float]) -> None:
        self._positions[name] = position

    def set_rssi(self, listener: str, sender: str, rssi: int | None) -> None:
        """Pin the RSSI ``listener`` measures for ``sender`` (``None`` un-pins)."""
        if rssi is None:
            self._pinned.pop((listener, sender), None)
        else:
            self._pinned[(listener, sender)] = rssi

    def distance(self, a: str, b: str) -> float:
        (xa, ya), (xb, yb) = self._positions[a], self._positions[b]
        return math.hypot(xa - xb, ya - yb)

    def rssi(self, listener: str, sender_address: str) -> int | None:
        """RSSI for a report of ``sender_address`` at ``listener``; None if out of range."""
        sender = self._by_address.get(sender_address)
        if sender is None or sender not in self._positions:
            return None
        pinned = self._pinned.get((listener, sender))
        if pinned is not None:
            return pinned
        d = self.distance(listener, sender)
        if d > self.range_m:
            return None
        return round(self.rssi_at_1m_dbm - 10.0 * self.exponent * math.log10(max(d, 0.1)))

    def _bind(self, name: str, address: str | None, old: str | None) -> None:
        if old is not None:
            self._by_address.pop(old, None)
        if address is not None:
            self._by_address[address] = name


class _DistanceController(Controller):
    """A virtual controller whose advertising reports carry the link model's RSSI."""

    def __init__(self, medium: BumbleLink, name: str, **kwargs: Any) -> None:
        super().__init__(name, link=medium.link, **kwargs)
        self._medium = medium
        self._listener = name

    def send_hci_packet(self, packet: Any) -> None:
        if isinstance(
            packet,
            hci.HCI_LE_Extended_Advertising_Report_Event | hci.HCI_LE_Advertising_Report_Event,
        ):
            reports: list[Any] = []
            for report in packet.reports:
                rssi = self._medium.rssi(self._listener, str(report.address))
                if rssi is not None:
                    reports.append(dataclasses.replace(report, rssi=rssi))
            if not reports:
                return
            packet = type(packet)(reports)
        super().send_hci_packet(packet)


class BumbleRadio:
    """One agent's radio on a :class:`BumbleLink`. Create with :meth:`BumbleLink.radio`."""

    def __init__(
        self,
        medium: BumbleLink,
        name: str,
        number: int,
        *,
        interval_ms: tuple[int, int] = DEFAULT_ADVERTISING_INTERVAL_MS,
    ) -> None:
        public = _public_address(number)
        controller = _DistanceController(medium, name, public_address=public)
        device = Device(
            name=name,
            address=hci.Address(public),
            host=Host(controller, AsyncPipeSink(controller)),
        )
        self._setup(device, name, interval_ms, medium)

    def _setup(
        self,
        device: Device,
        name: str,
        interval_ms: tuple[int, int],
        medium: BumbleLink | None,
        transport: Any = None,
    ) -> None:
        self._medium = medium
        self._transport = transport
        self._name = name
        self._interval_ms = interval_ms
        self._device = device
        self._powered = False
        self._closed = False
        self._payload: bytes | None = None
        self._address: str | None = None
        #: Number of (payload, address) changes, including the first start.
        self.rotations = 0

    @property
    def name(self) -> str:
        return "bumble"

    @property
    def advertising(self) -> bool:
        return self._payload is not None

    @property
    def address(self) -> str | None:
        """The current random address of the advertisement (None if silent)."""
        return self._address

    async def _power(self) -> None:
        if self._closed:
            raise RadioStateError("the radio is closed")
        if not self._powered:
            await _answered(self._device.power_on(), "power on")
            self._powered = True

    async def _advertise(self, service_data: bytes) -> None:
        rpi, aem = service_data[:16], service_data[16:]
        address = hci.Address.generate_private_address()  # NRPA: no IRK
        self._device.random_address = address
        await _answered(
            self._device.start_advertising(
                advertising_type=AdvertisingType.UNDIRECTED,
                own_address_type=hci.OwnAddressType.RANDOM,
                advertising_data=build_advertising_data(rpi, aem),
                advertising_interval_min=self._interval_ms[0],
                advertising_interval_max=self._interval_ms[1],
            ),
            "start advertising",
        )
        old, self._address = self._address, str(address)
        if self._medium is not None:
            self._medium._bind(self._name, self._address, old)
        self._payload = service_data
        self.rotations += 1

    async def start_advertising(self, service_data: bytes) -> None:
        check_payload(service_data)
        await self._power()
        if self._payload is not None:
            await _answered(self._device.stop_advertising(), "stop advertising")
        await self._advertise(service_data)

    async def rotate(self, service_data: bytes) -> None:
        check_payload(service_data)
        if self._payload is None:
            raise RadioStateError("rotate() before start_advertising()")
        await _answered(self._device.stop_advertising(), "stop advertising")
        await self._advertise(service_data)

    async def stop_advertising(self) -> None:
        try:
            if self._payload is not None and self._powered:
                await _answered(self._device.stop_advertising(), "stop advertising")
        finally:
            if self._medium is not None:
                self._medium._bind(self._name, None, self._address)
            self._payload = None
            self._address = None

    async def scan(self, duration_s: float, now: float) -> list[RadioSighting]:
        await self._power()
        loop = asyncio.get_running_loop()
        start = loop.time()
        heard: list[RadioSighting] = []

        def on_advertisement(adv: Advertisement) -> None:
            if adv.is_scan_response:
                return
            try:
                parsed = parse_advertising_data(bytes(adv.data))
            except AdvertisementError:
                return
            heard.append(
                RadioSighting(
                    parsed.rpi + parsed.aem,
                    int(adv.rssi),
                    now + (loop.time() - start),
                    str(adv.address),
                )
            )

        self._device.on("advertisement", on_advertisement)
        try:
            await _answered(
                self._device.start_scanning(active=False, filter_duplicates=False),
                "start scanning",
            )
            await asyncio.sleep(duration_s)
            await _answered(self._device.stop_scanning(), "stop scanning")
        finally:
            self._device.remove_listener("advertisement", on_advertisement)
        return heard

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            await self.stop_advertising()
            if self._powered:
                await _answered(self._device.host.flush(), "flush")
        finally:
            if self._transport is not None:
                try:
                    await asyncio.wait_for(self._transport.close(), HCI_TIMEOUT_S)
                except (TimeoutError, core.BaseBumbleError, ConnectionError, OSError):
                    pass  # a transport whose peer is gone has nothing left to close


#: Longest wait for the controller to answer one step (power on, advertise, scan control).
HCI_TIMEOUT_S = 5.0


async def _answered(step: Any, what: str) -> Any:
    """``await step``, or :class:`RadioError` when the controller does not answer (a room
    that stopped, a dropped HCI transport) rather than bumble's own exceptions."""
    try:
        return await asyncio.wait_for(step, HCI_TIMEOUT_S)
    except (TimeoutError, core.BaseBumbleError, ConnectionError, OSError) as exc:
        raise RadioError(
            f"the bumble controller did not answer ({what}: {type(exc).__name__}); "
            "is its radio room still running?"
        ) from None


def _public_address(number: int) -> str:
    return f"F0:00:00:00:{number >> 8 & 0xFF:02X}:{number & 0xFF:02X}"


async def open_hci_radio(
    transport_name: str, *, interval_ms: tuple[int, int] = DEFAULT_ADVERTISING_INTERVAL_MS
) -> BumbleRadio:
    """A radio driving the controller behind a bumble HCI transport (e.g. a room's
    ``tcp-client:127.0.0.1:9101``); must be called inside the event loop that uses it."""
    from bumble.transport import open_transport

    try:
        transport = await open_transport(transport_name)
    except (OSError, ValueError) as exc:
        raise RadioStateError(f"cannot open HCI transport {transport_name!r}: {exc}") from None
    device = Device(
        name="agent",
        address=hci.Address(_public_address(0xFFFF)),
        host=Host(transport.source, transport.sink),
    )
    radio = BumbleRadio.__new__(BumbleRadio)
    radio._setup(device, "agent", interval_ms, None, transport)
    return radio


def room_transports(host: str, first_port: int, count: int) -> list[str]:
    """The ``tcp-server:`` transport of each controller of a room (ports in a row)."""
    return [f"tcp-server:{host}:{first_port + i}" for i in range(count)]


async def serve_room(
    transports: list[str], *, ready: Any = None, stop: asyncio.Event | None = None
) -> None:
    """Run one bumble controller per transport, all on one ``LocalLink``, until ``stop``.

    Every agent connected to one of the controllers hears every other one. ``ready`` is
    called once all transports listen.
    """
    from bumble.transport import open_transport

    link = LocalLink()  # type: ignore[no-untyped-call]
    opened: list[Any] = []
    try:
        for number, name in enumerate(transports, start=1):
            try:
                transport = await open_transport(name)
            except (OSError, ValueError) as exc:
                raise RadioStateError(f"cannot open HCI transport {name!r}: {exc}") from None
            opened.append(transport)
            Controller(
                f"room{number}",
                host_source=transport.source,
                host_sink=transport.sink,
                link=link,
                public_address=_public_address(number),
            )
        if ready is not None:
            ready()
        await (stop or asyncio.Event()).wait()
    finally:
        for transport in opened:
            await transport.close()
