"""Check that every requirement of SPEC.md is exercised by a test, and no test cites an unknown id.

A requirement is a bold id at the start of a list item in ``SPEC.md`` (``- **KEY-4** …``).
A test cites an id only in its own docstring: the docstring of a ``test_*`` function or of a
``test_*`` method of a ``Test*`` class under ``tests/`` (``(SPEC KEY-4)`` or a leading
``KEY-4:``). An id written in a module docstring, a comment or a helper names no test and
does not count. Ids are ``PREFIX-N`` with an upper-case prefix from the spec's own list.

``citing_tests`` maps each id to the pytest node ids of the tests citing it.

Usage: ``python protocol_spec/check_traceability.py [--json]``; exits 1 when a requirement
has no test or a test cites an id the spec does not define.
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "protocol_spec" / "SPEC.md"
TESTS = ROOT / "tests"
_DEFINED = re.compile(r"^\s*[-*]\s+\*\*([A-Z][A-Z0-9]*-\d+)\*\*", re.MULTILINE)
_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)


def defined_requirements(spec_text: str) -> list[str]:
    """The requirement ids defined in the spec, in order of appearance."""
    return list(dict.fromkeys(_DEFINED.findall(spec_text)))


def duplicate_requirements(spec_text: str) -> list[str]:
    """Ids defined more than once (two rules under one id: a test citing it proves one)."""
    seen: set[str] = set()
    twice: list[str] = []
    for rid in _DEFINED.findall(spec_text):
        if rid in seen and rid not in twice:
            twice.append(rid)
        seen.add(rid)
    return twice


def test_docstrings(source: str) -> Iterator[tuple[str, str]]:
    """(``name`` or ``Class::name``, docstring) of every test function and test method."""
    tree = ast.parse(source)
    yield from _tests_in(tree.body, "")


def _tests_in(body: Iterable[ast.stmt], prefix: str) -> Iterator[tuple[str, str]]:
    for node in body:
        if isinstance(node, _FUNCTIONS) and node.name.startswith("test"):
            yield prefix + node.name, ast.get_docstring(node) or ""
        elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            yield from _tests_in(node.body, f"{prefix}{node.name}::")


def citing_tests(prefixes: set[str], tests: Path = TESTS) -> dict[str, set[str]]:
    """Map each cited id (with a known prefix) to the node ids of the tests citing it."""
    pattern = re.compile(r"\b(" + "|".join(sorted(prefixes)) + r")-(\d+)\b")
    cited: dict[str, set[str]] = {}
    for path in sorted(tests.rglob("test_*.py")):
        relative = path.relative_to(tests.parent).as_posix()
        for name, doc in test_docstrings(path.read_text(encoding="utf-8")):
            for prefix, number in pattern.findall(doc):
                cited.setdefault(f"{prefix}-{number}", set()).add(f"{relative}::{name}")
    return cited


def cited_requirements(prefixes: set[str], tests: Path = TESTS) -> dict[str, set[str]]:
    """Map each cited id (with a known prefix) to the test files whose tests cite it."""
    return {
        rid: {node.split("::", 1)[0] for node in nodes}
        for rid, nodes in citing_tests(prefixes, tests).items()
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true", help="print the full trace as JSON")
    args = parser.parse_args(argv)
    spec_text = SPEC.read_text(encoding="utf-8")
    defined = defined_requirements(spec_text)
    duplicates = duplicate_requirements(spec_text)
    prefixes = {rid.split("-")[0] for rid in defined}
    cited = citing_tests(prefixes) if prefixes else {}
    untested = [rid for rid in defined if rid not in cited]
    unknown = sorted(set(cited) - set(defined))
    if args.json:
        trace = {rid: sorted(cited.get(rid, ())) for rid in defined}
        print(json.dumps({"requirements": trace, "unknown": unknown}, indent=1))
    for rid in untested:
        print(
            f"untested requirement: {rid} (no test function's docstring cites it)", file=sys.stderr
        )
    for rid in duplicates:
        print(f"requirement id {rid} is defined more than once", file=sys.stderr)
    for rid in unknown:
        tests = ", ".join(sorted(cited[rid]))
        print(f"unknown requirement id {rid} cited by {tests}", file=sys.stderr)
    print(
        f"traceability: {len(defined)} requirements, {len(defined) - len(untested)} tested, "
        f"{len(unknown)} unknown ids cited"
    )
    return 1 if untested or unknown or duplicates else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
