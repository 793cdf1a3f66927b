"""The house rules of ARCHITECTURE.md that code can check: layers, public surface, error tree."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import pytest

import phe_trace
from phe_trace import crypto
from phe_trace.errors import PheTraceError

SRC = Path(phe_trace.__file__).resolve().parent

#: Which top-level parts of phe_trace each part may import (ARCHITECTURE.md "Layers").
LAYER = {
    "errors": 0,
    "settings": 0,
    "crypto": 0,
    "protocol": 0,
    "exposure": 1,
    "analytics": 1,
    "agent": 2,
    "server": 2,
    "verification": 2,
    "aggregator": 2,
    "gateway": 2,
    "conformance": 2,
    "sim": 3,
    "hosting": 3,
    "cli": 4,
}
#: Same-layer imports the design allows: protocol stands on crypto; both raise from the
#: error root; the simulator starts the real server through the same composition
#: (``hosting``) that ``phe-trace server run`` uses, rather than a copy of it.
ALLOWED_SAME_LAYER = {
    ("sim", "hosting"),
    ("protocol", "crypto"),
    ("crypto", "errors"),
    ("crypto", "settings"),  # PHE_TRACE_NO_LIBCRYPTO, read through the one settings base
    ("protocol", "errors"),
}


def _part(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "phe_trace" or len(parts) < 2:
        return None
    return parts[1]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()
    package = ".".join(("phe_trace", *path.relative_to(SRC).with_suffix("").parts))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: -node.level]
                found.add(".".join([*base, node.module or ""]).rstrip("."))
            elif node.module:
                found.add(node.module)
    return found


def _source_files() -> list[Path]:
    return sorted(p for p in SRC.rglob("*.py") if not p.name.endswith("_pb2.py"))


@pytest.mark.parametrize("path", _source_files(), ids=lambda p: str(p.relative_to(SRC)))
def test_imports_follow_the_layers(path: Path) -> None:
    """A package imports only packages in lower layers (ARCHITECTURE.md), never sideways or up."""
    own = path.relative_to(SRC).parts[0].removesuffix(".py")
    if own == "__init__" or own not in LAYER:
        return
    for module in _imports(path):
        other = _part(module)
        if other is None or other == own or other == "__init__" or other not in LAYER:
            continue
        lower = LAYER[other] < LAYER[own]
        assert lower or (own, other) in ALLOWED_SAME_LAYER, (
            f"{path.relative_to(SRC)} imports {module}: {own} (layer {LAYER[own]}) may not "
            f"import {other} (layer {LAYER[other]})"
        )
        assert other != "sim" or own in ("cli", "sim"), f"{path} imports the simulator"


def test_crypto_public_surface_is_pinned() -> None:
    """The names auditors and tools call (issue: 'exactly these public names')."""
    required = {
        "en_interval_number",
        "rolling_start_interval_number",
        "new_temporary_exposure_key",
        "rpik",
        "aemk",
        "rpi",
        "rpis",
        "encrypt_metadata",
        "decrypt_metadata",
        "Metadata",
        "SealingKey",
    }
    assert required <= set(crypto.__all__)
    assert all(hasattr(crypto, name) for name in crypto.__all__)


def _all_error_classes() -> list[type[PheTraceError]]:
    for info in pkgutil.walk_packages(phe_trace.__path__, "phe_trace."):
        if info.name.endswith(("errors", ".errors")):
            importlib.import_module(info.name)
    seen: list[type[PheTraceError]] = []
    todo: list[type[PheTraceError]] = [PheTraceError]
    while todo:
        cls = todo.pop()
        seen.append(cls)
        todo.extend(cls.__subclasses__())
    return seen


def test_every_error_has_a_stable_code_and_a_docstring() -> None:
    """Errors: one tree rooted at PheTraceError, each class with a code and a 'when' docstring."""
    for cls in _all_error_classes():
        assert cls.__doc__ and cls.__doc__.strip(), f"{cls.__qualname__} has no docstring"
        assert isinstance(cls.code, str) and cls.code.islower(), cls
