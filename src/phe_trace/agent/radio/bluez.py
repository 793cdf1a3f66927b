"""``bluez``: the real radio on Linux — BlueZ advertising over D-Bus, bleak scanning.

Advertising (``protocol_spec/SPEC.md`` AGENT-1, AGENT-2): the agent exports an
``org.bluez.LEAdvertisement1`` object (``Type=broadcast`` — non-connectable — service
0xFD6F in ``ServiceUUIDs`` and 20 bytes of ``ServiceData``, 200–270 ms interval) and
registers it with ``org.bluez.LEAdvertisingManager1.RegisterAdvertisement`` on the
adapter. At each rotation the old object is unregistered and a new one registered:
BlueZ only reads the properties at registration, and re-registration is what makes the
kernel pick a fresh non-resolvable private address together with the new identifier.

Scanning: ``bleak.BleakScanner``, passive with an ``or_patterns`` monitor on 0xFD6F
service data where BlueZ supports it (``scanning_mode="auto"`` falls back to active),
restarted every window so the controller's duplicate filter cannot hide a rotation.

Needs: BlueZ ≥ 5.43 (``LEAdvertisingManager1``), membership in the ``bluetooth`` group
or the D-Bus policy ``device/`` installs, and the service's ``CAP_NET_ADMIN`` /
``CAP_NET_RAW`` (see ``device/phe-trace-agent.service``).
"""

import asyncio
import itertools
from typing import Annotated, Any, Literal

from dbus_fast import BusType, DBusError, PropertyAccess, Variant
from dbus_fast.aio import MessageBus
from dbus_fast.annotations import DBusSignature, DBusStr, DBusUInt16
from dbus_fast.service import ServiceInterface, dbus_method, dbus_property

from phe_trace.protocol.advertisement import EN_SERVICE_UUID128

from ..errors import (
    BluezUnavailableError,
    BluezVersionError,
    NoAdapterError,
    RadioError,
    RadioPermissionError,
    RadioStateError,
)
from .base import DEFAULT_ADVERTISING_INTERVAL_MS, RadioSighting, check_payload

__all__ = ["BluezAdvertisement", "BluezRadio", "sighting_from_advertisement"]

_BLUEZ = "org.bluez"
_MANAGER = "org.bluez.LEAdvertisingManager1"
_ADV_IFACE = "org.bluez.LEAdvertisement1"
_PATH_PREFIX = "/org/phetrace/advertisement"
_paths = itertools.count(1)


class BluezAdvertisement(ServiceInterface):
    """The exported ``org.bluez.LEAdvertisement1`` object for one identifier."""

    def __init__(self, service_data: bytes, interval_ms: tuple[int, int]) -> None:
        super().__init__(_ADV_IFACE)
        self._service_data = service_data
        self._interval_ms = interval_ms
        self.released = False

    @dbus_method()
    def Release(self) -> None:
        self.released = True

    @dbus_property(PropertyAccess.READ)
    def Type(self) -> DBusStr:
        return "broadcast"

    @dbus_property(PropertyAccess.READ)
    def ServiceUUIDs(self) -> Annotated[list[str], DBusSignature("as")]:
        return [EN_SERVICE_UUID128]

    @dbus_property(PropertyAccess.READ)
    def ServiceData(self) -> Annotated[dict[str, Variant], DBusSignature("a{sv}")]:
        return {EN_SERVICE_UUID128: Variant("ay", self._service_data)}

    @dbus_property(PropertyAccess.READ)
    def MinInterval(self) -> Annotated[int, DBusSignature("u")]:
        return self._interval_ms[0]

    @dbus_property(PropertyAccess.READ)
    def MaxInterval(self) -> Annotated[int, DBusSignature("u")]:
        return self._interval_ms[1]

    @dbus_property(PropertyAccess.READ, disabled=True)
    def Appearance(self) -> DBusUInt16:
        raise NotImplementedError


