"""Every repository file a document or a docstring names exists.

Scanned: every Markdown file of the repository and every docstring (module, class,
function) of its Python files. A name counts as a repository path when it has a directory
whose first part is a top-level entry of the repository (``src/…``, ``tests/…``,
``protocol_spec/…``, ``device/…``) or a part of ``phe_trace`` (``agent/radio/bumble.py``,
``conformance/*``), or when it is a bare Markdown or Python file name (``SPEC.md``,
``store.py``). A path resolves against the repository root, the naming file's directory,
``src/`` and ``src/phe_trace/``; a bare name must be the name of some file of the
repository; a ``*`` must match at least one. A URL, an absolute path (``/etc/…``) and
names of other kinds (``index.txt`` inside an export store) are not repository paths.
"""

from __future__ import annotations

import ast
import fnmatch
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: Hidden, virtual-env and cache directories, and the outputs tests and the demo write
#: (ignored by git): a screenshot a test names need not exist before that test ran.
_SKIP_DIRS = {
    ".git",
    ".venv",
    "node_modules",
    "__pycache__",
    "build",
    "dist",
    "test-artifacts",
    "demo-report",
}
_EXTENSIONS = "md|py|toml|conf|proto|sql|service|example|cfg|ini|ya?ml|json|txt|csv|sh"
_PATH = re.compile(
    rf"(?<![\w./:-])((?:[\w.-]+/)*[\w*.-]+\.(?:{_EXTENSIONS})|(?:[\w.-]+/)+[\w*.-]*)(?![\w/-])"
)


def repository_files(root: Path = ROOT) -> list[Path]:
    """Every file of the working tree outside hidden, virtual-env and cache directories."""
    return sorted(
        p
        for p in root.rglob("*")
        if p.is_file()
        and not any(
            part in _SKIP_DIRS or part.startswith(".") for part in p.relative_to(root).parts[:-1]
        )
        and not any(part.endswith(".egg-info") for part in p.relative_to(root).parts)
    )


def named_texts(files: list[Path]) -> Iterator[tuple[Path, str]]:
    """(file, text) of every Markdown file and every docstring of every Python file."""
    for path in files:
        if path.suffix == ".md":
            yield path, path.read_text(encoding="utf-8")
        elif path.suffix == ".py":
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if isinstance(
                    node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef
                ):
                    doc = ast.get_docstring(node)
                    if doc:
                        yield path, doc


def named_paths(text: str, tops: set[str]) -> Iterator[str]:
    """The repository paths ``text`` names (see the module docstring for the rule)."""
    for line in text.splitlines():
        for match in _PATH.finditer(line):
            name = match.group(1).rstrip(".")
            if "://" in line[: match.start() + 1].rsplit(" ", 1)[-1]:
                continue  # part of a URL
            if "/" in name:
                if name.split("/", 1)[0] in tops:
                    yield name
            elif name.endswith((".md", ".py")):
                yield name


def missing_paths(root: Path = ROOT) -> list[str]:
    """``file: name`` for every named repository path that does not exist."""
    files = repository_files(root)
    basenames = {p.name for p in files}
    packages = {p.name for p in (root / "src" / "phe_trace").iterdir() if p.is_dir()}
    tops = {p.relative_to(root).parts[0] for p in files} | packages | {"phe_trace"}
    missing = set()
    for path, text in named_texts(files):
        for name in named_paths(text, tops):
            if not _exists(root, path, name, basenames):
                missing.add(f"{path.relative_to(root)}: {name}")
    return sorted(missing)


def _exists(root: Path, naming: Path, name: str, basenames: set[str]) -> bool:
    if "/" not in name:
        return any(fnmatch.fnmatchcase(base, name) for base in basenames)
    bases = (root, naming.parent, root / "src", root / "src" / "phe_trace")
    if "*" in name:
        return any(any(base.glob(name)) for base in bases)
    return any((base / name).exists() for base in bases)


def test_every_named_file_exists() -> None:
    """Documents and docstrings name only files the repository holds."""
    assert missing_paths() == []


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("see DESIGN.md", False),
        ("(see BLE_AGENT.md §3)", False),
        ("``agent/radio/bumble.py`` and `conformance/*`", True),
        ("`agent/radio/gone.py`", False),
        ("`src/phe_trace/nothing/`", False),
        ("`protocol_spec/SPEC.md`, https://example.org/DESIGN.md, /etc/x.conf", True),
    ],
)
def test_a_missing_name_is_found(tmp_path: Path, text: str, found: bool) -> None:
    """The check itself: made-up names in a document are reported, real ones are not."""
    (tmp_path / "src" / "phe_trace" / "agent" / "radio").mkdir(parents=True)
    (tmp_path / "src" / "phe_trace" / "agent" / "radio" / "bumble.py").write_text('"""x"""\n')
    (tmp_path / "src" / "phe_trace" / "conformance").mkdir()
    (tmp_path / "src" / "phe_trace" / "conformance" / "runner.py").write_text('"""x"""\n')
    (tmp_path / "protocol_spec").mkdir()
    (tmp_path / "protocol_spec" / "SPEC.md").write_text("spec\n")
    (tmp_path / "README.md").write_text(text + "\n")
    assert (missing_paths(tmp_path) == []) is found
