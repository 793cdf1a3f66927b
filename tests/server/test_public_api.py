"""The public surface of ``phe_trace.server`` is ``__all__``; this pins it."""

from __future__ import annotations

from pathlib import Path

import phe_trace.server as server
from phe_trace.server import load_settings, run_export

from .helpers import NOW


def test_all_is_pinned() -> None:
    assert sorted(server.__all__) == sorted(
        [
            "Clock",
            "ExportReport",
            "HealthAuthority",
            "HealthAuthorityKey",
            "RetentionReport",
            "ServerContext",
            "ServerSettings",
            "create_app",
            "list_health_authorities",
            "load_settings",
            "register_health_authority",
            "rewrite_index",
            "run_export",
            "run_retention",
        ]
    )
    for name in server.__all__:
        assert getattr(server, name) is not None


def test_run_export_accepts_settings(tmp_path: Path) -> None:
    """``run_export(settings, now)`` opens and closes a context itself (SPEC PUB-26)."""
    report = run_export(load_settings(data_dir=tmp_path, export_min_records=0), NOW)
    assert report.batches_written == 1
    assert (tmp_path / "exports" / "ZZ" / "index.txt").exists()
