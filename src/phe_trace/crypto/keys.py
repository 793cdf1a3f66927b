"""The GAEN v1.2 key schedule: TEK → RPIK/AEMK → RPI and AEM.

``protocol_spec/SPEC.md`` §3 (requirements KEY-1 … KEY-7)::

    RPIK = HKDF-SHA256(TEK, salt=∅, info="EN-RPIK", L=16)
    AEMK = HKDF-SHA256(TEK, salt=∅, info="EN-AEMK", L=16)
    PaddedData_j = "EN-RPI" ‖ 0x00×6 ‖ uint32-LE(j)
    RPI_j = AES-128-ECB(RPIK, PaddedData_j)
    AEM_j = AES-128-CTR(AEMK, IV=RPI_j, metadata)

HKDF is :func:`phe_trace.crypto.kdf.hkdf_sha256`, the package's one implementation (with
one output block and an empty salt, ``PRK = HMAC(0x00×32, TEK)`` and
``OKM = HMAC(PRK, info ‖ 0x01)[:16]``); a property test holds it against
``cryptography``'s HKDF.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator, Sequence
from functools import lru_cache
from typing import overload

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from .errors import IntervalRangeError, InvalidLengthError
from .kdf import hkdf_expand, hkdf_extract, hkdf_sha256
from .metadata import METADATA_LENGTH
from .timebase import MAX_INTERVAL, TEK_ROLLING_PERIOD, check_interval

__all__ = [
    "AEMK_INFO",
    "AEM_LENGTH",
    "KEY_LENGTH",
    "RPIK_INFO",
    "RPI_LENGTH",
    "RPI_PADDED_PREFIX",
    "RollingProximityIdentifiers",
    "aemk",
    "decrypt_metadata",
    "encrypt_metadata",
    "new_temporary_exposure_key",
    "padded_data",
    "rpi",
    "rpik",
    "rpik_and_aemk",
    "rpis",
    "rpis_bytes",
]

#: Length of a TEK, RPIK and AEMK in bytes (KEY-1).
KEY_LENGTH = 16
#: Length of a Rolling Proximity Identifier in bytes (KEY-4).
RPI_LENGTH = 16
#: Length of the Associated Encrypted Metadata in bytes (KEY-6).
AEM_LENGTH = METADATA_LENGTH
#: HKDF info string for the Rolling Proximity Identifier Key (KEY-2).
RPIK_INFO = b"EN-RPIK"
#: HKDF info string for the Associated Encrypted Metadata Key (KEY-3).
AEMK_INFO = b"EN-AEMK"
#: The first 12 bytes of every RPI PaddedData block: "EN-RPI" and six zero bytes (KEY-4).
RPI_PADDED_PREFIX = b"EN-RPI" + bytes(6)


def _check_key(name: str, key: bytes) -> None:
    if not isinstance(key, bytes) or len(key) != KEY_LENGTH:
        raise InvalidLengthError(name, key, KEY_LENGTH)


def new_temporary_exposure_key() -> bytes:
    """A fresh Temporary Exposure Key: 16 bytes from the OS CSPRNG (KEY-1)."""
    return os.urandom(KEY_LENGTH)


def rpik(tek: bytes) -> bytes:
    """Rolling Proximity Identifier Key = HKDF-SHA256(TEK, ∅, "EN-RPIK", 16) (KEY-2)."""
    _check_key("tek", tek)
    return hkdf_sha256(tek, RPIK_INFO, KEY_LENGTH)


def aemk(tek: bytes) -> bytes:
    """Associated Encrypted Metadata Key = HKDF-SHA256(TEK, ∅, "EN-AEMK", 16) (KEY-3)."""
    _check_key("tek", tek)
    return hkdf_sha256(tek, AEMK_INFO, KEY_LENGTH)


def rpik_and_aemk(tek: bytes) -> tuple[bytes, bytes]:
    """Both derived keys of a TEK, sharing the HKDF-Extract step (KEY-2, KEY-3)."""
    _check_key("tek", tek)
    prk = hkdf_extract(tek)
    return hkdf_expand(prk, RPIK_INFO, KEY_LENGTH), hkdf_expand(prk, AEMK_INFO, KEY_LENGTH)


def padded_data(interval: int) -> bytes:
    """RPI PaddedData for ``interval``: "EN-RPI" ‖ 0x00×6 ‖ uint32-LE(interval) (KEY-4)."""
    check_interval("interval", interval)
    return RPI_PADDED_PREFIX + struct.pack("<I", interval)


@lru_cache(maxsize=256)
def _padded_blocks(start_interval: int, count: int) -> bytes:
    return b"".join(
        RPI_PADDED_PREFIX + struct.pack("<I", j)
        for j in range(start_interval, start_interval + count)
    )


def _check_range(start_interval: int, count: int) -> None:
    check_interval("start_interval", start_interval)
    if (
        isinstance(count, bool)
        or not isinstance(count, int)
        or not 1 <= count <= TEK_ROLLING_PERIOD
    ):
        raise IntervalRangeError(f"count must be an int in 1..{TEK_ROLLING_PERIOD}, got {count!r}")
    if start_interval + count - 1 > MAX_INTERVAL:
        raise IntervalRangeError(
            f"start_interval + count - 1 must be <= {MAX_INTERVAL}, "
            f"got {start_interval} + {count} - 1"
        )


def rpi(rpik: bytes, interval: int) -> bytes:
    """The Rolling Proximity Identifier of ``interval``: AES-128-ECB(RPIK, PaddedData) (KEY-4)."""
    _check_key("rpik", rpik)
    encryptor = Cipher(algorithms.AES(rpik), modes.ECB()).encryptor()  # noqa: S305 - one block by spec
    return encryptor.update(padded_data(interval))


def rpis_bytes(rpik: bytes, start_interval: int, count: int = TEK_ROLLING_PERIOD) -> bytes:
    """All identifiers of ``count`` intervals from ``start_interval``, concatenated (KEY-5).

    One AES-ECB call over the concatenated PaddedData blocks: identifier ``i`` is
    ``result[16*i : 16*i+16]``. This is the matching hot path.
    """
    _check_key("rpik", rpik)
    _check_range(start_interval, count)
    encryptor = Cipher(algorithms.AES(rpik), modes.ECB()).encryptor()  # noqa: S305 - block-wise by spec
    return encryptor.update(_padded_blocks(start_interval, count))


class RollingProximityIdentifiers(Sequence[bytes]):
    """The identifiers of consecutive intervals, backed by one contiguous byte string.

    ``ids[i]`` is the RPI of interval ``start_interval + i``; ``ids.data`` is the raw
    concatenation (``16 × len(ids)`` bytes).
    """

    __slots__ = ("data", "start_interval")

    def __init__(self, data: bytes, start_interval: int) -> None:
        if len(data) % RPI_LENGTH:
            raise InvalidLengthError("data", data, RPI_LENGTH * (len(data) // RPI_LENGTH + 1))
        self.data = data
        self.start_interval = start_interval

    def __len__(self) -> int:
        return len(self.data) // RPI_LENGTH

    @overload
    def __getitem__(self, index: int) -> bytes: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[bytes]: ...
    def __getitem__(self, index: int | slice) -> bytes | Sequence[bytes]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        n = len(self)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError("identifier index out of range")
        return self.data[RPI_LENGTH * index : RPI_LENGTH * (index + 1)]

    def __iter__(self) -> Iterator[bytes]:
        data = self.data
        return (data[i : i + RPI_LENGTH] for i in range(0, len(data), RPI_LENGTH))

    def interval_of(self, index: int) -> int:
        """The interval number whose identifier sits at ``index``."""
        return self.start_interval + index


def rpis(
    rpik: bytes, start_interval: int, count: int = TEK_ROLLING_PERIOD
) -> RollingProximityIdentifiers:
    """All identifiers of a key at once, as a sequence of 16-byte values (KEY-5).

    Computed with one cipher call (see :func:`rpis_bytes`); equal to
    ``[rpi(rpik, j) for j in range(start_interval, start_interval + count)]``.
    """
    return RollingProximityIdentifiers(rpis_bytes(rpik, start_interval, count), start_interval)


def _aes_ctr(aemk: bytes, rpi: bytes, data: bytes) -> bytes:
    _check_key("aemk", aemk)
    if not isinstance(rpi, bytes) or len(rpi) != RPI_LENGTH:
        raise InvalidLengthError("rpi", rpi, RPI_LENGTH)
    if not isinstance(data, bytes | bytearray) or len(data) != METADATA_LENGTH:
        raise InvalidLengthError("metadata", data, METADATA_LENGTH)
    encryptor = Cipher(algorithms.AES(aemk), modes.CTR(rpi)).encryptor()
    return encryptor.update(bytes(data))


def encrypt_metadata(aemk: bytes, rpi: bytes, metadata: bytes) -> bytes:
    """AEM = AES-128-CTR(AEMK, IV=RPI, metadata): 4 bytes in, 4 bytes out (KEY-6)."""
    return _aes_ctr(aemk, rpi, metadata)


def decrypt_metadata(aemk: bytes, rpi: bytes, aem: bytes) -> bytes:
    """Invert :func:`encrypt_metadata` (CTR is its own inverse) (KEY-7)."""
    if not isinstance(aem, bytes | bytearray) or len(aem) != AEM_LENGTH:
        raise InvalidLengthError("aem", aem, AEM_LENGTH)
    return _aes_ctr(aemk, rpi, aem)