def _translate(exc: DBusError, adapter: str, action: str) -> RadioError:
    """Map a D-Bus error to the agent's radio errors, with what to do about it."""
    name = exc.type
    if name in (
        "org.freedesktop.DBus.Error.ServiceUnknown",
        "org.freedesktop.DBus.Error.NameHasNoOwner",
    ):
        return BluezUnavailableError(
            "BlueZ is not running (no org.bluez on the system bus): "
            "install bluez and start bluetooth.service"
        )
    if name in (
        "org.freedesktop.DBus.Error.UnknownObject",
        "org.freedesktop.DBus.Error.UnknownMethod",
    ):
        return NoAdapterError(f"no Bluetooth adapter {adapter} (check `bluetoothctl list`)")
    if name == "org.freedesktop.DBus.Error.UnknownInterface":
        return BluezVersionError(
            f"BlueZ on {adapter} has no LE advertising API (BlueZ >= 5.43 needed)"
        )
    if name in ("org.freedesktop.DBus.Error.AccessDenied", "org.bluez.Error.NotAuthorized"):
        return RadioPermissionError(
            f"not allowed to {action} on {adapter}: run as a member of the `bluetooth` "
            "group (see device/README.md)"
        )
    if name == "org.bluez.Error.NotReady":
        return RadioError(f"adapter {adapter} is powered off (`bluetoothctl power on`)")
    return RadioError(f"BlueZ refused to {action} on {adapter}: {name}: {exc.text}")


