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

from phe_trace.agent import Agent
from phe_trace.agent.risk import _encode
from phe_trace.exposure import Sighting, match
from phe_trace.protocol import export
from phe_trace.protocol.diagnosis_key import DiagnosisKey, ReportType

from .conftest import T0
from .exports import REGION, new_signer, publish, spki
from .http_host import ExportHost, serve

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
    assert ReportType.CONFIRMED_CLINICAL_DIAGNOSIS in {item["k"][4] for item in kept}
    assert len({item["k"][0] for item in kept}) == 3  # a's keys of days 0 and 2, c's of day 1
    assert b.status(checks[-1])["last_exposure_day"] is not None
    assert b.store.get_meta("sync")["open_keys"] == []  # every window has ended
