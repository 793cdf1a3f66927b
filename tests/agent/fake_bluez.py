"""A fake ``org.bluez`` on a private dbus-daemon, for the BlueZ advertising code path.

Like bluetoothd, ``RegisterAdvertisement`` reads the caller's object with
``org.freedesktop.DBus.Properties.GetAll("org.bluez.LEAdvertisement1")`` and records
what it got. ``fail_next`` makes the next registration fail with a given D-Bus error.
"""

import shutil
import subprocess
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from dbus_fast import DBusError, Message, MessageType, PropertyAccess, Variant
from dbus_fast.aio import MessageBus
from dbus_fast.annotations import DBusObjectPath, DBusSignature
from dbus_fast.service import ServiceInterface, dbus_method, dbus_property

DBUS_DAEMON = shutil.which("dbus-daemon")


@dataclass
class Registration:
    path: str
    properties: dict[str, Any]


@dataclass
class FakeState:
    registered: dict[str, Registration] = field(default_factory=dict)
    history: list[tuple[str, str]] = field(default_factory=list)
    fail_next: tuple[str, str] | None = None


class FakeManager(ServiceInterface):
    def __init__(self, bus: MessageBus, state: FakeState) -> None:
        super().__init__("org.bluez.LEAdvertisingManager1")
        self._bus = bus
        self.state = state
        self.sender: str | None = None

    @dbus_method()
    async def RegisterAdvertisement(
        self,
        path: DBusObjectPath,
        options: Annotated[dict[str, Variant], DBusSignature("a{sv}")],
    ) -> None:
        if self.state.fail_next is not None:
            name, text = self.state.fail_next
            self.state.fail_next = None
            raise DBusError(name, text)
        if path in self.state.registered:
            raise DBusError("org.bluez.Error.AlreadyExists", "Already Exists")
        reply = await self._bus.call(
            Message(
                destination=self.sender,
                path=path,
                interface="org.freedesktop.DBus.Properties",
                member="GetAll",
                signature="s",
                body=["org.bluez.LEAdvertisement1"],
            )
        )
        assert reply.message_type == MessageType.METHOD_RETURN, reply.body
        props = {k: v.value for k, v in reply.body[0].items()}
        self.state.registered[path] = Registration(path, props)
        self.state.history.append(("register", path))

    @dbus_method()
    def UnregisterAdvertisement(self, path: DBusObjectPath) -> None:
        if path not in self.state.registered:
            raise DBusError("org.bluez.Error.DoesNotExist", "Does Not Exist")
        del self.state.registered[path]
        self.state.history.append(("unregister", path))

    @dbus_property(PropertyAccess.READ)
    def ActiveInstances(self) -> Annotated[int, DBusSignature("y")]:
        return len(self.state.registered)

    @dbus_property(PropertyAccess.READ)
    def SupportedInstances(self) -> Annotated[int, DBusSignature("y")]:
        return 4

    @dbus_property(PropertyAccess.READ)
    def SupportedIncludes(self) -> Annotated[list[str], DBusSignature("as")]:
        return ["tx-power", "appearance", "local-name"]


class FakeAdapterOnly(ServiceInterface):
    """An adapter object without the advertising manager (BlueZ too old)."""

    def __init__(self) -> None:
        super().__init__("org.bluez.Adapter1")

    @dbus_property(PropertyAccess.READ)
    def Powered(self) -> Annotated[bool, DBusSignature("b")]:
        return True


async def start_fake_bluez(
    address: str, *, adapter: str = "hci0", with_manager: bool = True
) -> tuple[MessageBus, FakeState]:
    bus = await MessageBus(bus_address=address).connect()
    state = FakeState()
    if with_manager:
        manager = FakeManager(bus, state)

        def remember_sender(msg: Message) -> None:
            if msg.member == "RegisterAdvertisement":
                manager.sender = msg.sender

        bus.add_message_handler(remember_sender)  # type: ignore[arg-type]
        bus.export(f"/org/bluez/{adapter}", manager)
    else:
        bus.export(f"/org/bluez/{adapter}", FakeAdapterOnly())
    await bus.request_name("org.bluez")
    return bus, state


def private_bus(tmp_path: Path) -> Iterator[str]:
    """Run a private dbus-daemon in ``tmp_path``; yield its address."""
    assert DBUS_DAEMON is not None
    sock = tmp_path / "bus.sock"
    config = tmp_path / "bus.conf"
    config.write_text(
        textwrap.dedent(
            f"""\
            <!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
             "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
            <busconfig>
              <type>custom</type>
              <listen>unix:path={sock}</listen>
              <auth>EXTERNAL</auth>
              <policy context="default">
                <allow user="*"/>
                <allow own="*"/>
                <allow send_destination="*" eavesdrop="true"/>
                <allow eavesdrop="true"/>
              </policy>
            </busconfig>
            """
        )
    )
    proc = subprocess.Popen(
        [DBUS_DAEMON, f"--config-file={config}", "--nofork", "--print-address"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        address = proc.stdout.readline().strip()
        assert address, "dbus-daemon printed no address"
        yield address
    finally:
        proc.terminate()
        proc.wait(timeout=5)
