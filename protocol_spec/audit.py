"""Mutation-proven traceability: every mutant of ``protocol_spec/mutants/`` is killed by the
tests that cite its requirement.

A *mutant* is a small patch that breaks one MUST requirement of ``SPEC.md``: in one file under
``src/``, one exact ``old`` text (found exactly once) is replaced by ``new``. The mutants live in
one TOML file per spec section (``protocol_spec/mutants/key.toml`` holds the KEY mutants) as
``[[mutant]]`` tables with ``requirement``, ``file``, ``old``, ``new`` and ``description``.

For each mutant the audit copies ``src/`` into a scratch directory, applies the patch there and
runs, with the scratch ``src`` first on ``PYTHONPATH``, only the tests whose own docstring cites
the requirement (``check_traceability.citing_tests``; the tests themselves are read from the
repository). The mutant is *killed* when one of those tests fails, or when they run past the
time limit; it *survives* when they all pass. A kill counts only if the test that failed passes
on the unchanged tree: after the mutants, every killing test runs once more without any mutant
(the *baseline*); one that fails there too proved nothing, and its mutant counts as unproven.

The run fails (exit 1), naming the mutant, when a mutant survives or is unproven, when its
``old`` text is not found exactly once (a stale mutant), or when a requirement has no citing
test or is not in the spec. Exit 2 is a mutant file that does not parse.

Usage: ``python protocol_spec/audit.py [--jobs N] [--timeout S] [--json PATH] [--only ID ...]``
(``make audit``). Prints a per-mutant line as each finishes, then killed/total per section.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MUTANTS = ROOT / "protocol_spec" / "mutants"
SECTIONS = ("KEY", "MATCH", "WIN", "RISK", "PUB", "EXP", "VER", "AGENT", "AGG")
_FIELDS = ("requirement", "file", "old", "new", "description")
#: Process groups of the test runs in flight (killed, with their servers, on an interrupt).
_RUNNING: set[int] = set()
PYTEST_ARGS = ("-p", "no:cacheprovider", "-x", "-q", "--no-header", "-o", "addopts=")


def _traceability() -> ModuleType:
    """``check_traceability`` from this directory (the one parser of test citations)."""
    name = "check_traceability"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f"{name}.py"))
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


class MutantFileError(ValueError):
    """A mutant file that does not parse or lacks a field."""


@dataclass(frozen=True)
class Mutant:
    """One patch that breaks one requirement."""

    name: str  # "KEY-2#1": the requirement and the mutant's number among that requirement's
    requirement: str
    file: str  # relative to the repository root, under src/
    old: str
    new: str
    description: str
    source: str  # the mutant file, relative to the repository root

    @property
    def section(self) -> str:
        return self.requirement.split("-", 1)[0]


def load_mutants(directory: Path = MUTANTS) -> list[Mutant]:
    """Every mutant of every ``*.toml`` file of ``directory``, in file order."""
    mutants: list[Mutant] = []
    seen: dict[str, int] = {}
    for path in sorted(directory.glob("*.toml")):
        relative = path.relative_to(directory.parent.parent).as_posix()
        try:
            document = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise MutantFileError(f"{relative}: {exc}") from None
        entries = document.get("mutant")
        if not isinstance(entries, list) or not entries:
            raise MutantFileError(f"{relative}: no [[mutant]] tables")
        for index, entry in enumerate(entries, 1):
            missing = [key for key in _FIELDS if not isinstance(entry.get(key), str)]
            extra = sorted(set(entry) - set(_FIELDS))
            if missing or extra:
                raise MutantFileError(
                    f"{relative}: mutant {index}: missing or non-string {missing}, unknown {extra}"
                )
            if entry["old"] == entry["new"] or not entry["old"]:
                raise MutantFileError(f"{relative}: mutant {index}: old is empty or equals new")
            rid = entry["requirement"]
            if rid.split("-", 1)[0] != path.stem.upper():
                raise MutantFileError(
                    f"{relative}: mutant {index}: {rid} belongs in {rid.split('-')[0].lower()}.toml"
                )
            seen[rid] = seen.get(rid, 0) + 1
            mutants.append(
                Mutant(
                    name=f"{rid}#{seen[rid]}",
                    requirement=rid,
                    file=entry["file"],
                    old=entry["old"],
                    new=entry["new"],
                    description=entry["description"],
                    source=relative,
                )
            )
    return mutants


def problems(mutants: Iterable[Mutant], root: Path = ROOT) -> dict[str, str]:
    """Why each mutant that cannot be applied to the tree at ``root`` is unusable."""
    found: dict[str, str] = {}
    for mutant in mutants:
        path = root / mutant.file
        if not mutant.file.startswith("src/") or ".." in Path(mutant.file).parts:
            found[mutant.name] = f"file {mutant.file} is not under src/"
        elif not path.is_file():
            found[mutant.name] = f"file {mutant.file} does not exist"
        else:
            count = path.read_text(encoding="utf-8").count(mutant.old)
            if count != 1:
                found[mutant.name] = f"old text found {count} times in {mutant.file} (stale)"
    return found


@dataclass
class Outcome:
    """What running a mutant's tests gave."""

    name: str
    status: str  # killed, survived, timeout, error; unproven (after the baseline)
    seconds: float
    tests: int
    detail: str = ""
    failing: list[str] = field(default_factory=list)


