"""Settings: defaults that run with no configuration, all errors at once, no placeholders."""

from __future__ import annotations

from pathlib import Path

import pytest

from phe_trace.server import load_settings
from phe_trace.server.errors import ServerConfigError


def test_defaults_need_no_configuration(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With only a data directory the server uses SQLite and the GAEN defaults (PUB-9)."""
    monkeypatch.delenv("PHE_TRACE_DATABASE_URL", raising=False)
    s = load_settings(data_dir=tmp_path)
    assert s.effective_database_url.startswith("sqlite:///")
    assert s.max_keys_on_publish == 30 and s.max_same_start_interval_keys == 3
    assert s.retention_days == 14 and s.export_max_records == 500_000


def test_environment_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PHE_TRACE_DATABASE_URL", "postgresql://u@h/db")
    monkeypatch.setenv("PHE_TRACE_REGION", "DE")
    s = load_settings(data_dir=tmp_path)
    assert s.effective_database_url == "postgresql+psycopg://u@h/db"
    assert s.region == "DE"


def test_all_errors_reported_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every invalid variable is named in one error (PUB-9)."""
    monkeypatch.setenv("PHE_TRACE_MAX_KEYS_ON_PUBLISH", "0")
    monkeypatch.setenv("PHE_TRACE_REGION", "no spaces allowed")
    monkeypatch.setenv("PHE_TRACE_EXPORT_PERIOD_SECONDS", "7000")
    with pytest.raises(ServerConfigError) as info:
        load_settings()
    message = str(info.value)
    for name in (
        "PHE_TRACE_MAX_KEYS_ON_PUBLISH",
        "PHE_TRACE_REGION",
        "PHE_TRACE_EXPORT_PERIOD_SECONDS",
    ):
        assert name in message


def test_placeholder_secrets_refused() -> None:
    """A revision-token key or AAD copied from an example is refused (PUB-9)."""
    with pytest.raises(ServerConfigError, match="placeholder"):
        load_settings(revision_token_keys=["k1:changeme"])
    with pytest.raises(ServerConfigError, match="placeholder"):
        load_settings(revision_token_aad="CHANGEME")
    with pytest.raises(ServerConfigError, match="32 bytes"):
        load_settings(revision_token_keys=["k1:AAAA"])
