"""Check that every requirement of SPEC.md is exercised by a test, and no test cites an unknown id.

A requirement is a bold id at the start of a list item in ``SPEC.md`` (``- **KEY-4** …``).
A test cites an id by writing it anywhere in a file under ``tests/`` (by convention in the
test's docstring: ``(SPEC KEY-4)`` or a leading ``KEY-4:``). Ids are ``PREFIX-N`` with an
upper-case prefix from the spec's own list.

Usage: ``python protocol_spec/check_traceability.py [--json]``; exits 1 when a requirement
has no test or a test cites an id the spec does not define.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "protocol_spec" / "SPEC.md"
TESTS = ROOT / "tests"
_DEFINED = re.compile(r"^\s*[-*]\s+\*\*([A-Z][A-Z0-9]*-\d+)\*\*", re.MULTILINE)


def defined_requirements(spec_text: str) -> list[str]:
    """The requirement ids defined in the spec, in order of appearance."""
    return list(dict.fromkeys(_DEFINED.findall(spec_text)))


def cited_requirements(prefixes: set[str]) -> dict[str, set[str]]:
    """Map each cited id (with a known prefix) to the test files citing it."""
    pattern = re.compile(r"\b(" + "|".join(sorted(prefixes)) + r")-(\d+)\b")
    cited: dict[str, set[str]] = {}
    for path in sorted(TESTS.rglob("*.py")):
        for prefix, number in pattern.findall(path.read_text(encoding="utf-8")):
            cited.setdefault(f"{prefix}-{number}", set()).add(str(path.relative_to(ROOT)))
    return cited


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true", help="print the full trace as JSON")
    args = parser.parse_args(argv)
    defined = defined_requirements(SPEC.read_text(encoding="utf-8"))
    prefixes = {rid.split("-")[0] for rid in defined}
    cited = cited_requirements(prefixes) if prefixes else {}
    untested = [rid for rid in defined if rid not in cited]
    unknown = sorted(set(cited) - set(defined))
    if args.json:
        trace = {rid: sorted(cited.get(rid, ())) for rid in defined}
        print(json.dumps({"requirements": trace, "unknown": unknown}, indent=1))
    for rid in untested:
        print(f"untested requirement: {rid}", file=sys.stderr)
    for rid in unknown:
        files = ", ".join(sorted(cited[rid]))
        print(f"unknown requirement id {rid} cited in {files}", file=sys.stderr)
    print(
        f"traceability: {len(defined)} requirements, {len(defined) - len(untested)} tested, "
        f"{len(unknown)} unknown ids cited"
    )
    return 1 if untested or unknown else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
