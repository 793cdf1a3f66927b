"""``phe-trace aggregator …`` (SPEC AGG-19): keys, and one stderr line on bad settings."""

from __future__ import annotations

import json

import pytest
from nacl.public import PrivateKey

from phe_trace.cli import main


def test_keygen_prints_a_matching_pair(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["aggregator", "keygen"]) == 0
    pair = json.loads(capsys.readouterr().out)
    private = PrivateKey(bytes.fromhex(pair["private_key"]))
    assert bytes(private.public_key).hex() == pair["public_key"]


def test_run_with_missing_settings_fails_on_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("PRIVATE_KEY", "VERIFY_KEY", "PEER_TOKEN", "HELPER_URL"):
        monkeypatch.delenv(f"PHE_TRACE_AGGREGATOR_{var}", raising=False)
    assert main(["aggregator", "run", "--role", "helper"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("phe-trace: error: invalid aggregator settings")
    assert "private_key" in err[0] and "helper_url" not in err[0]
    assert main(["aggregator", "run", "--role", "boss"]) == 2
