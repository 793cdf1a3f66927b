"""The 0xFD6F advertisement payload (SPEC ADV-1 … ADV-5)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from phe_trace.protocol.advertisement import (
    Advertisement,
    build_advertising_data,
    build_service_data,
    parse_advertising_data,
    parse_service_data,
)
from phe_trace.protocol.errors import AdvertisementError

rpis = st.binary(min_size=16, max_size=16)
aems = st.binary(min_size=4, max_size=4)


def _independent_ad(rpi: bytes, aem: bytes) -> bytes:
    """The GAEN Bluetooth spec's three AD structures, written out by hand."""
    flags = bytes([0x02, 0x01, 0x1A])
    uuids = bytes([0x03, 0x03, 0x6F, 0xFD])
    service = bytes([0x17, 0x16, 0x6F, 0xFD]) + rpi + aem
    return flags + uuids + service


@given(rpis, aems)
def test_build_matches_spec_layout_and_round_trips(rpi: bytes, aem: bytes) -> None:
    """ADV-1, ADV-2, ADV-3."""
    ad = build_advertising_data(rpi, aem)
    assert ad == _independent_ad(rpi, aem)
    assert len(ad) == 31
    assert parse_advertising_data(ad) == Advertisement(rpi, aem)
    assert build_service_data(rpi, aem) == rpi + aem
    assert parse_service_data(rpi + aem) == Advertisement(rpi, aem)


@given(rpis, aems, st.permutations([0, 1, 2]))
def test_structures_in_any_order_are_accepted(rpi: bytes, aem: bytes, order: list[int]) -> None:
    """ADV-4: AD structures may come in another order."""
    parts = [bytes([0x02, 0x01, 0x06]), bytes([0x03, 0x03, 0x6F, 0xFD])]
    parts.append(bytes([0x17, 0x16, 0x6F, 0xFD]) + rpi + aem)
    ad = b"".join(parts[i] for i in order)
    assert parse_advertising_data(ad).rpi == rpi


def test_extra_structures_and_trailing_padding_are_ignored() -> None:
    """ADV-4: other structures (here TX power level) and zero padding are tolerated."""
    rpi, aem = bytes(range(16)), b"\x01\x02\x03\x04"
    core = bytes([0x03, 0x03, 0x6F, 0xFD]) + bytes([0x17, 0x16, 0x6F, 0xFD]) + rpi + aem
    with_tx_power = bytes([0x02, 0x0A, 0xF4]) + core
    padded = core + b"\x00\x00\x00"
    assert parse_advertising_data(with_tx_power) == Advertisement(rpi, aem)
    assert parse_advertising_data(padded) == Advertisement(rpi, aem)


@pytest.mark.parametrize(
    ("ad", "message"),
    [
        (b"", "no 0xFD6F service data"),
        (bytes([0x03, 0x03, 0x6F, 0xFD]), "no 0xFD6F service data"),
        (bytes([0x16, 0x16, 0x6F, 0xFD]) + bytes(19), "service data must be 20 bytes"),
        (bytes([0x17, 0x16, 0x6F, 0xFD]) + bytes(20), "missing from the 16-bit service UUID"),
        (bytes([0x03, 0x03, 0x6F, 0xFD, 0x18, 0x16, 0x6F]), "declares 24 bytes"),
        (bytes(32), "at most 31 bytes"),
        (bytes([0x02, 0x03, 0x6F]) + bytes([0x17, 0x16, 0x6F, 0xFD]) + bytes(20), "odd length"),
    ],
)
def test_malformed_data_gives_a_parse_error(ad: bytes, message: str) -> None:
    """ADV-5: strict about lengths, with a message saying what is wrong."""
    with pytest.raises(AdvertisementError, match=message):
        parse_advertising_data(ad)


@given(st.binary(max_size=40))
def test_garbage_only_ever_raises_advertisement_error(data: bytes) -> None:
    """ADV-5: arbitrary bytes parse or raise AdvertisementError, never anything else."""
    try:
        adv = parse_advertising_data(data)
    except AdvertisementError:
        return
    assert len(adv.rpi) == 16 and len(adv.aem) == 4


@given(rpis, aems, st.integers(min_value=0, max_value=30), st.integers(min_value=0, max_value=255))
def test_mutated_valid_data_never_escapes(rpi: bytes, aem: bytes, pos: int, value: int) -> None:
    """ADV-5: a one-byte mutation of valid data parses or raises AdvertisementError."""
    ad = bytearray(build_advertising_data(rpi, aem))
    ad[pos] = value
    try:
        parse_advertising_data(bytes(ad))
    except AdvertisementError:
        pass


def test_wrong_lengths_in_builders() -> None:
    """ADV-2."""
    with pytest.raises(AdvertisementError, match="rpi must be 16 bytes, got 15 bytes"):
        build_service_data(bytes(15), bytes(4))
    with pytest.raises(AdvertisementError, match="aem must be 4 bytes"):
        build_advertising_data(bytes(16), bytes(5))
    with pytest.raises(AdvertisementError, match="service data must be 20 bytes"):
        parse_service_data(bytes(21))
