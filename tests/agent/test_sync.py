"""Sync against a real HTTP server: verify, match, resume, refuse what is not signed."""

from __future__ import annotations

import io
import os
import time
import zipfile
from collections.abc import Callable, Iterator

import httpx
import pytest

from phe_trace.agent import (
    Agent,
    AgentConfigError,
    ExportNotFoundError,
    ServerUnavailableError,
    SightingRecord,
    StoredKey,
    SyncError,
)
from phe_trace.agent.download import download
from phe_trace.protocol import export
from phe_trace.serving import serve

from .conftest import T0
from .exports import confirmed, export_zip, new_signer, publish, spki
from .http_host import ExportHost
from .reference import ref_rpi

DAY = 86_400
CONTACT = T0 + 8 * 3600  # 08:00 on day 0
NOW = T0 + DAY + 6 * 3600  # the next day, 06:00


@pytest.fixture
def host() -> Iterator[ExportHost]:
    h = ExportHost()
    with serve(h) as url:
        h.url = url
        yield h


def _pair(
    make_agent: Callable[..., Agent], minutes: int = 60, rssi: int = -60
) -> tuple[Agent, Agent]:
    """``b`` hears ``a`` every 5 minutes for ``minutes`` at ``rssi`` (through the sim radio)."""
    a, b = make_agent("a", now=T0), make_agent("b", now=T0, seed=2)
    t = CONTACT
    while t < CONTACT + minutes * 60:
        a.tick(t)
        b.tick(t)
        b.radio.inject(a.radio.current_payload(), rssi=rssi, unix_time=t)
        t += 300
    a.tick(t)
    b.tick(t)
    return a, b