#: Plugins that load heavy modules at start-up; left out of a run whose test files (and their
#: conftest files) never name them.
_OPTIONAL_PLUGINS = ("schemathesis", "anyio")


def _unused_plugins(nodes: Sequence[str]) -> list[str]:
    files = {ROOT / node.split("::", 1)[0] for node in nodes}
    for path in list(files):
        files.update(d / "conftest.py" for d in path.parents if d.is_relative_to(ROOT / "tests"))
    text = "".join(f.read_text(encoding="utf-8") for f in files if f.is_file())
    return [arg for name in _OPTIONAL_PLUGINS if name not in text for arg in ("-p", f"no:{name}")]


def _pytest(nodes: Sequence[str], src: Path, timeout: float, stop_first: bool) -> Outcome:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(src), *filter(None, [env.get("PYTHONPATH")])])
    args = [a for a in PYTEST_ARGS if stop_first or a != "-x"]
    command = [sys.executable, "-m", "pytest", *args, *_unused_plugins(nodes), "-rfE", *nodes]
    started = time.monotonic()
    proc = subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    _RUNNING.add(proc.pid)
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return Outcome("", "timeout", time.monotonic() - started, len(nodes))
    finally:
        _RUNNING.discard(proc.pid)
    seconds = time.monotonic() - started
    failing = list(
        dict.fromkeys(
            line.split(" ", 1)[1].split(" - ", 1)[0].strip()
            for line in output.splitlines()
            if line.startswith(("FAILED ", "ERROR ")) and "::" in line
        )
    )
    tail = "\n".join(output.strip().splitlines()[-15:])
    if proc.returncode == 0:
        return Outcome("", "survived", seconds, len(nodes))
    if proc.returncode == 1:
        return Outcome("", "killed", seconds, len(nodes), tail, failing)
    return Outcome("", "error", seconds, len(nodes), f"pytest exit {proc.returncode}:\n{tail}")


def run_mutant(mutant: Mutant, nodes: Sequence[str], timeout: float) -> Outcome:
    """Apply ``mutant`` to a scratch copy of ``src/`` and run ``nodes`` against it."""
    with tempfile.TemporaryDirectory(prefix="phe-trace-mutant-") as scratch:
        src = Path(scratch) / "src"
        shutil.copytree(ROOT / "src", src, ignore=shutil.ignore_patterns("*.egg-info"))
        target = Path(scratch) / mutant.file
        text = target.read_text(encoding="utf-8")
        if text.count(mutant.old) != 1:
            return Outcome(mutant.name, "error", 0.0, 0, "old text not found exactly once")
        target.write_text(text.replace(mutant.old, mutant.new), encoding="utf-8")
        outcome = _pytest(nodes, src, timeout, stop_first=True)
    outcome.name = mutant.name
    return outcome


def run_baseline(nodes: Sequence[str], timeout: float) -> Outcome:
    """Run ``nodes`` on an unchanged scratch copy (``survived``: they all passed)."""
    with tempfile.TemporaryDirectory(prefix="phe-trace-baseline-") as scratch:
        src = Path(scratch) / "src"
        shutil.copytree(ROOT / "src", src, ignore=shutil.ignore_patterns("*.egg-info"))
        outcome = _pytest(nodes, src, timeout, stop_first=False)
    outcome.name = "baseline"
    return outcome


def _killer(outcome: Outcome) -> str | None:
    """The test function (``file::name``, without parameters) whose failure killed a mutant."""
    return outcome.failing[0].split("[", 1)[0] if outcome.failing else None


