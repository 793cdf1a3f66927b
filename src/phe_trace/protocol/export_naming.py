"""Names of export files and the ``index.txt`` that lists them.

``protocol_spec/SPEC.md`` §12 (EXP-13, EXP-14). Export files live under a per-region
root directory and are named by their time window and batch number, as the reference
server names them: ``ROOT/START-END-NNNNN.zip`` (UTC seconds, batch number zero-padded
to five digits). ``ROOT/index.txt`` lists the published files, oldest to newest, one
path per line, relative to the export store's base URL. Pure functions: the server
writes with them and the agent reads with them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from .errors import ExportFormatError

__all__ = [
    "EXPORT_FILE_SUFFIX",
    "INDEX_FILE_NAME",
    "MAX_INDEX_ENTRIES",
    "ExportFileName",
    "export_file_name",
    "format_index",
    "index_file_name",
    "parse_export_file_name",
    "parse_index",
]

#: Suffix of every export file.
EXPORT_FILE_SUFFIX = ".zip"
#: Name of the index file inside a root.
INDEX_FILE_NAME = "index.txt"
#: Most entries an index may hold before a reader refuses it (14 days × 24 hourly
#: batches × generous splitting stays far below).
MAX_INDEX_ENTRIES = 100_000
#: Largest batch number the five-digit field may carry.
_MAX_BATCH_NUM = 99_999

_SEGMENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")
_FILE = re.compile(r"(?P<start>[0-9]{1,20})-(?P<end>[0-9]{1,20})-(?P<num>[0-9]{5})\.zip")


def _check_root(root: str) -> None:
    segments = root.split("/")
    if not root or not all(_SEGMENT.fullmatch(s) and s not in (".", "..") for s in segments):
        raise ExportFormatError(
            f"export root {root!r} must be '/'-separated segments of [A-Za-z0-9_.-] "
            "starting with a letter, digit or '_'"
        )


def _check_relative_path(path: str) -> None:
    segments = path.split("/")
    if not path or not all(_SEGMENT.fullmatch(s) and s != ".." for s in segments):
        raise ExportFormatError(f"index entry {path!r} is not a plain relative path")


@dataclass(frozen=True, slots=True, order=True)
class ExportFileName:
    """A parsed export file name; instances sort oldest first (by window, then batch)."""

    start_timestamp: int
    end_timestamp: int
    batch_num: int
    root: str

    @property
    def path(self) -> str:
        """The relative path ``ROOT/START-END-NNNNN.zip``."""
        return export_file_name(self.root, self.start_timestamp, self.end_timestamp, self.batch_num)


def export_file_name(root: str, start_timestamp: int, end_timestamp: int, batch_num: int) -> str:
    """Relative path of an export file: ``ROOT/START-END-NNNNN.zip`` (EXP-13)."""
    _check_root(root)
    if not 0 <= start_timestamp <= end_timestamp < 2**64:
        raise ExportFormatError(f"time window {start_timestamp}..{end_timestamp} is invalid")
    if not 1 <= batch_num <= _MAX_BATCH_NUM:
        raise ExportFormatError(f"batch number {batch_num} is outside 1..{_MAX_BATCH_NUM}")
    return f"{root}/{start_timestamp}-{end_timestamp}-{batch_num:05d}{EXPORT_FILE_SUFFIX}"


def parse_export_file_name(path: str) -> ExportFileName:
    """Inverse of :func:`export_file_name`; raises :class:`ExportFormatError` if not one."""
    root, slash, name = path.rpartition("/")
    match = _FILE.fullmatch(name)
    if not slash or match is None:
        raise ExportFormatError(f"{path!r} is not ROOT/START-END-NNNNN.zip")
    _check_root(root)
    start, end, num = int(match["start"]), int(match["end"]), int(match["num"])
    if not start <= end < 2**64 or num < 1:
        raise ExportFormatError(f"{path!r} has an invalid window or batch number")
    return ExportFileName(start, end, num, root)


def index_file_name(root: str) -> str:
    """Relative path of a root's index: ``ROOT/index.txt`` (EXP-14)."""
    _check_root(root)
    return f"{root}/{INDEX_FILE_NAME}"


def format_index(paths: Iterable[str]) -> bytes:
    """index.txt content: the paths, in the given order (oldest first), one per line.

    Lines are joined with ``\\n`` and there is no trailing newline, as the reference
    server writes; an empty index is empty. Each path must be relative (EXP-14).
    """
    entries = list(paths)
    for path in entries:
        _check_relative_path(path)
    return "\n".join(entries).encode("ascii")


def parse_index(data: bytes, *, max_entries: int = MAX_INDEX_ENTRIES) -> tuple[str, ...]:
    """Paths listed by an index.txt, in file order.

    Tolerates ``\\r\\n`` line ends, surrounding spaces, blank lines and a trailing
    newline; refuses non-ASCII content, absolute paths, ``..`` and more than
    ``max_entries`` entries, with :class:`ExportFormatError`.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ExportFormatError("index.txt must be bytes")
    try:
        text = bytes(data).decode("ascii")
    except UnicodeDecodeError as exc:
        raise ExportFormatError("index.txt is not ASCII") from exc
    entries = tuple(line.strip() for line in text.split("\n") if line.strip())
    if len(entries) > max_entries:
        raise ExportFormatError(f"index.txt lists more than {max_entries} files")
    for path in entries:
        _check_relative_path(path)
    return entries
