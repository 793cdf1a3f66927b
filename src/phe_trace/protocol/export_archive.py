"""The export zip: ``export.bin`` then ``export.sig``, written deterministically.

``protocol_spec/SPEC.md`` §12 (EXP-8, EXP-9). The reference server writes both members
deflated, in that order, with zero DOS dates (shown as 1980-00-00); phe-trace does the
same, so the same two members always give the same zip bytes. The reader caps the
uncompressed size of every member (a zip bomb must not exhaust memory), accepts only
stored and deflated members, refuses duplicate member names and turns every zip
failure into an ``ExportFormatError``.
"""

from __future__ import annotations

import io
import zipfile
import zlib
from dataclasses import dataclass

from .errors import ExportFormatError, ExportTooLargeError, ExportTruncatedError

__all__ = [
    "DEFAULT_MAX_MEMBER_SIZE",
    "EXPORT_BIN_NAME",
    "EXPORT_SIG_NAME",
    "ExportArchive",
    "pack_export_zip",
    "unpack_export_zip",
]

#: Name of the keys member of an export zip.
EXPORT_BIN_NAME = "export.bin"
#: Name of the signatures member of an export zip.
EXPORT_SIG_NAME = "export.sig"
#: Default cap on a member's uncompressed size: 20 MiB (a full day of a large country's
#: keys is a few MiB; mirrors of GAEN servers use the same bound).
DEFAULT_MAX_MEMBER_SIZE = 20 * 1024 * 1024
#: Most members a zip may list before it is refused outright.
_MAX_MEMBERS = 16
#: The DOS date of every member: all zero fields, as the reference writes (1980-00-00).
_ZIP_DATE_TIME = (1980, 0, 0, 0, 0, 0)
_ZIP_MAGIC = b"PK\x03\x04"
#: Compression methods a member may use: stored and deflate (the reference writes deflate).
_COMPRESSIONS = frozenset({zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED})
_READ_CHUNK = 64 * 1024


@dataclass(frozen=True, slots=True)
class ExportArchive:
    """The two members of an export zip, as bytes. ``export_sig`` is None when absent."""

    export_bin: bytes
    export_sig: bytes | None


def _member(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=_ZIP_DATE_TIME)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.create_system = 0
    info.external_attr = 0
    return info


def pack_export_zip(export_bin: bytes, export_sig: bytes) -> bytes:
    """Zip ``export.bin`` then ``export.sig``; identical input gives identical bytes (EXP-8)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(_member(EXPORT_BIN_NAME), export_bin)
        archive.writestr(_member(EXPORT_SIG_NAME), export_sig)
    return buffer.getvalue()


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, max_member_size: int) -> bytes:
    if info.compress_type not in _COMPRESSIONS:
        # bzip2 and LZMA decompress without an output bound per call: refuse them
        raise ExportFormatError(f"{info.filename} uses zip compression {info.compress_type}")
    if info.file_size > max_member_size:
        raise ExportTooLargeError(
            f"{info.filename} is {info.file_size} bytes, over the {max_member_size}-byte limit"
        )
    chunks: list[bytes] = []
    total = 0
    with archive.open(info) as member:
        while chunk := member.read(_READ_CHUNK):
            total += len(chunk)
            if total > max_member_size:
                raise ExportTooLargeError(f"{info.filename} is over the size limit")
            chunks.append(chunk)
    return b"".join(chunks)


def _open(data: bytes) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        if data.startswith(_ZIP_MAGIC):
            raise ExportTruncatedError("export zip has no central directory") from exc
        raise ExportFormatError("not a zip archive") from exc


def _unpack(data: bytes, max_member_size: int) -> ExportArchive:
    members: dict[str, bytes] = {}
    with _open(data) as archive:
        infos = archive.infolist()
        if len(infos) > _MAX_MEMBERS:
            raise ExportFormatError(f"export zip lists {len(infos)} members")
        for info in infos:
            if info.filename not in (EXPORT_BIN_NAME, EXPORT_SIG_NAME):
                continue
            if info.filename in members:
                raise ExportFormatError(f"export zip holds two members named {info.filename}")
            members[info.filename] = _read_member(archive, info, max_member_size)
    if EXPORT_BIN_NAME not in members:
        raise ExportFormatError("export zip has no export.bin")
    return ExportArchive(members[EXPORT_BIN_NAME], members.get(EXPORT_SIG_NAME))


def unpack_export_zip(
    data: bytes, *, max_member_size: int = DEFAULT_MAX_MEMBER_SIZE
) -> ExportArchive:
    """Read the export.bin and export.sig members of an export zip (EXP-9).

    Other members are ignored. Raises :class:`ExportTooLargeError` when a member is
    larger than ``max_member_size`` bytes uncompressed, :class:`ExportTruncatedError`
    when the archive or a member is cut short, :class:`ExportFormatError` otherwise.
    The signature is *not* checked here: see ``verify_export``.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ExportFormatError("export zip must be bytes")
    data = bytes(data)
    try:
        return _unpack(data, max_member_size)
    except ExportFormatError:
        raise
    except EOFError as exc:
        raise ExportTruncatedError("an export zip member is cut short") from exc
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        zlib.error,
        NotImplementedError,
        RuntimeError,
        ValueError,
        OSError,
        OverflowError,
        UnicodeError,
        KeyError,
        IndexError,
    ) as exc:
        raise ExportFormatError(f"export zip is malformed: {type(exc).__name__}") from exc