def _unchanged_failures(
    nodes: Sequence[str], pool: ThreadPoolExecutor, jobs: int, timeout: float
) -> set[str]:
    """The test functions of ``nodes`` that fail on the unchanged tree (run in ``jobs`` parts;
    a test that fails only beside the others and passes alone is reported as flaky)."""
    if not nodes:
        return set()
    size = -(-len(nodes) // max(1, jobs))
    parts = [
        pool.submit(run_baseline, nodes[i : i + size], timeout) for i in range(0, len(nodes), size)
    ]
    results = [part.result() for part in parts]
    broken = [r for r in results if r.status != "survived" and not r.failing]
    if broken:
        raise RuntimeError(broken[0].detail or broken[0].status)
    failed = [node for r in results for node in r.failing]
    if failed:
        again = run_baseline(failed, timeout).failing
        for node in sorted(set(failed) - set(again)):
            print(f"audit: warning: flaky: {node} failed once unchanged", file=sys.stderr)
        failed = again
    return {node.split("[", 1)[0] for node in failed}


def _baseline(
    mutants: Sequence[Mutant],
    outcomes: dict[str, Outcome],
    citing: dict[str, set[str]],
    pool: ThreadPoolExecutor,
    jobs: int,
    timeout: float,
) -> list[str]:
    """Prove each kill: rerun every killing test on the unchanged tree. A mutant killed by a
    test that fails there too is run again without the tests that fail unchanged; if no
    other citing test kills it, it is ``unproven`` (or ``survived``). Returns failure lines."""
    passing: set[str] = set()  # killing tests that pass unchanged
    failing: set[str] = set()  # citing tests that fail unchanged
    pending = list(mutants)
    retried: set[str] = set()
    for _ in range(3):
        killers = {m.name: k for m in pending if (k := _killer(outcomes[m.name])) is not None}
        nodes = sorted(set(killers.values()) - passing - failing)
        try:
            bad = _unchanged_failures(nodes, pool, jobs, timeout)
        except RuntimeError as exc:
            return [f"baseline: the killing tests could not run unchanged: {exc}"]
        failing |= bad
        passing |= set(nodes) - bad
        print(
            f"audit: baseline: {len(nodes)} killing tests rerun unchanged, {len(bad)} failed",
            file=sys.stderr,
        )
        pending = [m for m in pending if killers.get(m.name) in failing]
        if not pending:
            break
        retried |= {m.name for m in pending}
        reruns = {
            m.name: pool.submit(run_mutant, m, sorted(citing[m.requirement] - failing), timeout)
            for m in pending
            if citing[m.requirement] - failing
        }
        for m in pending:
            outcomes[m.name] = (
                reruns[m.name].result() if m.name in reruns else Outcome(m.name, "unproven", 0.0, 0)
            )
            print(
                f"{outcomes[m.name].status:8} {m.name:10} again without {len(failing)} test(s) "
                f"that fail unchanged {', '.join(outcomes[m.name].failing[:1])}",
                file=sys.stderr,
            )
    lines = []
    for m in mutants:
        outcome = outcomes[m.name]
        if outcome.status == "killed" and _killer(outcome) in failing:
            outcome.status = "unproven"
        if outcome.status == "unproven":
            lines.append(
                f"{m.name} unproven: every citing test that fails with it fails without it"
            )
        elif outcome.status == "survived" and m.name in retried:
            lines.append(f"{m.name} survived once the tests failing unchanged were left out")
        elif outcome.status == "error" and m.name in retried:
            lines.append(f"{m.name}: tests could not run: {outcome.detail}")
    if failing:
        print(f"audit: tests failing unchanged: {', '.join(sorted(failing))}", file=sys.stderr)
    return lines


def _section_table(
    mutants: Sequence[Mutant], outcomes: dict[str, Outcome]
) -> dict[str, dict[str, Any]]:
    table: dict[str, dict[str, Any]] = {}
    for mutant in mutants:
        row = table.setdefault(
            mutant.section, {"mutants": 0, "killed": 0, "requirements": set(), "survived": []}
        )
        row["mutants"] += 1
        row["requirements"].add(mutant.requirement)
        outcome = outcomes.get(mutant.name)
        if outcome and outcome.status in ("killed", "timeout"):
            row["killed"] += 1
        else:
            row["survived"].append(mutant.name)
    return {
        section: {**row, "requirements": len(row["requirements"])}
        for section, row in sorted(table.items(), key=lambda kv: _order(kv[0]))
    }


def _order(section: str) -> tuple[int, str]:
    return (SECTIONS.index(section) if section in SECTIONS else len(SECTIONS), section)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=2, help="mutants run side by side (2)")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per mutant (300)")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    parser.add_argument("--only", nargs="+", metavar="ID", help="only these requirements/mutants")
    parser.add_argument(
        "--no-baseline", action="store_true", help="do not rerun the killing tests unchanged"
    )
    args = parser.parse_args(argv)
    checker = _traceability()
    try:
        mutants = load_mutants()
    except MutantFileError as exc:
        print(f"audit: {exc}", file=sys.stderr)
        return 2
    if args.only:
        mutants = [m for m in mutants if m.requirement in args.only or m.name in args.only]
    defined = checker.defined_requirements(checker.SPEC.read_text(encoding="utf-8"))
    citing = checker.citing_tests({rid.split("-")[0] for rid in defined})
    failures: list[str] = []
    for mutant in mutants:
        if mutant.requirement not in defined:
            failures.append(f"{mutant.name}: {mutant.requirement} is not defined in SPEC.md")
        elif not citing.get(mutant.requirement):
            failures.append(f"{mutant.name}: no test function's docstring cites it")
    failures += [f"{name}: {why}" for name, why in problems(mutants).items()]
    runnable = [m for m in mutants if not any(f.startswith(f"{m.name}:") for f in failures)]
    for line in failures:
        print(f"audit: {line}", file=sys.stderr)

    started = time.monotonic()
    outcomes: dict[str, Outcome] = {}
    # Slowest first keeps both workers busy to the end; the number of tests is the estimate.
    order = sorted(runnable, key=lambda m: -len(citing[m.requirement]))
    pool = ThreadPoolExecutor(max_workers=max(1, args.jobs))
    try:
        futures = {
            pool.submit(run_mutant, m, sorted(citing[m.requirement]), args.timeout): m
            for m in order
        }
        for future in as_completed(futures):
            mutant, outcome = futures[future], future.result()
            outcomes[mutant.name] = outcome
            shown = f" ({', '.join(outcome.failing[:2])})" if outcome.failing else ""
            print(
                f"{outcome.status:8} {mutant.name:10} {outcome.seconds:6.1f}s "
                f"{outcome.tests:3} tests  {mutant.description}{shown}",
                file=sys.stderr,
                flush=True,
            )
            if outcome.status == "survived":
                failures.append(
                    f"{mutant.name} survived: {mutant.description} "
                    f"({mutant.file}; tests: {', '.join(sorted(citing[mutant.requirement]))})"
                )
            elif outcome.status == "error":
                failures.append(f"{mutant.name}: tests could not run: {outcome.detail}")
        if not args.no_baseline:
            failures += _baseline(order, outcomes, citing, pool, args.jobs, args.timeout)
    except KeyboardInterrupt:
        pool.shutdown(wait=False, cancel_futures=True)
        for group in list(_RUNNING):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)
        print("audit: interrupted", file=sys.stderr)
        return 130
    finally:
        pool.shutdown(wait=True)
    elapsed = time.monotonic() - started

    table = _section_table(mutants, outcomes)
    print(f"{'section':8} {'killed':>6} / {'total':<5} {'requirements':>12}")
    for section, row in table.items():
        print(f"{section:8} {row['killed']:>6} / {row['mutants']:<5} {row['requirements']:>12}")
    killed = sum(row["killed"] for row in table.values())
    distinct = len({m.requirement for m in mutants})
    print(
        f"audit: {killed}/{len(mutants)} mutants killed, {distinct} requirements, {elapsed:.0f} s"
    )
    if args.json:
        report = {
            "sections": table,
            "killed": killed,
            "mutants": len(mutants),
            "requirements": distinct,
            "seconds": round(elapsed, 1),
            "results": [
                {
                    "mutant": m.name,
                    "requirement": m.requirement,
                    "file": m.file,
                    "status": outcomes[m.name].status if m.name in outcomes else "not run",
                    "seconds": round(outcomes[m.name].seconds, 1) if m.name in outcomes else 0,
                    "tests": sorted(citing.get(m.requirement, ())),
                }
                for m in mutants
            ],
            "failures": failures,
        }
        args.json.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    for line in failures:
        print(f"audit failed: {line}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
