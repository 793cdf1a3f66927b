"""``phe-trace agent …`` as a person runs it, and the device/ deployment files."""

from __future__ import annotations

import configparser
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from phe_trace.agent import AgentStore, SightingRecord, load_config
from phe_trace.agent.store import DB_NAME, KEY_NAME

REPO = Path(__file__).resolve().parents[2]
DEVICE = REPO / "device"


def _run(data_dir: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PHE_TRACE_AGENT_")}
    environ.update({"PHE_TRACE_AGENT_DATA_DIR": str(data_dir), **env})
    return subprocess.run(
        [sys.executable, "-m", "phe_trace.cli", "agent", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=environ,
    )


def test_status_export_data_and_wipe(tmp_path: Path) -> None:
    """Before any check the risk is "never checked", not "low"; export-data gives times
    in ISO 8601 (UTC); after wipe, status finds no store and creates none.

    (SPEC AGENT-10, AGENT-16, OPS-3)"""
    d = tmp_path / "agent"
    heard_at = float(int(time.time()) - 3600)  # recent: the real clock's purge keeps it
    store = AgentStore.open(d)
    store.add_sightings([SightingRecord(b"\x11" * 16, b"\x22" * 4, heard_at, 2, -61, -63, 3)])
    store.close()
    status = _run(d, "status")
    assert status.returncode == 0, status.stderr
    assert "risk level:          never checked" in status.stdout
    assert "last check:          never" in status.stdout
    as_json = json.loads(_run(d, "status", "--json").stdout)
    assert as_json["stored_sighting_windows"] == 1 and as_json["last_check"] is None
    exported = _run(d, "export-data")
    assert exported.returncode == 0
    data = json.loads(exported.stdout)
    assert data["sightings"] == [
        {
            "rpi": "11" * 16,
            "aem": "22" * 4,
            "time": time.strftime("%Y-%m-%dT%H:%M:%S.000+00:00", time.gmtime(heard_at)),
            "duration_s": 2.0,
            "rssi_max": -61,
            "rssi_mean": -63,
            "count": 3,
        }
    ]
    wiped = _run(d, "wipe", "--yes")
    assert wiped.returncode == 0 and "erased" in wiped.stdout
    assert not (d / KEY_NAME).exists() and not (d / DB_NAME).exists()
    for command in ("status", "export-data"):
        after = _run(d, command)
        assert after.returncode != 0
        assert after.stderr.startswith(f"phe-trace: error: no agent store in {d}:"), after.stderr
        assert not (d / KEY_NAME).exists() and not (d / DB_NAME).exists()


def test_errors_are_one_line(tmp_path: Path) -> None:
    """Damaged store, missing key, no server: one line on stderr, non-zero exit."""
    d = tmp_path / "agent"
    AgentStore.open(d).close()
    no_server = _run(d, "sync")
    assert no_server.returncode != 0
    assert no_server.stderr.strip().splitlines() == [
        "phe-trace: error: no key server configured (PHE_TRACE_AGENT_KEY_SERVER_URL)"
    ]
    (d / KEY_NAME).unlink()
    missing = _run(d, "status")
    assert missing.returncode != 0 and "store.key is missing" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1
    (d / DB_NAME).write_bytes(b"garbage" * 1000)
    (d / KEY_NAME).write_bytes(os.urandom(32))
    broken = _run(d, "status")
    assert broken.returncode != 0 and "damaged" in broken.stderr
    assert "Traceback" not in broken.stderr
    assert (d / DB_NAME).read_bytes() == b"garbage" * 1000
    bad = _run(d, "status", PHE_TRACE_AGENT_TX_POWER_DBM="900")
    assert bad.returncode != 0 and "tx_power_dbm" in bad.stderr


def test_report_without_servers_is_refused_clearly(tmp_path: Path) -> None:
    result = _run(tmp_path / "agent", "report", "--code", "12345678")
    assert result.returncode != 0
    assert "PHE_TRACE_AGENT_VERIFICATION_URL" in result.stderr


def test_example_config_loads_and_names_every_setting() -> None:
    config = load_config(DEVICE / "agent.env.example")
    assert config.radio == "bluez" and config.retention_days == 14
    text = (DEVICE / "agent.env.example").read_text()
    for name in type(config).model_fields:
        if name != "data_dir":
            assert f"PHE_TRACE_AGENT_{name.upper()}" in text, name


def test_systemd_unit_runs_unprivileged_with_bounded_capabilities() -> None:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment, method-assign]
    parser.read(DEVICE / "phe-trace-agent.service")
    service = parser["Service"]
    assert service["User"] not in ("root", "0")
    assert set(service["AmbientCapabilities"].split()) == {"CAP_NET_ADMIN", "CAP_NET_RAW"}
    assert service["CapabilityBoundingSet"] == service["AmbientCapabilities"]
    assert service["NoNewPrivileges"] == "yes"
    assert "agent run" in service["ExecStart"]
    assert "bluetooth" in service["SupplementaryGroups"]
    assert "bluetooth.service" in parser["Unit"]["After"]


@pytest.mark.parametrize("section", ["What it stores", "Check that it runs", "BlueZ"])
def test_readme_covers(section: str) -> None:
    assert section in (DEVICE / "README.md").read_text()


def test_sync_against_a_fresh_key_server_says_nothing_published(tmp_path: Path) -> None:
    """A real key server with no batch yet: ``sync`` succeeds and says so (SPEC EXP-14)."""
    from phe_trace.server import ServerContext, create_app, load_settings
    from phe_trace.serving import serve

    settings = load_settings(
        data_dir=tmp_path / "ks", database_url=f"sqlite:///{tmp_path / 'ks.sqlite3'}", region="ZZ"
    )
    context = ServerContext.open(settings, clock=time.time)
    try:
        with serve(create_app(context=context)) as url:
            pem = tmp_path / "export.pem"
            import httpx

            pem.write_bytes(httpx.get(f"{url}/v1/exports/signing-key.pem").content)
            done = _run(
                tmp_path / "agent",
                "sync",
                PHE_TRACE_AGENT_KEY_SERVER_URL=url,
                PHE_TRACE_AGENT_EXPORT_PUBLIC_KEYS=str(pem),
            )
    finally:
        context.close()
    assert done.returncode == 0, done.stderr
    assert "nothing published yet" in done.stdout
    assert "checked 0 file(s)" in done.stdout


def test_everyday_commands_read_the_services_settings_file(tmp_path: Path) -> None:
    """Without --config the commands read ~/.config/phe-trace/agent.env (here through
    XDG_CONFIG_HOME) and act on the data directory it names: one place for the data.

    (SPEC OPS-3)"""
    store_dir = tmp_path / "service-store"
    AgentStore.open(store_dir).close()
    (tmp_path / "cfg" / "phe-trace").mkdir(parents=True)
    (tmp_path / "cfg" / "phe-trace" / "agent.env").write_text(
        f"PHE_TRACE_AGENT_DATA_DIR={store_dir}\nPHE_TRACE_AGENT_DESKTOP_NOTIFICATIONS=false\n"
    )
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PHE_TRACE_AGENT_")}
    environ.update(XDG_CONFIG_HOME=str(tmp_path / "cfg"), HOME=str(tmp_path / "home"))
    done = subprocess.run(
        [sys.executable, "-m", "phe_trace.cli", "agent", "status", "--json"],
        capture_output=True, text=True, timeout=60, check=False, env=environ,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["stored_keys"] == 0
    assert not (tmp_path / "home").exists()  # nothing made in ~/.local/share
    (tmp_path / "cfg" / "phe-trace" / "agent.env").unlink()
    elsewhere = subprocess.run(
        [sys.executable, "-m", "phe_trace.cli", "agent", "status"],
        capture_output=True, text=True, timeout=60, check=False, env=environ,
    )  # fmt: skip
    assert elsewhere.returncode != 0
    assert f"no agent store in {tmp_path / 'home'}/.local/share/phe-trace/agent" in elsewhere.stderr
