"""A device that follows several regions: home plus the regions the person visits, each
at its own export URL (a real HTTP server per region) and verified with its own key."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from phe_trace.agent import Agent, AgentStore
from phe_trace.agent.config import FollowedRegion
from phe_trace.agent.regions import add_region, remove_region
from phe_trace.protocol import export
from phe_trace.serving import serve

from .conftest import T0
from .exports import confirmed, new_signer, spki
from .http_host import ExportHost

DAY = 86_400
CONTACT = T0 + 8 * 3600
NOW = T0 + DAY + 6 * 3600


@pytest.fixture
def hosts() -> Iterator[tuple[ExportHost, ExportHost]]:
    home, visited = ExportHost(), ExportHost()
    with serve(home) as home_url, serve(visited) as visited_url:
        home.url, visited.url = home_url, visited_url
        yield home, visited


def _put(
    host: ExportHost, region: str, signer: export.EcdsaSigner, key_data: bytes, start: int
) -> str:
    """One signed export of ``region`` holding ``key_data``, listed in its index."""
    begin = int(T0 + DAY) + 3600 * len([p for p in host.files if p.endswith(".zip")])
    content = export.TemporaryExposureKeyExport(
        begin, begin + 3600, region, keys=(confirmed(key_data, start),)
    )
    path = export.export_file_name(region, begin, begin + 3600, 1)
    host.files[path] = export.build_export_zip(content, [signer])
    zips = sorted(p for p in host.files if p.endswith(".zip") and p.startswith(region + "/"))
    host.files[export.index_file_name(region)] = export.format_index(zips)
    return path


def _people(make_agent: Callable[..., Agent]) -> tuple[Agent, Agent, Agent]:
    """The device ``d`` spends an hour near ``home`` and, later that day, near ``visitor``
    (a person of the visited region)."""
    home, visitor = make_agent("home", now=T0), make_agent("visitor", now=T0, seed=3)
    d = make_agent("device", now=T0, seed=2)
    for other, start in ((home, CONTACT), (visitor, CONTACT + 4 * 3600)):
        t = start
        while t < start + 3600:
            other.tick(t)
            d.tick(t)
            d.radio.inject(other.radio.current_payload(), rssi=-60, unix_time=t)
            t += 300
    d.tick(CONTACT + 6 * 3600)
    return home, visitor, d


def _matched_keys(agent: Agent) -> set[bytes]:
    items = (agent.store.get_meta("matches") or {}).get("items", [])
    return {bytes.fromhex(item["key"]["key_data"]) for item in items}


def _follow(d: Agent, home: ExportHost, home_key: str, **regions: FollowedRegion) -> None:
    d.config = d.config.model_copy(
        update={
            "key_server_url": home.url,
            "export_public_keys": home_key,
            "download_backoff_s": 0.0,
            "download_retries": 0,
            "desktop_notifications": False,
            "regions": list(regions.values()),
        }
    )


def test_a_device_following_two_regions_matches_keys_from_both(
    make_agent: Callable[..., Agent], hosts: tuple[ExportHost, ExportHost]
) -> None:
    """FED-16: keys published in the home region and in the visited region are both
    matched, each region's files verified with that region's own key; each region keeps
    its own processed files, so the next check downloads nothing again from either; a
    key the visited region also lists (federated from home) is matched once; status
    names both regions."""
    home_host, visited_host = hosts
    home, visitor, d = _people(make_agent)
    [home_key], [visitor_key] = home.store.teks(), visitor.store.teks()
    signer_home, signer_fr = new_signer("310"), new_signer("208")
    _put(home_host, "ZZ", signer_home, home_key.key_data, home_key.rolling_start_interval_number)
    _put(
        visited_host,
        "FR",
        signer_fr,
        visitor_key.key_data,
        visitor_key.rolling_start_interval_number,
    )
    # the visited region also exports the home person's key, received through federation
    _put(visited_host, "FR", signer_fr, home_key.key_data, home_key.rolling_start_interval_number)
    fr = FollowedRegion(
        name="FR",
        region="FR",
        export_url=f"{visited_host.url}/v1/exports",
        public_keys=(spki(signer_fr),),
        key_id="208",
    )
    _follow(d, home_host, spki(signer_home), FR=fr)
    result = d.sync(NOW)
    assert result.rejected_files == {}
    assert result.files_checked == 3 and result.keys_checked == 2
    assert _matched_keys(d) == {home_key.key_data, visitor_key.key_data}
    assert result.regions["ZZ"]["checked"] == 1 and result.regions["FR"]["checked"] == 2
    windows = len(d.store.get_meta("matches")["items"])
    home_host.requests.clear()
    visited_host.requests.clear()
    again = d.sync(NOW + 3600)
    assert again.files_checked == 0 and again.new_windows == 0
    assert [p for p, _ in home_host.requests] == ["ZZ/index.txt"]
    assert [p for p, _ in visited_host.requests] == ["FR/index.txt"]
    assert len(d.store.get_meta("matches")["items"]) == windows
    regions = {r["name"]: r for r in d.status(NOW + 3600)["regions"]}
    assert regions["ZZ"]["home"] and regions["ZZ"]["files_processed"] == 1
    assert regions["FR"]["files_processed"] == 2 and regions["FR"]["key_id"] == "208"
    assert regions["FR"]["index_url"] == f"{visited_host.url}/v1/exports/FR/index.txt"


def test_a_file_of_one_region_signed_with_another_region_s_key_is_refused(
    make_agent: Callable[..., Agent], hosts: tuple[ExportHost, ExportHost]
) -> None:
    """FED-16: the visited region's index lists a file signed with the home region's key
    (and one signed by its own key but naming another key id): both are refused, named with
    the region, and not matched; the home region's file is matched; a visited region that
    cannot be reached is reported for itself while home is still checked."""
    home_host, visited_host = hosts
    home, visitor, d = _people(make_agent)
    [home_key], [visitor_key] = home.store.teks(), visitor.store.teks()
    signer_home = new_signer("310")
    _put(home_host, "ZZ", signer_home, home_key.key_data, home_key.rolling_start_interval_number)
    start = visitor_key.rolling_start_interval_number
    forged = _put(visited_host, "FR", signer_home, visitor_key.key_data, start)
    fr_private = ec.generate_private_key(ec.SECP256R1())
    signer_fr = export.EcdsaSigner(fr_private, export.SignatureInfo("208", "v1"))
    renamed = export.EcdsaSigner(fr_private, export.SignatureInfo("999", "v1"))
    other_id = _put(visited_host, "FR", renamed, visitor_key.key_data, start)
    fr_key = spki(signer_fr)
    fr = FollowedRegion(
        name="FR",
        region="FR",
        export_url=f"{visited_host.url}/v1/exports/",
        public_keys=(fr_key,),
        key_id="208",
    )
    _follow(d, home_host, spki(signer_home), FR=fr)
    result = d.sync(NOW)
    assert set(result.rejected_files) == {f"FR:{forged}", f"FR:{other_id}"}
    assert _matched_keys(d) == {home_key.key_data}
    # the same key id but not the visited region's key: still refused
    wrong_key = FollowedRegion(
        name="FR", region="FR", export_url=fr.export_url, public_keys=(spki(new_signer("208")),)
    )
    _follow(d, home_host, spki(signer_home), FR=wrong_key)
    assert set(d.sync(NOW).rejected_files) == {f"FR:{forged}", f"FR:{other_id}"}
    assert _matched_keys(d) == {home_key.key_data}
    visited_host.down = True
    down = d.sync(NOW + 60)
    assert down.regions["FR"]["error"] and down.regions["ZZ"]["error"] is None
    assert d.status(NOW + 60)["regions"][1]["last_error"]


def test_regions_added_and_removed_in_the_store(make_agent: Callable[..., Agent]) -> None:
    """FED-17: an added region is kept (sealed) in the device's store with the settings'
    regions; names are unique (home's included); removing one drops its file state."""
    d = make_agent("device", now=T0)
    signer = new_signer()
    region = FollowedRegion(
        name="BE", region="BE", export_url="https://keys.example.be/v1/exports/",
        public_keys=(spki(signer),),
    )  # fmt: skip
    add_region(d.config, d.store, region)
    with pytest.raises(Exception, match="already followed"):
        add_region(d.config, d.store, region)
    with pytest.raises(Exception, match="already followed"):
        add_region(d.config, d.store, region.model_copy(update={"name": "ZZ"}))
    d.store.put_meta("sync", {"processed": [], "regions": {"BE": ["BE/1.zip"]}})
    assert [r["name"] for r in d.status(T0)["regions"]] == ["BE"]
    assert remove_region(d.config, d.store, "BE").name == "BE"
    assert d.store.get_meta("sync")["regions"] == {}
    with pytest.raises(Exception, match="no region named"):
        remove_region(d.config, d.store, "BE")


def _cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PHE_TRACE_AGENT_")}
    environ["PHE_TRACE_AGENT_DATA_DIR"] = str(data_dir)
    return subprocess.run(
        [sys.executable, "-m", "phe_trace.cli", "agent", "region", *args],
        capture_output=True, text=True, timeout=60, check=False, env=environ,
    )  # fmt: skip


def _one_line_error(done: subprocess.CompletedProcess[str], *words: str) -> None:
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    for word in words:
        assert word in lines[0]


def test_region_commands_and_bad_input(tmp_path: Path) -> None:
    """FED-17: `agent region add NAME --url --key` reads the PEM key and keeps the region,
    `list` shows home and it, `remove` drops it; a missing or unusable key, a URL that is
    not http(s), a bad name, a name already followed and removing an unknown region each
    give one line on stderr and a nonzero exit, and change nothing."""
    d = tmp_path / "agent"
    AgentStore.open(d).close()
    signer = new_signer()
    pem = tmp_path / "fr.pem"
    pem.write_bytes(export.public_key_pem(signer.public_key))
    not_a_key = tmp_path / "junk.pem"
    not_a_key.write_text("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
    url = "https://keys.example.fr/v1/exports/"
    added = _cli(d, "add", "FR", "--url", url, "--key", str(pem), "--key-id", "208")
    assert added.returncode == 0, added.stderr
    assert "https://keys.example.fr/v1/exports/FR/index.txt" in added.stdout
    _one_line_error(_cli(d, "add", "FR", "--url", url, "--key", str(pem)), "already followed")
    _one_line_error(_cli(d, "add", "BE", "--url", url, "--key", str(tmp_path / "no.pem")), "no.pem")
    _one_line_error(_cli(d, "add", "BE", "--url", url, "--key", str(not_a_key)), "junk.pem")
    _one_line_error(_cli(d, "add", "BE", "--url", "ftp://x/", "--key", str(pem)), "export_url")
    _one_line_error(_cli(d, "add", "-x/", "--url", url, "--key", str(pem)))
    _one_line_error(_cli(d, "add", "B E", "--url", url, "--key", str(pem)), "name")
    _one_line_error(_cli(d, "remove", "BE"), "no region named")
    listed = _cli(d, "list")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines() == [
        "FR https://keys.example.fr/v1/exports/FR/index.txt, 0 file(s) processed, key id 208"
    ]
    assert _cli(d, "remove", "FR").returncode == 0
    assert _cli(d, "list").stdout == ""


def test_the_agent_s_regions_setting_is_json(tmp_path: Path) -> None:
    """FED-16: PHE_TRACE_AGENT_REGIONS holds the followed regions as JSON; a region named
    like home, or twice, is refused with one line."""
    d = tmp_path / "agent"
    AgentStore.open(d).close()
    region = json.dumps(
        {
            "name": "FR",
            "region": "FR",
            "export_url": "https://k.example.fr/v1/exports",
            "public_keys": [spki(new_signer())],
        }
    )
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PHE_TRACE_AGENT_")}
    environ["PHE_TRACE_AGENT_DATA_DIR"] = str(d)

    def run(value: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "phe_trace.cli", "agent", "region", *args],
            capture_output=True, text=True, timeout=60, check=False,
            env={**environ, "PHE_TRACE_AGENT_REGIONS": value},
        )  # fmt: skip

    listed = run(f"[{region}]", "list")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.startswith("FR https://k.example.fr/v1/exports/FR/index.txt")
    _one_line_error(run(f"[{region}, {region}]", "list"), "name of its own")
    _one_line_error(run(f"[{region}]", "remove", "FR"), "PHE_TRACE_AGENT_REGIONS")
    _one_line_error(run("[{", "list"), "regions")
