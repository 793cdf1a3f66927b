"""``phe-trace server admin``: first admin without a default password, API keys, maintenance."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from phe_trace.cli.server_admin import app
from phe_trace.verification import VerificationService, VerificationSettings

from .conftest import SECRET


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> VerificationSettings:
    monkeypatch.setenv("PHE_TRACE_VERIFICATION_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("PHE_TRACE_VERIFICATION_SECRET", SECRET)
    return VerificationSettings()


def test_create_admin_reads_the_password_from_stdin(env: VerificationSettings) -> None:
    """The first admin is created with a password from stdin; it can sign in (SPEC VER-12)."""
    runner = CliRunner()
    result = runner.invoke(
        app,
        ["create", "--username", "root", "--realm", "county", "--password-stdin"],
        input="a-password-from-stdin\n",
    )
    assert result.exit_code == 0, result.output
    assert "created realm county" in result.output
    service = VerificationService(env)
    user = service.accounts.authenticate("root", "a-password-from-stdin")
    assert user.is_admin
    service.close()


def test_create_prompts_twice_and_has_no_default_password(env: VerificationSettings) -> None:
    """Without --password-stdin the password is prompted, hidden and twice; there is no default.

    (SPEC VER-12)
    """
    runner = CliRunner()
    mismatch = runner.invoke(
        app, ["create", "--username", "root"], input="first-password-1\nsecond-password-2\n" * 1
    )
    assert mismatch.exit_code != 0
    empty = runner.invoke(app, ["create", "--username", "root", "--password-stdin"], input="\n")
    assert empty.exit_code != 0
    ok = runner.invoke(
        app, ["create", "--username", "root"], input="prompted-password\nprompted-password\n"
    )
    assert ok.exit_code == 0, ok.output


def test_api_key_realm_quota_and_maintenance(env: VerificationSettings) -> None:
    """API keys are printed once and work; quota and maintenance are set from the CLI.

    (SPEC VER-9, VER-11)
    """
    runner = CliRunner()
    assert runner.invoke(app, ["realm", "county", "--quota", "7"]).exit_code == 0
    result = runner.invoke(app, ["api-key", "--name", "android", "--realm", "county"])
    assert result.exit_code == 0, result.output
    key = result.output.strip()
    assert key.startswith("phev1_")
    assert runner.invoke(app, ["maintenance", "on"]).exit_code == 0
    service = VerificationService(env)
    assert service.accounts.api_key_realm(key) is not None
    assert service.accounts.realm_by_name("county").daily_quota == 7  # type: ignore[union-attr]
    assert service.accounts.maintenance_mode()
    service.close()
    missing = runner.invoke(app, ["api-key", "--name", "x", "--realm", "nowhere"])
    assert missing.exit_code != 0
