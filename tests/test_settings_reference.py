"""The settings references are generated from the code and every variable has a meaning;
every role's settings stand on one base; no module outside the settings reads the
environment (ARCHITECTURE.md, "Settings")."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import sys
from pathlib import Path

import pytest
from pydantic_settings import BaseSettings

import phe_trace
from phe_trace.settings import PheTraceSettings

ROOT = Path(__file__).resolve().parent.parent
SRC = Path(phe_trace.__file__).resolve().parent
sys.path.insert(0, str(ROOT / "protocol_spec"))
import generate_settings  # noqa: E402

#: Modules that may read ``os.environ``: the settings themselves, and the agent, which
#: passes the environment on to its ``agent sync`` child process (minus its own
#: variables, which it sets from its settings) without reading a setting from it.
ENVIRONMENT_READERS = {
    "settings.py",
    "agent/config.py",
    "agent/agent.py",
}


@pytest.mark.parametrize("path", sorted(generate_settings._classes()))
def test_the_reference_is_what_the_code_says(path: str) -> None:
    """server/SETTINGS.md and device/SETTINGS.md equal what the generator writes now."""
    expected = generate_settings.render(path)
    assert (ROOT / path).read_text(encoding="utf-8") == expected, (
        f"{path} is stale: run python protocol_spec/generate_settings.py"
    )


def test_every_variable_has_a_meaning() -> None:
    """No row of either reference leaves the meaning empty."""
    for entries in generate_settings._classes().values():
        for _, cls, _ in entries:
            empty = [row[0] for row in generate_settings.rows(cls) if not row[3].strip()]
            assert not empty, f"{cls.__name__}: no meaning for {empty}"


def _settings_classes() -> list[type]:
    for info in pkgutil.walk_packages([str(SRC)], "phe_trace."):
        if info.name.startswith("phe_trace.cli") or "migrations" in info.name:
            continue
        try:
            importlib.import_module(info.name)
        except ImportError:  # an optional extra (bumble, dbus) not needed here
            continue
    found = []
    for module in list(sys.modules.values()):
        if getattr(module, "__name__", "").startswith("phe_trace"):
            for _, obj in inspect.getmembers(module, inspect.isclass):
                if issubclass(obj, BaseSettings) and obj.__module__ == module.__name__:
                    found.append(obj)
    return found


def test_every_settings_class_stands_on_the_one_base() -> None:
    """Each role's settings extend PheTraceSettings, and each is in a reference."""
    classes = _settings_classes()
    assert len(classes) >= 7
    documented = {cls for e in generate_settings._classes().values() for _, cls, _ in e}
    for cls in classes:
        assert issubclass(cls, PheTraceSettings), cls
        if cls is not PheTraceSettings:
            assert cls in documented, f"{cls.__name__} is in no SETTINGS.md"


def test_every_role_settings_module_and_settings_class_is_on_the_base() -> None:
    """A role's ``settings.py`` (key server, verification, aggregator, gateway) defines its
    settings on PheTraceSettings, and no class named ``…Settings`` stands beside the base
    (a dataclass of settings would read no environment and be in no reference)."""
    _settings_classes()  # imports every module
    roles = sorted(p.parent.name for p in SRC.glob("*/settings.py"))
    assert {"aggregator", "gateway", "server", "verification"} <= set(roles)
    for role in roles:
        module = importlib.import_module(f"phe_trace.{role}.settings")
        own = [
            obj
            for _, obj in inspect.getmembers(module, inspect.isclass)
            if obj.__module__ == module.__name__ and issubclass(obj, PheTraceSettings)
        ]
        assert own, f"phe_trace/{role}/settings.py defines no PheTraceSettings class"
    for module in list(sys.modules.values()):
        name = getattr(module, "__name__", "")
        if not name.startswith("phe_trace"):
            continue
        for cls_name, obj in inspect.getmembers(module, inspect.isclass):
            if obj.__module__ == name and cls_name.endswith("Settings"):
                assert issubclass(obj, PheTraceSettings), f"{name}.{cls_name}"


def _reads_environment(tree: ast.AST) -> list[int]:
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv"):
            if isinstance(node.value, ast.Name) and node.value.id == "os":
                ctx = getattr(node, "ctx", None)
                lines.append(node.lineno) if isinstance(ctx, ast.Load) else None
    return lines


@pytest.mark.parametrize("path", sorted(SRC.rglob("*.py")), ids=lambda p: str(p.relative_to(SRC)))
def test_no_module_reads_the_environment_outside_the_settings(path: Path) -> None:
    """Settings come from the settings classes; only the modules listed read os.environ
    (the command line may still write it for the processes it starts)."""
    relative = path.relative_to(SRC).as_posix()
    if relative in ENVIRONMENT_READERS or relative.endswith("/settings.py"):
        return
    tree = ast.parse(path.read_text(encoding="utf-8"))
    writes = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Subscript):
                    writes.add(target.value.lineno)
    reads = [line for line in _reads_environment(tree) if line not in writes]
    assert not reads, f"{relative} reads os.environ on lines {reads}"
