"""The mutants of ``protocol_spec/mutants/`` stay usable: ``make audit`` runs them, this checks
them cheaply on every ``make test`` (no mutant is applied, no test is run here).

A mutant whose ``old`` text no longer occurs exactly once in its source file would be
refused by the audit; here it fails at once, naming the mutant, so a change to the code
comes with the matching change to its mutant.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _load(name: str) -> ModuleType:
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "protocol_spec" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


audit = _load("audit")
checker = _load("check_traceability")


def _defined() -> list[str]:
    return checker.defined_requirements((ROOT / "protocol_spec" / "SPEC.md").read_text())


def test_mutant_files_parse_and_name_known_requirements() -> None:
    """Every mutant file parses; every mutant names a requirement SPEC.md defines, in the
    file of its section, with a description."""
    mutants = audit.load_mutants()
    defined = set(_defined())
    assert mutants
    unknown = sorted({m.requirement for m in mutants} - defined)
    assert unknown == [], f"mutants of requirements SPEC.md does not define: {unknown}"
    for m in mutants:
        assert Path(m.source).stem.upper() == m.section, m.name
        assert m.description.strip(), m.name
    assert len({m.name for m in mutants}) == len(mutants)


def test_at_least_sixty_requirements_across_every_section() -> None:
    """At least 60 distinct MUST requirements have a mutant, in every audited section."""
    mutants = audit.load_mutants()
    assert len({m.requirement for m in mutants}) >= 60
    sections = {m.section for m in mutants}
    missing = [s for s in audit.SECTIONS if s not in sections]
    assert missing == [], f"sections without a mutant: {missing}"
    for section in audit.SECTIONS:
        assert len({m.requirement for m in mutants if m.section == section}) >= 3, section


def test_every_mutant_applies_to_the_current_source() -> None:
    """Each mutant's ``old`` text occurs exactly once in its file under ``src/``."""
    stale = audit.problems(audit.load_mutants())
    assert stale == {}, "\n".join(f"{name}: {why}" for name, why in sorted(stale.items()))


def test_every_mutant_requirement_has_citing_tests() -> None:
    """The audit can only run a mutant whose requirement some test function's docstring cites."""
    prefixes = {rid.split("-")[0] for rid in _defined()}
    cited = checker.citing_tests(prefixes)
    uncited = sorted({m.requirement for m in audit.load_mutants()} - set(cited))
    assert uncited == []


def test_stale_and_malformed_mutants_are_refused(tmp_path: Path) -> None:
    """The loader refuses a missing field, an unknown field, old equal to new and a mutant
    filed under another section; ``problems`` names an ``old`` found twice or not at all."""
    directory = tmp_path / "protocol_spec" / "mutants"
    directory.mkdir(parents=True)
    entry = (
        '[[mutant]]\nrequirement = "KEY-1"\nfile = "src/x.py"\nold = "a = 1"\n'
        'new = "a = 2"\ndescription = "d"\n'
    )
    for bad in (
        entry.replace('description = "d"\n', ""),
        entry + 'extra = "x"\n',
        entry.replace('new = "a = 2"', 'new = "a = 1"'),
        entry.replace("KEY-1", "PUB-1"),
        "[[mutant]\n",
    ):
        (directory / "key.toml").write_text(bad)
        with pytest.raises(audit.MutantFileError):
            audit.load_mutants(directory)
    (directory / "key.toml").write_text(entry + "\n" + entry.replace("a = 1", "b = 1"))
    mutants = audit.load_mutants(directory)
    assert [m.name for m in mutants] == ["KEY-1#1", "KEY-1#2"]
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "x.py").write_text("a = 1\nc = 3\na = 1\n")
    found = audit.problems(mutants, tmp_path)
    assert found["KEY-1#1"] == "old text found 2 times in src/x.py (stale)"
    assert found["KEY-1#2"] == "old text found 0 times in src/x.py (stale)"
    (tmp_path / "src" / "x.py").write_text("a = 1\nb = 1\n")
    assert audit.problems(mutants, tmp_path) == {}