class BluezRadio:
    """The real radio: BlueZ advertising over D-Bus and bleak scanning."""

    def __init__(
        self,
        adapter: str = "hci0",
        *,
        bus_address: str | None = None,
        interval_ms: tuple[int, int] = DEFAULT_ADVERTISING_INTERVAL_MS,
        scanning_mode: Literal["auto", "active", "passive"] = "auto",
    ) -> None:
        self.adapter = adapter
        self._bus_address = bus_address
        self._interval_ms = interval_ms
        self._scanning_mode = scanning_mode
        self._bus: MessageBus | None = None
        self._manager: Any = None
        self._current: tuple[str, BluezAdvertisement] | None = None
        self._closed = False
        self.rotations = 0

    @property
    def name(self) -> str:
        return "bluez"

    @property
    def advertising(self) -> bool:
        return self._current is not None

    @property
    def adapter_path(self) -> str:
        return f"/org/bluez/{self.adapter}"

    async def _connect(self) -> Any:
        if self._closed:
            raise RadioStateError("the radio is closed")
        if self._manager is not None:
            return self._manager
        try:
            if self._bus_address is not None:
                bus = await MessageBus(bus_address=self._bus_address).connect()
            else:
                bus = await MessageBus(bus_type=BusType.SYSTEM).connect()
        except (OSError, ValueError) as exc:
            raise BluezUnavailableError(f"cannot reach the system D-Bus: {exc}") from None
        except Exception as exc:  # dbus-fast raises AuthError & co. for refused connections
            raise RadioPermissionError(f"the system D-Bus refused the connection: {exc}") from None
        try:
            node = await bus.introspect(_BLUEZ, self.adapter_path)
        except DBusError as exc:
            bus.disconnect()
            raise _translate(exc, self.adapter, "look up the adapter") from None
        if not any(i.name == _MANAGER for i in node.interfaces):
            bus.disconnect()
            if not node.interfaces:
                raise NoAdapterError(
                    f"no Bluetooth adapter {self.adapter} (check `bluetoothctl list`)"
                )
            raise BluezVersionError(
                f"BlueZ on {self.adapter} has no {_MANAGER} (BlueZ >= 5.43 needed; "
                "older releases need bluetoothd --experimental)"
            )
        proxy = bus.get_proxy_object(_BLUEZ, self.adapter_path, node)
        self._bus = bus
        self._manager = proxy.get_interface(_MANAGER)
        return self._manager

    async def _register(self, service_data: bytes) -> None:
        manager = await self._connect()
        assert self._bus is not None
        path = f"{_PATH_PREFIX}{next(_paths)}"
        adv = BluezAdvertisement(service_data, self._interval_ms)
        self._bus.export(path, adv)
        try:
            await manager.call_register_advertisement(path, {})
        except DBusError as exc:
            self._bus.unexport(path, adv)
            raise _translate(exc, self.adapter, "register an advertisement") from None
        self._current = (path, adv)
        self.rotations += 1

    async def _unregister(self) -> None:
        if self._current is None:
            return
        path, adv = self._current
        self._current = None
        assert self._bus is not None
        try:
            if not adv.released:
                await self._manager.call_unregister_advertisement(path)
        except DBusError as exc:
            if exc.type != "org.bluez.Error.DoesNotExist":
                raise _translate(exc, self.adapter, "unregister the advertisement") from None
        finally:
            self._bus.unexport(path, adv)

    async def start_advertising(self, service_data: bytes) -> None:
        check_payload(service_data)
        await self._unregister()
        await self._register(service_data)

    async def rotate(self, service_data: bytes) -> None:
        """Unregister the old advertisement and register the new one (new address)."""
        check_payload(service_data)
        if self._current is None:
            raise RadioStateError("rotate() before start_advertising()")
        await self._unregister()
        await self._register(service_data)

    async def stop_advertising(self) -> None:
        await self._unregister()

    async def scan(self, duration_s: float, now: float) -> list[RadioSighting]:
        from bleak import BleakScanner
        from bleak.exc import BleakError

        if self._closed:
            raise RadioStateError("the radio is closed")
        loop = asyncio.get_running_loop()
        start = loop.time()
        heard: list[RadioSighting] = []

        def on_detect(device: Any, adv: Any) -> None:
            sighting = sighting_from_advertisement(adv, now + (loop.time() - start), device)
            if sighting is not None:
                heard.append(sighting)

        modes: list[str] = (
            ["passive", "active"] if self._scanning_mode == "auto" else [self._scanning_mode]
        )
        for mode in modes:
            try:
                scanner = BleakScanner(on_detect, scanning_mode=mode, bluez=self._bluez_args(mode))  # type: ignore[arg-type]
                await scanner.start()
            except BleakError as exc:
                if mode == modes[-1]:
                    raise RadioError(f"cannot scan on {self.adapter}: {exc}") from None
                continue
            try:
                await asyncio.sleep(duration_s)
            finally:
                await scanner.stop()
            if mode == "active" and self._scanning_mode == "auto":
                self._scanning_mode = "active"  # passive is not available here; stop trying
            break
        return heard

    def _bluez_args(self, mode: str) -> dict[str, Any]:
        args: dict[str, Any] = {"adapter": self.adapter}
        if mode == "passive":
            from bleak.args.bluez import OrPattern
            from bleak.assigned_numbers import AdvertisementDataType

            args["or_patterns"] = [
                OrPattern(0, AdvertisementDataType.SERVICE_DATA_UUID16, b"\x6f\xfd")
            ]
        else:
            args["filters"] = {"UUIDs": [EN_SERVICE_UUID128], "DuplicateData": True}
        return args

    async def close(self) -> None:
        if self._closed:
            return
        try:
            await self._unregister()
        finally:
            if self._bus is not None:
                self._bus.disconnect()
            self._bus = None
            self._manager = None
            self._closed = True


def sighting_from_advertisement(
    adv: Any, unix_time: float, device: Any = None
) -> RadioSighting | None:
    """A :class:`RadioSighting` from bleak's ``AdvertisementData``, or None if not 0xFD6F."""
    data = adv.service_data.get(EN_SERVICE_UUID128)
    if not isinstance(data, bytes | bytearray) or len(data) != 20:
        return None
    address = getattr(device, "address", None)
    return RadioSighting(bytes(data), int(adv.rssi), unix_time, address)
