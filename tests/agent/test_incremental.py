"""Checks match incrementally; what they keep is what matching everything every time finds.

Each check matches the keys of its new files against every stored sighting, and keys whose
validity window (± the matcher's tolerance) is still open against the sightings stored
since. The reference here matches, at every check, the latest version of every key
published so far against every sighting in the store, from scratch, with
``phe_trace.exposure.match`` alone. (SPEC AGENT-15, MATCH-3)
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from typing import Any

import pytest

from phe_trace.agent import Agent, SightingRecord
from phe_trace.agent.risk import _encode
from phe_trace.exposure import Sighting, match
from phe_trace.protocol import export
from phe_trace.protocol.diagnosis_key import DiagnosisKey, ReportType
from phe_trace.serving import serve

from .conftest import T0
from .exports import REGION, new_signer, publish, spki
from .http_host import ExportHost
from .reference import ref_rpi

H = 3600
DAY = 86_400


@pytest.fixture
def host() -> Iterator[ExportHost]:
    h = ExportHost()
    with serve(h) as url:
        h.url = url
        yield h


def _key(
    agent: Agent, day: int, report_type: ReportType = ReportType.CONFIRMED_TEST
) -> DiagnosisKey:
    [stored] = [
        k
        for k in agent.store.teks()
        if k.rolling_start_interval_number == int(T0 // 600) + 144 * day
    ]
    return DiagnosisKey(
        stored.key_data, stored.rolling_start_interval_number, 144, 2, report_type, 1
    )


def _decoy(day: int) -> DiagnosisKey:
    return DiagnosisKey(
        os.urandom(16), int(T0 // 600) + 144 * day, 144, 2, ReportType.CONFIRMED_TEST, 1
    )


def _reference(listener: Agent, files: list[export.TemporaryExposureKeyExport]) -> list[Any]:
    """Every kept match as matching all published keys against all sightings would keep it."""
    latest: dict[tuple[bytes, int], DiagnosisKey] = {}
    for content in files:
        for key in (*content.keys, *content.revised_keys):
            latest[(key.key_data, key.rolling_start_interval_number)] = key
    own = {k.key_data for k in listener.store.teks()}
    keys = [k for k in latest.values() if k.key_data not in own]
    sightings = [
        Sighting(s.rpi, s.aem, s.rssi_mean, s.unix_time) for s in listener.store.sightings()
    ]
    return _canonical(_encode(m) for m in match(keys, sightings).matches)


def _kept(listener: Agent) -> list[Any]:
    return _canonical((listener.store.get_meta("matches") or {})["items"])


def _canonical(items: Iterable[Any]) -> list[str]:
    return sorted(json.dumps(item, sort_keys=True) for item in items)


def test_incremental_checks_keep_exactly_what_a_full_rematch_finds(
    make_agent, host: ExportHost
) -> None:
    a = make_agent("a", now=T0)
    c = make_agent("c", now=T0, seed=3)
    b = make_agent("b", now=T0, seed=2)
    signer = new_signer()
    b.config = b.config.model_copy(
        update={
            "key_server_url": host.url,
            "export_public_keys": spki(signer),
            "download_backoff_s": 0.0,
            "desktop_notifications": False,
        }
    )
    # When b hears whom (start, end, sender), when files are published, when b checks.
    contacts = [
        (T0 + 8 * H, T0 + 11 * H, a),
        (T0 + 20 * H, T0 + 23.5 * H, a),
        (T0 + DAY + 9 * H, T0 + DAY + 14 * H, c),
        (T0 + 2 * DAY + 7 * H, T0 + 2 * DAY + 12 * H, a),
    ]
    publications = {
        T0 + 10 * H: lambda: ([_key(a, 0), _decoy(0)], []),
        T0 + DAY + 11 * H: lambda: ([_key(c, 1)], []),
        T0 + DAY + 13 * H: lambda: ([], [_key(a, 0, ReportType.CONFIRMED_CLINICAL_DIAGNOSIS)]),
        T0 + 2 * DAY + 9.5 * H: lambda: ([_key(a, 1), _key(a, 2), _decoy(2)], []),
    }
    checks = [
        T0 + 10.5 * H,
        T0 + 21 * H,
        T0 + DAY + 1.5 * H,
        T0 + DAY + 10.5 * H,
        T0 + DAY + 13.5 * H,
        T0 + DAY + 20 * H,
        T0 + 2 * DAY + 10 * H,
        T0 + 2 * DAY + 16 * H,
        T0 + 3 * DAY + 6 * H,
    ]
    published: list[export.TemporaryExposureKeyExport] = []
    found_by_open_keys = 0
    t = T0 + 6 * H
    while t <= checks[-1]:
        for agent in (a, c, b):
            agent.tick(t)
        for start, end, sender in contacts:
            if start <= t < end:
                b.radio.inject(sender.radio.current_payload(), rssi=-58, unix_time=t)  # type: ignore[union-attr]
        if t in publications:
            keys, revised = publications[t]()
            content = export.TemporaryExposureKeyExport(
                int(t), int(t) + H, REGION, keys=tuple(keys), revised_keys=tuple(revised)
            )
            published.append(content)
            publish(host.files, [export.build_export_zip(content, [signer])], int(t))
        if t in checks:
            result = b.sync(t)
            assert result.rejected_files == {} and result.interrupted is None
            if result.files_checked == 0:
                found_by_open_keys += result.matched_sightings
            assert _kept(b) == _reference(b, published), f"check at +{(t - T0) / H:.1f} h"
        t += 300
    # The scenario exercised what only open keys find, a revision, and a decoy.
    assert found_by_open_keys > 0
    kept = [json.loads(item) for item in _kept(b)]
    assert ReportType.CONFIRMED_CLINICAL_DIAGNOSIS in {item["key"]["report_type"] for item in kept}
    assert (
        len({item["key"]["key_data"] for item in kept}) == 3
    )  # a's keys of days 0 and 2, c's of day 1
    assert b.status(checks[-1])["last_exposure_day"] is not None
    open_keys = b.store.get_meta("sync")["open_keys"]
    assert open_keys["key_data"] == "" and open_keys["rolling_period"] == []  # all ended


def test_an_open_key_matches_later_sightings_only_within_each_identifiers_window(
    make_agent, host: ExportHost
) -> None:
    """A key published while valid is matched against sightings stored after its file was
    checked with the same per-identifier rule as a full match: RPI_j heard during j − 12
    or j + 12 is kept, during j − 13 or j + 13 it is not, for j at the start, in the
    middle and at the end of the key (SPEC AGENT-15, MATCH-3)."""
    b = make_agent("b", now=T0, seed=2)
    signer = new_signer()
    b.config = b.config.model_copy(
        update={
            "key_server_url": host.url,
            "export_public_keys": spki(signer),
            "download_backoff_s": 0.0,
            "desktop_notifications": False,
        }
    )
    start = int(T0 // 600)
    key = DiagnosisKey(os.urandom(16), start, 144, 2, ReportType.CONFIRMED_TEST, 1)
    content = export.TemporaryExposureKeyExport(int(T0), int(T0) + H, REGION, keys=(key,))
    publish(host.files, [export.build_export_zip(content, [signer])], int(T0))
    b.tick(T0 + H)
    first = b.sync(T0 + H)
    assert first.files_checked == 1 and first.matched_sightings == 0
    assert b.store.get_meta("sync")["open_keys"]["key_data"]  # still valid: kept open
    heard = {}
    for j in (start, start + 70, start + 143):
        for late, offset in ((-13, 599), (-12, 0), (12, 599), (13, 0)):
            rpi = ref_rpi(key.key_data, j)
            t = float((j + late) * 600 + offset)
            heard[(j, late)] = t
            b.store.add_sightings([SightingRecord(rpi, os.urandom(4), t, 0, -60, -60, 1)])
    later = b.sync(T0 + DAY + 2 * H)
    assert later.files_checked == 0
    kept = {
        (item["interval"], item["sighting"]["unix_time"])
        for item in b.store.get_meta("matches")["items"]
    }
    assert kept == {(j, t) for (j, late), t in heard.items() if abs(late) == 12}
