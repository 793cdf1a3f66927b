"""The traceability checker finds requirements without tests (used by make test)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent


def _checker() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "check_traceability", ROOT / "protocol_spec" / "check_traceability.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["check_traceability"] = module
    spec.loader.exec_module(module)
    return module


def test_requirement_ids_are_parsed_from_list_items_only() -> None:
    checker = _checker()
    text = "- **ZZA-1** a rule\n  * **ZZB-12** another\nprose mentions **ZZA-9** only\n"
    assert checker.defined_requirements(text) == ["ZZA-1", "ZZB-12"]


def test_an_id_defined_twice_is_found() -> None:
    """Two rules under one id would let a test citing it prove only one of them."""
    checker = _checker()
    text = "- **ZZA-1** a rule\n- **ZZA-2** b\n- **ZZA-1** another rule\n"
    assert checker.duplicate_requirements(text) == ["ZZA-1"]
    spec = (ROOT / "protocol_spec" / "SPEC.md").read_text(encoding="utf-8")
    assert checker.duplicate_requirements(spec) == []


def test_the_spec_defines_the_foundation_requirements() -> None:
    checker = _checker()
    defined = checker.defined_requirements((ROOT / "protocol_spec" / "SPEC.md").read_text())
    for rid in ("TIME-1", "KEY-5", "META-2", "ADV-5", "SEAL-3", "HMAC-3"):
        assert rid in defined
    cited = checker.cited_requirements({"KEY"})
    assert "tests/crypto/test_gaen_vector.py" in cited["KEY-4"]


def test_only_a_test_functions_own_docstring_cites(tmp_path: Path) -> None:
    """A requirement cited by a module docstring, a comment, a helper or a string is untested."""
    checker = _checker()
    tests = tmp_path / "tests"
    tests.mkdir()
    (tests / "test_x.py").write_text(
        '''"""Module docstring: ZZA-1."""
# a comment: ZZA-2


def helper() -> None:
    """ZZA-3."""


def test_one() -> None:
    """ZZA-4: the one that counts."""
    assert "ZZA-5"


class TestGroup:
    def test_method(self) -> None:
        """(SPEC ZZA-6)"""


async def test_async() -> None:
    """ZZA-7."""
'''
    )
    (tests / "helpers.py").write_text('def test_not_collected() -> None:\n    """ZZA-8."""\n')
    cited = checker.citing_tests({"ZZA"}, tests)
    assert cited == {
        "ZZA-4": {"tests/test_x.py::test_one"},
        "ZZA-6": {"tests/test_x.py::TestGroup::test_method"},
        "ZZA-7": {"tests/test_x.py::test_async"},
    }
