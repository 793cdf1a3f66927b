"""Files published before a crash but missing from index.txt are listed by the next run
(SPEC PUB-31, PUB-37): once with a failure injected between the batch writes and the
index rewrite, once with a real worker process SIGKILLed at that very point."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from phe_trace.clock import SettableClock
from phe_trace.protocol import export
from phe_trace.server import ServerContext, run_export
from phe_trace.server import exporter as exporter_module

from .conftest import make_settings
from .helpers import NOW
from .test_exporter import HOUR, T, _insert


def _index(ctx: ServerContext) -> list[str]:
    path = ctx.settings.effective_export_dir / "ZZ" / "index.txt"
    return list(export.parse_index(path.read_bytes())) if path.exists() else []


def _zips(ctx: ServerContext) -> list[str]:
    return sorted(f"ZZ/{p.name}" for p in (ctx.settings.effective_export_dir / "ZZ").glob("*.zip"))


def test_injected_crash_before_the_index_rewrite_is_repaired(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PUB-37: the second run at the same time writes nothing but lists every file."""
    ctx = ServerContext.open(make_settings(tmp_path, database_url), clock=SettableClock(NOW))
    try:
        _insert(ctx, 5, T - 5 * HOUR)
        first = run_export(ctx, T)
        assert first.files_written and _index(ctx) == sorted(first.files_written)
        _insert(ctx, 5, T - 2 * HOUR)

        def crash(*_args: object) -> list[str]:
            raise OSError("power cut")

        monkeypatch.setattr(exporter_module, "rewrite_index", crash)
        with pytest.raises(OSError):
            run_export(ctx, T + HOUR)
        monkeypatch.undo()
        written = set(_zips(ctx)) - set(first.files_written)
        assert written and not written & set(_index(ctx))  # published, not listed
        again = run_export(ctx, T + HOUR)
        assert again.files_written == []  # nothing left to write at this time
        assert _index(ctx) == _zips(ctx)
    finally:
        ctx.close()


_KILLED_WORKER = """
import os, signal, sys
from phe_trace.server import ServerContext, load_settings, run_export
from phe_trace.server import exporter

def die(*_args):
    os.kill(os.getpid(), signal.SIGKILL)

exporter.rewrite_index = die
ctx = ServerContext.open(load_settings(data_dir=sys.argv[1], export_min_records=0))
run_export(ctx, float(sys.argv[2]))
"""


def test_worker_killed_before_the_index_rewrite_is_repaired(tmp_path: Path) -> None:
    """PUB-37: a worker process SIGKILLed after its batches, before the index rewrite."""
    settings = make_settings(tmp_path, None)
    ctx = ServerContext.open(settings, clock=SettableClock(NOW))
    try:
        _insert(ctx, 7, T - 3 * HOUR)
    finally:
        ctx.close()
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_KILLED_WORKER), str(settings.data_dir), str(T)],
        capture_output=True,
        timeout=120,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    ctx = ServerContext.open(settings, clock=SettableClock(NOW))
    try:
        published = _zips(ctx)
        assert published and _index(ctx) == []
        again = run_export(ctx, T)
        assert again.files_written == []
        assert _index(ctx) == published
    finally:
        ctx.close()
