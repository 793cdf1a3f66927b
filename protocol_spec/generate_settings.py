"""Generate the settings references: ``server/SETTINGS.md`` and ``device/SETTINGS.md``.

Every variable of every role's settings class (all extend
:class:`phe_trace.settings.PheTraceSettings`), with its type, default and meaning. The
meaning is the field's ``description`` or, where the class documents its fields with
``#:`` comments above them, those comments. ``tests/test_settings_reference.py`` fails
when the files differ from what this script writes, or a variable has no meaning.

Usage: ``python protocol_spec/generate_settings.py [--check]``.
"""

from __future__ import annotations

import argparse
import ast
import inspect
import sys
import textwrap
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from pydantic_core import PydanticUndefined

ROOT = Path(__file__).resolve().parent.parent


def _classes() -> dict[str, list[tuple[str, Any, str]]]:
    """File -> [(title, settings class, one-paragraph introduction)]."""
    from phe_trace.agent.config import AgentConfig
    from phe_trace.aggregator.settings import AggregatorSettings
    from phe_trace.gateway.settings import GatewaySettings
    from phe_trace.server.federation import FederationSettings
    from phe_trace.server.settings import ServerSettings
    from phe_trace.settings import CommonSettings
    from phe_trace.verification.settings import VerificationSettings

    return {
        "server/SETTINGS.md": [
            ("Every role", CommonSettings, "Read by every role of a process."),
            ("Key server", ServerSettings, "`phe-trace server run` and `server export`."),
            (
                "Verification service and portal",
                VerificationSettings,
                "The verification service inside `phe-trace server run` and `server admin`.",
            ),
            (
                "Federation",
                FederationSettings,
                "`phe-trace server federation …`: this server as a member of a gateway.",
            ),
            ("Aggregator", AggregatorSettings, "`phe-trace aggregator run` and `collect`."),
            (
                "Federation gateway",
                GatewaySettings,
                "`phe-trace gateway run`, `gateway batch` and `gateway member add`; the "
                "options of `gateway run` override these.",
            ),
        ],
        "device/SETTINGS.md": [
            (
                "Agent",
                AgentConfig,
                "Every `phe-trace agent` command, from the environment or the `--config` "
                "file (`~/.config/phe-trace/agent.env`, else `/etc/phe-trace/agent.env`).",
            ),
        ],
    }


def _comments(cls: type) -> dict[str, str]:
    """``#:`` comments directly above each field of ``cls`` (its own source)."""
    try:
        source = inspect.getsource(cls)
    except (OSError, TypeError):
        return {}
    source = textwrap.dedent(source)
    lines = source.splitlines()
    found: dict[str, str] = {}
    (node,) = ast.parse(source).body
    assert isinstance(node, ast.ClassDef)
    for item in node.body:
        if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
            above: list[str] = []
            index = item.lineno - 2
            while index >= 0 and lines[index].strip().startswith("#:"):
                above.insert(0, lines[index].strip()[2:].strip())
                index -= 1
            if above:
                found[item.target.id] = " ".join(above)
    return found


def _default(field: Any) -> str:
    if field.default is PydanticUndefined:
        return "required" if field.default_factory is None else "(computed)"
    value = field.default
    if value is None:
        return "unset"
    if isinstance(value, SecretStr):
        return "(secret)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Path):
        return f"`{value}`"
    if isinstance(value, str):
        return f"`{value}`" if value else '`""`'
    return f"`{value!r}`"


def _type(field: Any) -> str:
    text = getattr(field.annotation, "__name__", None) or str(field.annotation)
    return text.replace("typing.", "").replace("pathlib.", "").replace("pydantic.types.", "")


def rows(cls: type) -> list[tuple[str, str, str, str]]:
    """(variable, type, default, meaning) of every field of ``cls``."""
    prefix = str(cls.model_config.get("env_prefix", ""))  # type: ignore[attr-defined]
    comments: dict[str, str] = {}
    for base in reversed(cls.__mro__):
        if hasattr(base, "model_fields"):
            comments.update(_comments(base))
    out = []
    for name, field in cls.model_fields.items():  # type: ignore[attr-defined]
        meaning = field.description or comments.get(name, "")
        out.append((f"{prefix}{name.upper()}", _type(field), _default(field), meaning))
    return out


def render(path: str) -> str:
    """The Markdown of ``path``."""
    parts = [
        f"# Settings reference ({'device' if path.startswith('device') else 'server'})",
        "",
        "Generated by `python protocol_spec/generate_settings.py` from the settings classes;",
        "do not edit by hand (`tests/test_settings_reference.py` compares). Every variable",
        "is an environment variable (or a line `NAME=value` of an env file where the role",
        "reads one). A value that does not validate stops the command with one line naming",
        "the variable.",
    ]
    for title, cls, intro in _classes()[path]:
        parts += ["", f"## {title}", "", intro, "", "| variable | type | default | meaning |"]
        parts.append("|---|---|---|---|")
        for variable, kind, default, meaning in rows(cls):
            cell = meaning.replace("``", "`").replace("|", "\\|")
            parts.append(
                f"| `{variable}` | {kind.replace('|', chr(92) + '|')} | {default} | {cell} |"
            )
    return "\n".join(parts) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="Exit 1 if a file is stale.")
    args = parser.parse_args(argv)
    stale = []
    for path in _classes():
        text = render(path)
        target = ROOT / path
        if args.check:
            if not target.exists() or target.read_text(encoding="utf-8") != text:
                stale.append(path)
        else:
            target.write_text(text, encoding="utf-8")
    if stale:
        print(
            f"stale: {', '.join(stale)} (run protocol_spec/generate_settings.py)", file=sys.stderr
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
