"""The gateway's settings stand on the one settings base: ``PHE_TRACE_GATEWAY_*`` from the
environment, the EFGS limits as defaults, a bad value one line naming its variable, and
limits that do not fit together refused all at once (SPEC FED-6, FED-8, FED-10, CLI-1)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pydantic
import pytest

from phe_trace.cli import main
from phe_trace.gateway import GatewaySettings
from phe_trace.gateway.errors import GatewayConfigError
from phe_trace.settings import PheTraceSettings, describe_settings_error, is_settings_error
from tests.gateway.support import Operator


@pytest.fixture(autouse=True)
def _no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("PHE_TRACE_"):
            monkeypatch.delenv(name)


def test_defaults_are_the_efgs_limits(tmp_path: Path) -> None:
    """Given only where its data is, the gateway takes the EFGS limits (FED-6, FED-8,
    FED-10); it is one of the roles' settings classes."""
    settings = GatewaySettings(database_url="sqlite://", trust_anchor=tmp_path / "a.pem")
    assert isinstance(settings, PheTraceSettings)
    assert settings.model_dump() == {
        "database_url": "sqlite://",
        "trust_anchor": tmp_path / "a.pem",
        "max_upload_keys": 5000,
        "download_batch_keys": 5000,
        "download_days": 2,
        "retention_days": 3,
        "batching_interval_seconds": 300.0,
        "callback_allow_private": False,
        "callback_max_failures": 5,
        "callback_timeout_seconds": 10.0,
    }
    with pytest.raises(pydantic.ValidationError):
        settings.max_upload_keys = 1  # type: ignore[misc]


def test_the_environment_is_read_under_its_prefix_and_arguments_win(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every field is ``PHE_TRACE_GATEWAY_<NAME>``; a keyword argument overrides it."""
    monkeypatch.setenv("PHE_TRACE_GATEWAY_DATABASE_URL", "sqlite:///gw.sqlite3")
    monkeypatch.setenv("PHE_TRACE_GATEWAY_TRUST_ANCHOR", str(tmp_path / "anchor.pem"))
    monkeypatch.setenv("PHE_TRACE_GATEWAY_RETENTION_DAYS", "7")
    monkeypatch.setenv("PHE_TRACE_GATEWAY_DOWNLOAD_DAYS", "5")
    monkeypatch.setenv("PHE_TRACE_GATEWAY_CALLBACK_ALLOW_PRIVATE", "true")
    settings = GatewaySettings()
    assert settings.database_url == "sqlite:///gw.sqlite3"
    assert settings.trust_anchor == tmp_path / "anchor.pem"
    assert (settings.retention_days, settings.download_days) == (7, 5)
    assert settings.callback_allow_private is True
    assert GatewaySettings(download_days=1).download_days == 1


def test_a_value_of_the_wrong_type_is_one_line_naming_its_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CLI-1: the refusal names the environment variable behind the value."""
    monkeypatch.setenv("PHE_TRACE_GATEWAY_MAX_UPLOAD_KEYS", "many")
    with pytest.raises(pydantic.ValidationError) as refused:
        GatewaySettings(database_url="sqlite://", trust_anchor=tmp_path / "a.pem")
    assert is_settings_error(refused.value)
    line = describe_settings_error(refused.value)
    assert line.startswith("invalid settings: PHE_TRACE_GATEWAY_MAX_UPLOAD_KEYS: ")
    assert "\n" not in line


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"max_upload_keys": 0}, "max_upload_keys must be at least 1"),
        ({"max_upload_keys": 10, "download_batch_keys": 9}, "download_batch_keys must be at "
         "least max_upload_keys"),
        ({"download_days": 0}, "download_days must be between 1 and retention_days"),
        ({"download_days": 4}, "download_days must be between 1 and retention_days"),
        ({"batching_interval_seconds": -1}, "batching_interval_seconds must not be negative"),
        (
            {"max_upload_keys": 0, "download_days": 9, "batching_interval_seconds": -0.5},
            "max_upload_keys must be at least 1; download_days must be between 1 and "
            "retention_days; batching_interval_seconds must not be negative",
        ),
    ],
)  # fmt: skip
def test_limits_that_do_not_fit_together_are_refused_at_once(
    tmp_path: Path, values: dict[str, Any], message: str
) -> None:
    """Every problem of the limits in one GatewayConfigError."""
    with pytest.raises(GatewayConfigError) as refused:
        GatewaySettings(database_url="sqlite://", trust_anchor=tmp_path / "a.pem", **values)
    assert str(refused.value) == message


def test_the_commands_read_the_gateway_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``gateway run`` takes its limits from ``PHE_TRACE_GATEWAY_*`` unless an option is
    given; a bad value stops a command with one line naming the variable (CLI-1)."""
    from phe_trace import serving

    operator = Operator.create(tmp_path)
    monkeypatch.setenv("PHE_TRACE_GATEWAY_DATABASE_URL", f"sqlite:///{tmp_path / 'gw.sqlite3'}")
    monkeypatch.setenv("PHE_TRACE_GATEWAY_TRUST_ANCHOR", str(operator.anchor_file))
    monkeypatch.setenv("PHE_TRACE_GATEWAY_MAX_UPLOAD_KEYS", "70")
    monkeypatch.setenv("PHE_TRACE_GATEWAY_BATCHING_INTERVAL_SECONDS", "0")
    served: list[GatewaySettings] = []
    monkeypatch.setattr(serving, "run", lambda app, **_: served.append(app.state.gateway.settings))
    assert main(["gateway", "run"]) == 0
    assert main(["gateway", "run", "--max-upload-keys", "60", "--callback-allow-private"]) == 0
    first, second = served
    assert (first.max_upload_keys, first.batching_interval_seconds) == (70, 0.0)
    assert first.callback_allow_private is False
    assert (second.max_upload_keys, second.batching_interval_seconds) == (60, 0.0)
    assert second.callback_allow_private is True

    capsys.readouterr()
    monkeypatch.setenv("PHE_TRACE_GATEWAY_DOWNLOAD_DAYS", "two")
    assert main(["gateway", "batch"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(
        "phe-trace: error: invalid settings: PHE_TRACE_GATEWAY_DOWNLOAD_DAYS: "
    )