def _zip_of(signer: export.EcdsaSigner, key: StoredKey | None = None) -> bytes:
    """A signed export with ``key`` (or a random key) as a confirmed diagnosis key."""
    if key is None:
        return export_zip(signer, [confirmed(os.urandom(16), int(T0 // 600))], 0, 1)
    return export_zip(signer, [confirmed(key.key_data, key.rolling_start_interval_number)], 0, 1)


def _configure(agent: Agent, host: ExportHost, key: str, **extra: object) -> None:
    agent.config = agent.config.model_copy(
        update={
            "key_server_url": host.url,
            "export_public_keys": key,
            "download_backoff_s": 0.0,
            "download_retries": 2,
            "desktop_notifications": False,
            **extra,
        }
    )


def test_sync_matches_the_published_key_of_a_contact(make_agent, host: ExportHost) -> None:
    """Download index + new files, verify, match; a second check downloads nothing again.

    (SPEC AGENT-13, AGENT-14, AGENT-15, AGENT-16)
    """
    a, b = _pair(make_agent)
    signer = new_signer()
    [a_key] = a.store.teks()
    decoy = os.urandom(16)
    publish(
        host.files,
        [
            export_zip(
                signer,
                [
                    confirmed(a_key.key_data, a_key.rolling_start_interval_number),
                    confirmed(decoy, a_key.rolling_start_interval_number),
                ],
                0,
                1,
            )
        ],
        int(T0 + DAY),
    )
    _configure(b, host, spki(signer))
    result = b.sync(NOW)
    # Independent check: which of b's records are a's identifiers of that day.
    a_rpis = {ref_rpi(a_key.key_data, a_key.rolling_start_interval_number + j) for j in range(144)}
    expected = sum(1 for s in b.store.sightings() if s.rpi in a_rpis)
    assert expected == 12
    assert (result.files_checked, result.keys_checked) == (1, 2)
    assert result.matched_sightings == expected
    assert result.rejected_files == {} and result.interrupted is None
    assert result.last_exposure_day == "2026-11-02"
    status = b.status(NOW)
    assert status["last_exposure_day"] == "2026-11-02"
    assert status["last_check"] == "2026-11-03T06:00:00+00:00"
    host.requests.clear()
    again = b.sync(NOW + 3600)
    assert again.files_checked == 0
    assert [p for p, _ in host.requests] == ["ZZ/index.txt"]
    assert b.status(NOW + 3600)["last_exposure_day"] == "2026-11-02"  # kept across checks


def test_the_reporter_does_not_match_itself(make_agent, host: ExportHost) -> None:
    """(SPEC AGENT-15)"""
    a, _ = _pair(make_agent)
    signer = new_signer()
    [a_key] = a.store.teks()
    # a heard itself (a reflection) before the payload changed: still no self-match.
    a.store.add_sightings(
        [
            SightingRecord(
                ref_rpi(a_key.key_data, int(CONTACT // 600)), bytes(4), CONTACT, 0, -40, -40, 1
            )
        ]
    )
    publish(
        host.files,
        [
            export_zip(
                signer, [confirmed(a_key.key_data, a_key.rolling_start_interval_number)], 0, 1
            )
        ],
        int(T0 + DAY),
    )
    _configure(a, host, spki(signer))
    result = a.sync(NOW)
    assert result.keys_checked == 0 and result.matched_sightings == 0
    assert a.status(NOW)["last_exposure_day"] is None


def _tamper(data: bytes) -> bytes:
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            body = src.read(info)
            if info.filename == "export.bin":
                body = body[:-1] + bytes([body[-1] ^ 0x01])
            dst.writestr(info, body)
    return out.getvalue()


def test_tampered_export_is_refused_and_reported(make_agent, host: ExportHost) -> None:
    """A file whose signature fails is not matched; the others still are. (SPEC AGENT-14)"""
    a, b = _pair(make_agent)
    signer = new_signer()
    [a_key] = a.store.teks()
    good = export_zip(
        signer, [confirmed(a_key.key_data, a_key.rolling_start_interval_number)], 0, 1
    )
    bad = _tamper(good)
    paths = publish(host.files, [bad, _zip_of(signer)], int(T0 + DAY))
    _configure(b, host, spki(signer))
    result = b.sync(NOW)
    assert result.rejected_files == {paths[0]: "export_bad_signature"}
    assert result.files_checked == 1 and result.matched_sightings == 0
    status = b.status(NOW)
    assert status["last_check_rejected_files"] == {paths[0]: "export_bad_signature"}
    assert status["last_exposure_day"] is None
    # The refused file is tried again next time; once a good copy is served, it matches.
    host.files[paths[0]] = good
    assert b.sync(NOW + 60).matched_sightings == 12


def test_wrong_signing_key_is_refused(make_agent, host: ExportHost) -> None:
    """Signed by a key the device does not trust: refused, never matched. (SPEC AGENT-14)"""
    a, b = _pair(make_agent)
    [a_key] = a.store.teks()
    paths = publish(
        host.files,
        [
            export_zip(
                new_signer(), [confirmed(a_key.key_data, a_key.rolling_start_interval_number)], 0, 1
            )
        ],
        int(T0 + DAY),
    )
    _configure(b, host, spki(new_signer()))
    result = b.sync(NOW)
    assert result.rejected_files == {paths[0]: "export_bad_signature"}
    assert result.matched_sightings == 0


def test_every_configured_key_is_tried(make_agent, host: ExportHost) -> None:
    """AGENT-14: with the old and the new signing key configured (a rotation), a file
    signed by either verifies and is matched; one signed by neither is refused."""
    a, b = _pair(make_agent)
    [a_key] = a.store.teks()
    old, new, other = new_signer(), new_signer(), new_signer()
    keys = [confirmed(a_key.key_data, a_key.rolling_start_interval_number)]
    paths = publish(
        host.files,
        [export_zip(new, keys, 0, 1), export_zip(other, [], 1, 2)],
        int(T0 + DAY),
    )
    _configure(b, host, f"{spki(old)},{spki(new)}")
    result = b.sync(NOW)
    assert result.rejected_files == {paths[1]: "export_bad_signature"}
    assert result.files_checked == 1 and result.matched_sightings == 12


def test_unsigned_matching_is_refused_without_a_configured_key(
    make_agent, host: ExportHost
) -> None:
    """(SPEC AGENT-14)"""
    _, b = _pair(make_agent, minutes=5)
    publish(host.files, [export_zip(new_signer(), [], 0, 1)], int(T0 + DAY))
    _configure(b, host, "")
    with pytest.raises(AgentConfigError, match="no export public key"):
        b.sync(NOW)


def test_server_down_mid_download_resumes_without_loss(make_agent, host: ExportHost) -> None:
    """Files done before the failure stay done; the next check resumes. (SPEC AGENT-13)"""
    a, b = _pair(make_agent)
    signer = new_signer()
    [a_key] = a.store.teks()
    paths = publish(
        host.files,
        [
            export_zip(
                signer, [confirmed(a_key.key_data, a_key.rolling_start_interval_number)], 0, 1
            ),
            _zip_of(signer),
            _zip_of(signer),
        ],
        int(T0 + DAY),
    )
    host.fail = {paths[1]}
    _configure(b, host, spki(signer))
    first = b.sync(NOW)
    assert first.interrupted is not None and "kept failing" in first.interrupted
    assert first.files_checked == 1 and first.matched_sightings == 12
    assert [p for p, _ in host.requests].count(paths[1]) == 3  # 1 try + 2 retries
    assert paths[2] not in [p for p, _ in host.requests]
    host.fail = set()
    host.requests.clear()
    second = b.sync(NOW + 600)
    assert second.files_checked == 2 and second.interrupted is None
    assert sorted(p for p, _ in host.requests if p.endswith(".zip")) == sorted(paths[1:])
    assert b.status(NOW + 600)["last_exposure_day"] == "2026-11-02"
    # Whole server down: a clear error, and the earlier result is still there.
    host.down = True
    with pytest.raises(ServerUnavailableError, match="kept failing"):
        b.sync(NOW + 1200)
    assert b.status(NOW + 1200)["last_exposure_day"] == "2026-11-02"
    assert "kept failing" in b.status(NOW + 1200)["last_check_error"]


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_transient_answers_are_retried(host: ExportHost, status: int) -> None:
    """AGENT-13: 408, 429 and 5xx answers are retried (with backoff) until the file arrives."""
    host.files["ZZ/a.zip"] = b"export bytes"
    host.answers["ZZ/a.zip"] = [status, status]
    with httpx.Client() as client:
        got = download(client, f"{host.url}/v1/exports/ZZ/a.zip", retries=2, backoff_s=0)
    assert got == b"export bytes"
    assert [p for p, _ in host.requests] == ["ZZ/a.zip"] * 3


@pytest.mark.parametrize("status", [400, 403, 404, 410])
def test_other_client_errors_are_not_retried(host: ExportHost, status: int) -> None:
    """AGENT-13: any other 4xx fails the file at once (404 as export_not_found), no retry."""
    host.files["ZZ/a.zip"] = b"export bytes"
    host.answers["ZZ/a.zip"] = [status]
    with httpx.Client() as client, pytest.raises(SyncError) as info:
        download(client, f"{host.url}/v1/exports/ZZ/a.zip", retries=2, backoff_s=0)
    assert not isinstance(info.value, ServerUnavailableError)
    assert isinstance(info.value, ExportNotFoundError) == (status == 404)
    assert [p for p, _ in host.requests] == ["ZZ/a.zip"]


def test_cut_transfer_is_resumed_with_range(host: ExportHost) -> None:
    """(SPEC AGENT-13)"""
    body = os.urandom(200_000)
    host.files["ZZ/big.zip"] = body
    host.cut["ZZ/big.zip"] = 50_000
    with httpx.Client() as client:
        got = download(client, f"{host.url}/v1/exports/ZZ/big.zip", retries=2, backoff_s=0)
    assert got == body
    ranges = [r for p, r in host.requests if p == "ZZ/big.zip"]
    assert ranges[0] is None and ranges[1] is not None and ranges[1].startswith("bytes=")
    assert int(ranges[1].removeprefix("bytes=").rstrip("-")) > 0


def test_missing_server_settings_are_clear(make_agent) -> None:
    b = make_agent("b")
    with pytest.raises(SyncError, match="no key server configured"):
        b.sync(NOW)


def test_unreachable_server(make_agent) -> None:
    b = make_agent("b")
    b.config = b.config.model_copy(
        update={
            "key_server_url": "http://127.0.0.1:9",
            "export_public_keys": spki(new_signer()),
            "download_retries": 1,
            "download_backoff_s": 0,
        }
    )
    with pytest.raises(ServerUnavailableError):
        b.sync(NOW)


@pytest.mark.parametrize(
    ("rssi", "minutes", "level", "normalized"),
    [
        # CWA by hand: a's key is CONFIRMED_TEST (offset 6) with onset today (HIGH, +2):
        # TRL 8 → value 1.6. Sightings every 5 min: the first scan counts 120 s, each
        # later one 300 s. tx power -25 dBm.
        # -60 dBm → 35 dB → weight 0.8: 1.6 × 0.8 × (120 + 11 × 300) / 60 = 72.96 → 73.0
        (-60, 60, "high", 73.0),
        # -100 dBm → 75 dB → weight 0.1: 1.6 × 0.1 × 3420 / 60 = 9.12 → 9.1 (LOW)
        (-100, 60, "low", 9.1),
        # 10 minutes at 35 dB: 1.6 × 0.8 × (120 + 300) / 60 = 8.96 → 9.0 (LOW)
        (-60, 10, "low", 9.0),
    ],
)
def test_risk_follows_the_cwa_calculation(
    make_agent, host: ExportHost, rssi: int, minutes: int, level: str, normalized: float
) -> None:
    """(SPEC AGENT-15, AGENT-16)"""
    a, b = _pair(make_agent, minutes=minutes, rssi=rssi)
    signer = new_signer()
    [a_key] = a.store.teks()
    publish(host.files, [_zip_of(signer, a_key)], int(T0 + DAY))
    _configure(b, host, spki(signer))
    result = b.sync(NOW)
    assert result.risk_level == level
    assert result.days == {"2026-11-02": (level, normalized)}
    assert b.status(NOW)["risk_level"] == level


def test_rising_risk_notifies_once(
    make_agent, host: ExportHost, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A desktop notification when the level rises, not again while it stays. (SPEC AGENT-16)"""
    from .test_daemon import _fake_notify_send

    log = _fake_notify_send(tmp_path, monkeypatch)
    a, b = _pair(make_agent)
    signer = new_signer()
    [a_key] = a.store.teks()
    _configure(b, host, spki(signer), desktop_notifications=True)
    publish(host.files, [_zip_of(signer)], int(T0 + DAY))  # someone else's key
    assert b.sync(NOW).risk_level == "low"
    assert not log.exists()
    publish(host.files, [_zip_of(signer, a_key)], int(T0 + DAY) + 7200)
    assert b.sync(NOW + 60).risk_level == "high"
    assert b.sync(NOW + 120).risk_level == "high"
    lines = log.read_text().splitlines()
    assert len(lines) == 1 and "2026-11-02" in lines[0]


async def test_check_in_a_child_process_shares_the_store(make_agent, host: ExportHost) -> None:
    """The daemon's isolated check: ``phe-trace agent sync`` on the same store. (SPEC AGENT-13)"""
    a, b = _pair(make_agent)
    signer = new_signer()
    [a_key] = a.store.teks()
    # (The child runs on the real clock, so its retention purge drops this old contact
    # and the file is named for the last hour of that clock, which a device recording
    # now can match (SCALE-8); what is checked here is that the child's check lands in
    # the shared store.)
    publish(host.files, [_zip_of(signer, a_key)], int(time.time()) // 3600 * 3600 - 3600)
    _configure(b, host, spki(signer))
    await b._sync_in_child()
    last = b.store.get_meta("last_check")
    assert last is not None and last["files_checked"] == 1 and last["error"] is None
    host.down = True
    await b._sync_in_child()  # fails in the child; logged, nothing raised here
    assert "kept failing" in b.store.get_meta("last_check")["error"]


def test_no_index_yet_is_nothing_published(make_agent, host: ExportHost) -> None:
    """No index yet (404) is not a failed check (SPEC AGENT-13, EXP-14)."""
    b = make_agent("b", now=T0)
    _configure(b, host, spki(new_signer()))
    result = b.sync(NOW)
    assert result.nothing_published and result.files_checked == 0
    assert result.risk_level == "low"
    assert b.status(NOW)["last_check_error"] is None
    host.files["ZZ/index.txt"] = b""  # an empty index (SPEC EXP-14) says the same
    assert b.sync(NOW).nothing_published
    host.files["ZZ/0-1-00001.zip"] = b"not listed, never fetched"
    host.files["ZZ/index.txt"] = b"ZZ/0-1-00001.zip"
    assert not b.sync(NOW).nothing_published


def test_a_missing_listed_file_still_fails(make_agent, host: ExportHost) -> None:
    """Only the index may be absent: a listed file that is 404 is a refused file, recorded
    and tried again at the next check. (SPEC AGENT-13, AGENT-14)"""
    b = make_agent("b", now=T0)
    _configure(b, host, spki(new_signer()))
    name = export.export_file_name("ZZ", int(T0 + DAY), int(T0 + DAY) + 3600, 1)
    host.files["ZZ/index.txt"] = name.encode()
    result = b.sync(NOW)
    assert result.rejected_files == {name: "export_not_found"}
    assert not result.nothing_published


def _split_batch(signer: export.EcdsaSigner, key: StoredKey, start: int) -> list[bytes]:
    """A batch split in two files: ``key`` in file 1, a random key in file 2."""
    keys = (
        [confirmed(key.key_data, key.rolling_start_interval_number)],
        [confirmed(os.urandom(16), key.rolling_start_interval_number)],
    )
    return [
        export.build_export_zip(
            export.TemporaryExposureKeyExport(
                start, start + 3600 + n, "ZZ", keys=tuple(ks), batch_num=n, batch_size=2
            ),
            [signer],
        )
        for n, ks in enumerate(keys, start=1)
    ]


def test_an_incomplete_split_batch_is_not_matched(make_agent, host: ExportHost) -> None:
    """File 1 of a batch of 2 served alone — signed by the trusted key — is refused
    (``export_batch_incomplete``) and not marked processed; once file 2 is listed too,
    the batch is matched. (SPEC EXP-11, AGENT-14)"""
    a, b = _pair(make_agent)
    signer = new_signer()
    [a_key] = a.store.teks()
    start = int(T0 + DAY)
    first, second = _split_batch(signer, a_key, start)
    names = [export.export_file_name("ZZ", start, start + 3600 + n, n) for n in (1, 2)]
    host.files[names[0]] = first
    host.files["ZZ/index.txt"] = export.format_index(names[:1])
    _configure(b, host, spki(signer))
    result = b.sync(NOW)
    assert result.rejected_files == {names[0]: "export_batch_incomplete"}
    assert result.matched_sightings == 0 and result.files_checked == 0
    assert b.status(NOW)["last_exposure_day"] is None
    host.files[names[1]] = second
    host.files["ZZ/index.txt"] = export.format_index(names)
    result = b.sync(NOW + 60)
    assert result.rejected_files == {} and result.files_checked == 2
    assert result.matched_sightings == 12


def test_a_batch_cut_by_an_interrupted_download_waits(make_agent, host: ExportHost) -> None:
    """File 2 of a split batch unavailable: file 1 is neither matched nor refused, and
    both are fetched at the next check. (SPEC EXP-11, AGENT-13)"""
    a, b = _pair(make_agent)
    signer = new_signer()
    [a_key] = a.store.teks()
    start = int(T0 + DAY)
    names = [export.export_file_name("ZZ", start, start + 3600 + n, n) for n in (1, 2)]
    host.files.update(zip(names, _split_batch(signer, a_key, start), strict=True))
    host.files["ZZ/index.txt"] = export.format_index(names)
    host.fail.add(names[1])
    _configure(b, host, spki(signer))
    result = b.sync(NOW)
    assert result.interrupted is not None and result.rejected_files == {}
    assert result.matched_sightings == 0
    host.fail.clear()
    assert b.sync(NOW + 60).matched_sightings == 12
