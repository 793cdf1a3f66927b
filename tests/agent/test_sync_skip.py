"""A device does not download export files whose keys cannot match what it can hold.

An index lists six-hourly files over the five days before a device began recording and
the day it did; the device fetches only the files published less than a key day before
its first recorded day (a key is published at the earliest while valid, so older files
hold only keys whose identifiers were broadcast before the device was recording), and
still matches its contact. SPEC SCALE-8, AGENT-13.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from phe_trace.agent import Agent
from phe_trace.protocol import export
from phe_trace.serving import serve

from .conftest import T0
from .exports import REGION, confirmed, export_zip, new_signer, spki
from .http_host import ExportHost

DAY = 86_400
SIX_HOURS = 6 * 3600
START = T0 + 10 * DAY  # the UTC day the devices begin recording
CONTACT = START + 2 * 3600
NOW = START + 12 * 3600


@pytest.fixture
def host() -> Iterator[ExportHost]:
    h = ExportHost()
    with serve(h) as url:
        h.url = url
        yield h


def _configure(agent: Agent, host: ExportHost, key: str) -> None:
    agent.config = agent.config.model_copy(
        update={
            "key_server_url": host.url,
            "export_public_keys": key,
            "download_backoff_s": 0.0,
            "download_retries": 1,
            "desktop_notifications": False,
        }
    )


def _record(agents: list[Agent], until: float) -> None:
    t = START
    while t <= until:
        for agent in agents:
            agent.tick(t)
        t += 300


def _publish(
    host: ExportHost, signer: export.EcdsaSigner, contact_key: bytes, rsin: int
) -> dict[str, int]:
    """Six-hourly files from 5 days before START to START + 6 h; the contact's key is in
    the last one (published while still valid). Returns each path's window end."""
    ends = {}
    start = int(START - 5 * DAY)
    while start < START + SIX_HOURS:
        end = start + SIX_HOURS
        keys = [confirmed(os.urandom(16), start // 600 - 144)]
        if end == START + SIX_HOURS:
            keys.append(confirmed(contact_key, rsin))
        name = export.export_file_name(REGION, start, end, 1)
        host.files[name] = export_zip(signer, keys, start, end)
        ends[name] = end
        start = end
    host.files[export.index_file_name(REGION)] = export.format_index(sorted(ends, key=ends.get))
    return ends


def test_files_older_than_the_recording_are_not_downloaded(make_agent, host: ExportHost) -> None:
    """SCALE-8: only files that can hold a matching key are fetched; the contact matches;
    the skipped files are never fetched later; a device that heard nobody but began
    recording the same day fetches exactly the same files."""
    a, b = make_agent("a", now=START), make_agent("b", now=START, seed=2)
    lonely = make_agent("c", now=START, seed=3)
    _record([a, b, lonely], CONTACT - 300)
    t = CONTACT
    while t < CONTACT + 3600:
        for agent in (a, b, lonely):
            agent.tick(t)
        b.radio.inject(a.radio.current_payload(), rssi=-60, unix_time=t)
        t += 300
    [a_key] = a.store.teks()
    signer = new_signer()
    ends = _publish(host, signer, a_key.key_data, a_key.rolling_start_interval_number)
    # Independently: a file published before START - 1 day holds keys that had all
    # expired, tolerance included, before START.
    needed = [p for p, end in sorted(ends.items(), key=lambda i: i[1]) if end >= START - DAY]
    assert 0 < len(needed) < len(ends)

    _configure(b, host, spki(signer))
    result = b.sync(NOW)
    fetched = [path for path, _ in host.requests if path.endswith(".zip")]
    assert fetched == needed
    assert result.matched_sightings > 0 and result.risk_level == "high"
    assert sorted(result.files_skipped[REGION]) == sorted(set(ends) - set(needed))
    assert result.rejected_files == {} and result.interrupted is None

    host.requests.clear()
    assert b.sync(NOW + 3600).files_checked == 0
    assert [path for path, _ in host.requests] == [export.index_file_name(REGION)]

    host.requests.clear()
    _configure(lonely, host, spki(signer))
    assert lonely.store.sighting_windows() > 0 or lonely.store.first_record_day() is not None
    lonely.sync(NOW)
    assert [path for path, _ in host.requests if path.endswith(".zip")] == needed


def test_a_device_with_an_empty_store_fetches_only_recent_files(
    make_agent, host: ExportHost
) -> None:
    """SCALE-8: a store holding no key and no sighting yet (first check before the first
    scan): files whose keys expired, tolerance included, before the check are skipped."""
    signer = new_signer()
    ends = _publish(host, signer, os.urandom(16), int(START // 600))
    fresh = make_agent("fresh", now=NOW)
    assert fresh.store.first_record_day() is None
    _configure(fresh, host, spki(signer))
    result = fresh.sync(NOW)
    fetched = [path for path, _ in host.requests if path.endswith(".zip")]
    # floor = NOW − scan period − skew: files ending less than a day (plus the
    # matcher's 2 h tolerance) before it are needed, older ones are not
    reach = 24 * 3600 + 12 * 600 + fresh.config.clock_skew_tolerance_s
    floor = NOW - fresh.config.scan_period_s - fresh.config.clock_skew_tolerance_s
    expected = [p for p, end in sorted(ends.items(), key=lambda i: i[1]) if end + reach >= floor]
    assert fetched == expected and 0 < len(expected) < len(ends)
    assert result.files_checked == len(expected)


def test_a_name_without_a_window_is_always_downloaded(make_agent, host: ExportHost) -> None:
    """SCALE-8: a listed file whose name does not give its window (another server's
    naming) is fetched, since nothing says its keys cannot match."""
    signer = new_signer()
    b = make_agent("b", now=NOW)
    name = f"{REGION}/keys-of-some-day.zip"
    host.files[name] = export_zip(signer, [confirmed(os.urandom(16), 1)], 0, 1)
    host.files[export.index_file_name(REGION)] = name.encode()
    _configure(b, host, spki(signer))
    result = b.sync(NOW)
    assert [path for path, _ in host.requests if path.endswith(".zip")] == [name]
    assert result.files_skipped[REGION] == []


def test_a_steady_device_downloads_each_file_once(make_agent, host: ExportHost) -> None:
    """SCALE-8: a device checking every 6 hours for 17 days, against a server publishing
    hourly files two hours after their window and listing them for 14 days, fetches every
    file exactly once — none again when its processed entry expires under the retention
    rule while the server still lists it."""
    signer = new_signer()
    device = make_agent("steady", now=T0)
    _configure(device, host, spki(signer))
    zips: dict[str, bytes] = {}
    ends: dict[str, int] = {}
    fetched: dict[str, int] = {}
    t = T0
    for check in range(17 * 4):
        now = T0 + 6 * 3600 * (check + 1) + 17 * 60  # checks at 00:17, 06:17, …
        while t < now:
            device.tick(t)
            t += 1800
        start = int(T0)
        while start + 3600 + 7200 <= now:  # a window is published 2 h after its end
            name = export.export_file_name(REGION, start, start + 3600, 1)
            if name not in zips:
                zips[name] = export_zip(
                    signer, [confirmed(os.urandom(16), start // 600 - 144)], start, start + 3600
                )
                ends[name] = start + 3600
            start += 3600
        listed = sorted((p for p in zips if ends[p] >= now - 14 * DAY), key=ends.get)
        host.files = {p: zips[p] for p in listed}
        host.files[export.index_file_name(REGION)] = export.format_index(listed)
        host.requests.clear()
        device.sync(now)
        for path, _ in host.requests:
            if path.endswith(".zip"):
                fetched[path] = fetched.get(path, 0) + 1
    assert len(fetched) > 15 * 24
    assert {p: n for p, n in fetched.items() if n > 1} == {}
