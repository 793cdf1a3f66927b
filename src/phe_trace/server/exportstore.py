"""Where export files live: an interface, and a directory implementation.

Objects are named ``<region>/<file>`` (``index.txt`` or ``*.zip``). Zip objects are
written once and never rewritten (PUB-33); only ``index.txt`` is replaced, atomically.
The S3-compatible implementation is :mod:`phe_trace.server.exportstore_s3`.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Protocol

from .errors import ExportStoreError

__all__ = [
    "INDEX_CACHE_CONTROL",
    "ZIP_CACHE_CONTROL",
    "DirectoryExportStore",
    "ExportStore",
    "check_object_name",
    "object_headers",
]

#: Cache-Control of index.txt (short: it grows with every batch).
INDEX_CACHE_CONTROL = "public, max-age=60"
#: Cache-Control of export zips (never rewritten).
ZIP_CACHE_CONTROL = "public, max-age=31536000, immutable"

_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,31}/[A-Za-z0-9_][A-Za-z0-9_.-]{0,199}$")


def check_object_name(name: str) -> str:
    """``name`` if it is ``region/file`` with safe characters, else raise."""
    if not _NAME.match(name) or ".." in name:
        raise ExportStoreError("export object name is invalid")
    return name


def object_headers(name: str) -> tuple[str, str]:
    """``(Cache-Control, Content-Type)`` an object is served with (SPEC PUB-38)."""
    if name.endswith(".zip"):
        return ZIP_CACHE_CONTROL, "application/zip"
    return INDEX_CACHE_CONTROL, "text/plain; charset=us-ascii"


class ExportStore(Protocol):
    """Storage of export objects, by name."""

    def create(self, name: str, data: bytes) -> bool:
        """Write a new immutable object; ``False`` (and no write) if it exists."""
        ...

    def replace(self, name: str, data: bytes) -> None:
        """Write or atomically replace a mutable object (``index.txt``)."""
        ...

    def read(self, name: str) -> bytes:
        """The object's bytes; :class:`ExportStoreError` if missing."""
        ...

    def exists(self, name: str) -> bool:
        """Whether the object exists."""
        ...

    def delete(self, name: str) -> None:
        """Remove the object if present."""
        ...

    def names(self, region: str) -> list[str]:
        """Every object name under ``region/``, sorted."""
        ...

    def path_of(self, name: str) -> Path | None:
        """A local file path for serving the object, if the store has one."""
        ...


class DirectoryExportStore:
    """An :class:`ExportStore` in a local directory (served by the server or a web server)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def _path(self, name: str) -> Path:
        return self.root / check_object_name(name)

    def create(self, name: str, data: bytes) -> bool:
        path = self._path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, 0o644)
            try:
                os.link(tmp, path)  # atomic create-if-absent: never replaces
            except FileExistsError:
                return False
            return True
        finally:
            os.unlink(tmp)

    def replace(self, name: str, data: bytes) -> None:
        path = self._path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)

    def read(self, name: str) -> bytes:
        try:
            return self._path(name).read_bytes()
        except (FileNotFoundError, IsADirectoryError):
            raise ExportStoreError(f"export object {name} does not exist") from None

    def exists(self, name: str) -> bool:
        return self._path(name).is_file()

    def delete(self, name: str) -> None:
        self._path(name).unlink(missing_ok=True)

    def names(self, region: str) -> list[str]:
        directory = self._path(f"{region}/index.txt").parent
        if not directory.is_dir():
            return []
        return sorted(
            f"{region}/{p.name}" for p in directory.iterdir() if p.is_file() and p.name[0] != "."
        )

    def path_of(self, name: str) -> Path | None:
        path = self._path(name)
        return path if path.is_file() else None
