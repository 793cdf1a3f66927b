"""The exposure-notification advertisement: 0xFD6F service data and legacy AD bytes.

``protocol_spec/SPEC.md`` §5 (requirements ADV-1 … ADV-5). The 31-byte legacy
advertising data is three AD structures::

    02 01 1A                   Flags: LE General Discoverable | BR/EDR not supported | ...
    03 03 6F FD                Complete List of 16-bit Service UUIDs: 0xFD6F
    17 16 6F FD <RPI> <AEM>    Service Data - 16-bit UUID 0xFD6F: RPI (16) ‖ AEM (4)

The parser accepts the structures in any order and ignores extra ones (as a scanner
must, since stacks add e.g. TX-power structures), but is strict about lengths.
"""

from __future__ import annotations

from dataclasses import dataclass

from phe_trace.crypto import AEM_LENGTH, RPI_LENGTH

from .errors import AdvertisementError

__all__ = [
    "AD_TYPE_COMPLETE_16BIT_UUIDS",
    "AD_TYPE_FLAGS",
    "AD_TYPE_INCOMPLETE_16BIT_UUIDS",
    "AD_TYPE_SERVICE_DATA_16BIT",
    "EN_SERVICE_UUID16",
    "EN_SERVICE_UUID128",
    "LEGACY_AD_MAX_LENGTH",
    "SERVICE_DATA_LENGTH",
    "Advertisement",
    "build_advertising_data",
    "build_service_data",
    "iter_ad_structures",
    "parse_advertising_data",
    "parse_service_data",
]

#: The exposure-notification 16-bit service UUID (ADV-1).
EN_SERVICE_UUID16 = 0xFD6F
#: The same UUID in its 128-bit Bluetooth Base form, as scanners such as bleak report it.
EN_SERVICE_UUID128 = "0000fd6f-0000-1000-8000-00805f9b34fb"
#: Length of the 0xFD6F service data value: RPI ‖ AEM (ADV-2).
SERVICE_DATA_LENGTH = RPI_LENGTH + AEM_LENGTH
#: Maximum length of legacy advertising data (Core spec Vol 3 Part C §11).
LEGACY_AD_MAX_LENGTH = 31
#: AD type: Flags.
AD_TYPE_FLAGS = 0x01
#: AD type: Incomplete List of 16-bit Service UUIDs.
AD_TYPE_INCOMPLETE_16BIT_UUIDS = 0x02
#: AD type: Complete List of 16-bit Service UUIDs.
AD_TYPE_COMPLETE_16BIT_UUIDS = 0x03
#: AD type: Service Data - 16-bit UUID.
AD_TYPE_SERVICE_DATA_16BIT = 0x16
#: Flags value we send: LE General Discoverable (0x02) | BR/EDR not supported (0x04)
#: | simultaneous LE and BR/EDR controller/host bits (0x18), as phones send it (ADV-3).
_FLAGS_VALUE = 0x1A
_UUID_LE = EN_SERVICE_UUID16.to_bytes(2, "little")


@dataclass(frozen=True, slots=True)
class Advertisement:
    """One exposure-notification advertisement: the identifier and its encrypted metadata."""

    rpi: bytes
    aem: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.rpi, bytes) or len(self.rpi) != RPI_LENGTH:
            raise AdvertisementError(f"rpi must be {RPI_LENGTH} bytes, got {_describe(self.rpi)}")
        if not isinstance(self.aem, bytes) or len(self.aem) != AEM_LENGTH:
            raise AdvertisementError(f"aem must be {AEM_LENGTH} bytes, got {_describe(self.aem)}")


def _describe(value: object) -> str:
    if isinstance(value, bytes | bytearray):
        return f"{len(value)} bytes"
    return f"a {type(value).__name__}"


def build_service_data(rpi: bytes, aem: bytes) -> bytes:
    """The 20-byte 0xFD6F service data value: RPI ‖ AEM (ADV-2)."""
    adv = Advertisement(rpi, aem)
    return adv.rpi + adv.aem


def parse_service_data(data: bytes) -> Advertisement:
    """Split 20 bytes of 0xFD6F service data into RPI and AEM (ADV-2)."""
    if not isinstance(data, bytes | bytearray) or len(data) != SERVICE_DATA_LENGTH:
        raise AdvertisementError(
            f"service data must be {SERVICE_DATA_LENGTH} bytes, got {_describe(data)}"
        )
    data = bytes(data)
    return Advertisement(data[:RPI_LENGTH], data[RPI_LENGTH:])


def build_advertising_data(rpi: bytes, aem: bytes) -> bytes:
    """The full 31-byte legacy advertising data: Flags, UUID list, Service Data (ADV-3)."""
    service_data = build_service_data(rpi, aem)
    return (
        bytes((2, AD_TYPE_FLAGS, _FLAGS_VALUE))
        + bytes((3, AD_TYPE_COMPLETE_16BIT_UUIDS))
        + _UUID_LE
        + bytes((1 + 2 + SERVICE_DATA_LENGTH, AD_TYPE_SERVICE_DATA_16BIT))
        + _UUID_LE
        + service_data
    )


def iter_ad_structures(data: bytes) -> list[tuple[int, bytes]]:
    """Split advertising data into ``(ad_type, value)`` pairs (ADV-4).

    A zero length byte ends the significant part (the rest is padding). A structure
    that runs past the end of the data is an error.
    """
    if not isinstance(data, bytes | bytearray):
        raise AdvertisementError(f"advertising data must be bytes, got {_describe(data)}")
    if len(data) > LEGACY_AD_MAX_LENGTH:
        raise AdvertisementError(
            f"legacy advertising data must be at most {LEGACY_AD_MAX_LENGTH} bytes, got {len(data)}"
        )
    structures: list[tuple[int, bytes]] = []
    i = 0
    while i < len(data):
        length = data[i]
        if length == 0:
            break
        if i + 1 + length > len(data):
            raise AdvertisementError(
                f"AD structure at offset {i} declares {length} bytes but only "
                f"{len(data) - i - 1} remain"
            )
        structures.append((data[i + 1], bytes(data[i + 2 : i + 1 + length])))
        i += 1 + length
    return structures


def parse_advertising_data(data: bytes) -> Advertisement:
    """Find and parse the 0xFD6F service data in legacy advertising data (ADV-4, ADV-5).

    Structures may come in any order and extra structures are ignored. The 0xFD6F UUID
    must appear in a 16-bit service UUID list, and exactly one 0xFD6F service data
    structure of the right length must be present.
    """
    found: list[bytes] = []
    listed = False
    for ad_type, value in iter_ad_structures(data):
        if ad_type in (AD_TYPE_COMPLETE_16BIT_UUIDS, AD_TYPE_INCOMPLETE_16BIT_UUIDS):
            if len(value) % 2:
                raise AdvertisementError("16-bit service UUID list has an odd length")
            uuids = {value[k : k + 2] for k in range(0, len(value), 2)}
            listed = listed or _UUID_LE in uuids
        elif ad_type == AD_TYPE_SERVICE_DATA_16BIT and value[:2] == _UUID_LE:
            found.append(value[2:])
    if not found:
        raise AdvertisementError("no 0xFD6F service data in advertising data")
    if len(found) > 1:
        raise AdvertisementError("more than one 0xFD6F service data structure")
    advertisement = parse_service_data(found[0])
    if not listed:
        raise AdvertisementError("0xFD6F is missing from the 16-bit service UUID list")
    return advertisement
