"""Typed, versioned state records: a store written before records carried a version (a kept
match and an open key as positional lists) is read as it was meant, and saved again as
named JSON with its version (SPEC AGENT-7, AGENT-9, AGENT-15)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from phe_trace.agent import Agent, AgentConfig
from phe_trace.agent.radio.sim import SimRadio
from phe_trace.agent.risk import windows
from phe_trace.agent.state import (
    RECORDS,
    AnalyticsState,
    KeptMatch,
    Matches,
    Notified,
    Outbox,
    ReportState,
    StepState,
    SyncState,
    Warnings,
)
from phe_trace.agent.store import META_PAD, AgentStore
from phe_trace.crypto import SealingKey

DAY = 86_400
T0 = 1_790_000_000.0  # 2026-09-22, mid-day
KEY = "0f" * 16
RPI = "a1" * 16
AEM = "b2" * 4
HEARD = T0 - 3 * DAY

#: State records exactly as the code before typed records wrote them: ``json.dumps`` with
#: sorted keys, padded with spaces to a multiple of 4096 bytes, sealed under meta/<name>.
OLD_RECORDS = {
    "matches": (
        '{"items": [{"j": 2983328, "k": ["' + KEY + '", 2983248, 144, 0, 1, 3], "m": "40f40000",'
        ' "s": ["' + RPI + '", "' + AEM + '", -60, ' + repr(HEARD) + ", 0, 0]}]}"
    ),
    "sync": (
        '{"open_keys": [["'
        + KEY
        + '", 2983248, 144, 0, 1, 3]], "processed": {"1.zip": '
        + repr(T0 - DAY)
        + '}, "regions": {"FR": ["FR/1.zip"]}}'
    ),
    "state": '{"last_now": ' + repr(T0 - 60) + "}",
    "notified": '{"at": ' + repr(T0 - DAY) + ', "level": "high"}',
    "report": (
        '{"keys_sent": 14, "published_at": '
        + repr(T0 - 2 * DAY)
        + ', "revision_token": "rev-1", "test_type": "confirmed"}'
    ),
    "warnings": '{"items": ["an old bare warning", {"at": '
    + repr(T0 - DAY)
    + ', "message": "the clock went back by 600 s"}]}',
    "analytics": (
        '{"enabled": true, "error": null, "params": {"metrics": {"notified": [1.0, 14.0]},'
        ' "min_batch_size": 10, "period_days": 14}, "pin": {"leader_url": "https://l"},'
        ' "prepared_through": 20716, "reports": [{"day": 20716, "due": '
        + repr(T0 - DAY + 5)
        + ', "epsilon": 1.0, "metric": "notified", "sent_at": null, "value": 0}]}'
    ),
    "analytics_outbox": (
        '{"boxes": {"20716/notified": {"attempts": 2, "due": '
        + repr(T0 - DAY + 5)
        + ', "helper": "SEVMUEVS", "leader": "TEVBREVS", "next_try": '
        + repr(T0 + 60)
        + "}}}"
    ),
}


def _write_old(data_dir: Path) -> None:
    """Put the old records into a store, sealed by hand (no state-record code involved)."""
    AgentStore.open(data_dir).close()  # the store file, its key and its key check record
    key = SealingKey.load_or_create(data_dir / "store.key")
    conn = sqlite3.connect(data_dir / "agent.sqlite3")
    with conn:
        for name, text in OLD_RECORDS.items():
            json.loads(text)  # the test's own check that the old text is JSON
            plain = text.encode() + b" " * (-len(text) % 4096)
            conn.execute(
                "INSERT OR REPLACE INTO meta (name, sealed) VALUES (?, ?)",
                (name, key.seal(f"meta/{name}", plain)),
            )
    conn.close()


def test_records_written_before_versions_are_read(tmp_path: Path) -> None:
    """Every old record reads as what it held: the positional match and open key by field,
    the bare-list processed files and the bare-string warning as undated (SPEC AGENT-7)."""
    assert META_PAD == 4096
    _write_old(tmp_path)
    store = AgentStore.open(tmp_path)
    [match] = store.load(Matches).items
    assert isinstance(match, KeptMatch)
    assert match.key.key_data == bytes.fromhex(KEY)
    assert match.key.rolling_start_interval_number == 2983248
    assert match.key.rolling_period == 144
    assert match.key.report_type == 1 and match.key.days_since_onset_of_symptoms == 3
    assert match.sighting.rpi == bytes.fromhex(RPI) and match.sighting.aem == bytes.fromhex(AEM)
    assert match.sighting.rssi == -60 and match.sighting.unix_time == HEARD
    assert match.interval == 2983328 and match.metadata == bytes.fromhex("40f40000")
    sync = store.load(SyncState)
    assert [k.key_data for k in sync.open_keys] == [bytes.fromhex(KEY)]
    assert sync.open_keys[0].valid_until == (2983248 + 144) * 600
    assert sync.processed == {"1.zip": T0 - DAY}
    assert sync.regions == {"FR": {"FR/1.zip": None}}
    assert store.load(StepState).last_now == T0 - 60
    assert store.load(Notified) == Notified(level="high", at=T0 - DAY)
    assert store.load(ReportState) == ReportState(T0 - 2 * DAY, "rev-1", "confirmed", 14)
    warnings = store.load(Warnings)
    assert [(w.at, w.message) for w in warnings.items] == [
        (None, "an old bare warning"),
        (T0 - DAY, "the clock went back by 600 s"),
    ]
    analytics = store.load(AnalyticsState)
    assert analytics.enabled and analytics.prepared_through == 20716
    assert [(r.day, r.metric, r.sent_at) for r in analytics.reports] == [(20716, "notified", None)]
    box = store.load(Outbox).boxes["20716/notified"]
    assert box.attempts == 2 and box.leader == "TEVBREVS" and box.next_try == T0 + 60
    store.close()


def test_an_agent_on_an_old_store_uses_it_and_saves_the_current_version(tmp_path: Path) -> None:
    """An agent opened on the old records shows the exposure the old match is, keeps the
    open key, dates the undated items by its first purge, and writes back named JSON with
    a version (SPEC AGENT-9, AGENT-15, AGENT-16)."""
    _write_old(tmp_path)
    config = AgentConfig(data_dir=tmp_path, radio="sim")
    agent = Agent.open(config, now=T0, radio=SimRadio())
    [window] = windows(agent.store, T0, retention_days=14)  # the old match, as a window
    assert window.day == int(HEARD // DAY) and int(window.report_type) == 1
    status = agent.status(T0)
    assert status["reported"] == "2026-09-19T14:13:20+00:00"
    assert status["warnings"] == ["an old bare warning", "the clock went back by 600 s"]
    assert status["analytics"]["participating"] and status["analytics"]["reports_waiting"] == 1
    sync = agent.store.get_meta("sync")
    assert sync is not None and sync["version"] == SyncState.VERSION
    assert sync["regions"] == {"FR": {"FR/1.zip": T0}}  # dated by the first purge
    assert sync["open_keys"] == {  # named columns, one value per key (version 2)
        "key_data": KEY,
        "rolling_start_interval_number": [2983248],
        "rolling_period": [144],
        "transmission_risk_level": [0],
        "report_type": [1],
        "days_since_onset_of_symptoms": [3],
    }
    warnings = agent.store.get_meta("warnings")
    assert warnings is not None and warnings["items"][0] == {
        "at": T0,
        "message": "an old bare warning",
    }
    agent.store.save(agent.store.load(Matches))
    saved = agent.store.get_meta("matches")
    assert saved is not None and saved["version"] == Matches.VERSION
    assert saved["items"][0]["sighting"]["unix_time"] == HEARD
    assert saved["items"][0]["key"]["key_data"] == KEY
    agent.close()


def test_open_keys_of_version_1_are_read_and_saved_as_columns(tmp_path: Path) -> None:
    """A sync record of version 1 (an object per open key) reads as the same keys; saved
    again it is version 2, its open keys as columns in the same order (SPEC AGENT-7)."""
    other = "e1" * 16
    v1 = {
        "version": 1,
        "processed": {"1.zip": T0 - DAY},
        "regions": {},
        "open_keys": [
            {
                "key_data": KEY,
                "rolling_start_interval_number": 2983248,
                "rolling_period": 144,
                "transmission_risk_level": 0,
                "report_type": 1,
                "days_since_onset_of_symptoms": 3,
            },
            {
                "key_data": other,
                "rolling_start_interval_number": 2983392,
                "rolling_period": 72,
                "transmission_risk_level": 2,
                "report_type": 2,
                "days_since_onset_of_symptoms": None,
            },
        ],
    }
    store = AgentStore.open(tmp_path)
    store.put_meta("sync", v1)
    sync = store.load(SyncState)
    assert [(k.key_data.hex(), k.rolling_period, k.days_since_onset_of_symptoms) for k in
            sync.open_keys] == [(KEY, 144, 3), (other, 72, None)]  # fmt: skip
    assert sync.open_keys[1].valid_until == (2983392 + 72) * 600
    store.save(sync)
    saved = store.get_meta("sync")
    assert saved is not None and saved["version"] == 2
    assert saved["open_keys"] == {
        "key_data": KEY + other,
        "rolling_start_interval_number": [2983248, 2983392],
        "rolling_period": [144, 72],
        "transmission_risk_level": [0, 2],
        "report_type": [1, 2],
        "days_since_onset_of_symptoms": [3, None],
    }
    store.close()
    again = AgentStore.open(tmp_path)  # a new store decodes the columns it finds
    assert again.load(SyncState).open_keys == sync.open_keys
    again.close()


@pytest.mark.parametrize(
    "columns",
    [
        {"key_data": KEY, "rolling_start_interval_number": [1, 2]},  # lengths differ
        {"key_data": KEY[:-2]},  # not whole keys
        {"key_data": KEY, "rolling_start_interval_number": ["1"]},  # not an integer
    ],
)
def test_malformed_open_key_columns_are_refused(tmp_path: Path, columns: dict[str, object]) -> None:
    """Columns that do not make whole keys are a malformed record, not a guess."""
    from phe_trace.agent.errors import StoreError

    full = {
        "rolling_start_interval_number": [2983248],
        "rolling_period": [144],
        "transmission_risk_level": [0],
        "report_type": [1],
        "days_since_onset_of_symptoms": [None],
    }
    store = AgentStore.open(tmp_path)
    store.put_meta("sync", {"version": 2, "open_keys": {**full, **columns}})
    with pytest.raises(StoreError, match="malformed"):
        store.load(SyncState)
    store.close()


def test_a_record_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    """A record written by a later version is not guessed at: the store says so."""
    from phe_trace.agent.errors import StoreError

    store = AgentStore.open(tmp_path)
    store.put_meta("matches", {"version": Matches.VERSION + 1, "items": []})
    with pytest.raises(StoreError, match="unknown version"):
        store.load(Matches)
    store.close()


def test_every_record_has_a_version_and_a_migration_to_it() -> None:
    """Each kind of state record names its version and can migrate every older one."""
    for name, kind in RECORDS.items():
        assert kind.NAME == name
        assert set(kind.MIGRATIONS) == set(range(kind.VERSION)), name
        assert kind.from_json(kind().to_json()) == kind()


def test_the_retention_table_dates_every_kind_of_state_record() -> None:
    """No kind of state record escapes retention: each has its rule (SPEC AGENT-9)."""
    from phe_trace.agent.retention import RULES

    assert {f"meta/{name}" for name in RECORDS} <= {r.record for r in RULES}


def test_a_loaded_record_is_the_stored_one_and_shares_nothing_mutable(tmp_path: Path) -> None:
    """AGENT-7: a record is decoded once per stored row, and every load is a copy: changing
    what a load returned (a list, a dict, a mutable item inside) changes neither the store
    nor the next load, until it is saved."""
    _write_old(tmp_path)
    store = AgentStore.open(tmp_path)
    first = store.load(AnalyticsState)
    first.reports[0].sent_at = T0  # a mutable item inside a list
    first.reports.append(first.reports[0])
    assert store.load(AnalyticsState).reports[0].sent_at is None
    assert len(store.load(AnalyticsState).reports) == 1
    for _ in range(2):  # loads of the record decoded before: copies too
        cached = store.load(AnalyticsState)
        assert cached.reports[0].sent_at is None
        cached.reports[0].sent_at = T0
        cached.reports.clear()
    outbox = store.load(Outbox)
    outbox.boxes["20716/notified"].attempts = 9
    outbox.boxes.clear()
    assert store.load(Outbox).boxes["20716/notified"].attempts == 2
    sync = store.load(SyncState)
    sync.open_keys.clear()
    sync.regions["FR"]["FR/2.zip"] = T0
    again = store.load(SyncState)
    assert [k.key_data for k in again.open_keys] == [bytes.fromhex(KEY)]
    assert again.regions == {"FR": {"FR/1.zip": None}}
    store.save(sync)  # a save is what the next load reads, and a copy of it too
    sync.processed.clear()
    saved = store.load(SyncState)
    assert saved.open_keys == [] and saved.regions["FR"]["FR/2.zip"] == T0
    assert saved.processed == {"1.zip": T0 - DAY}
    store.close()


def test_a_record_another_process_saved_is_read_again(tmp_path: Path) -> None:
    """AGENT-7: a load reads the row as stored now: a record saved by another store on the
    same files (``agent status`` or a report while the daemon runs) replaces the one this
    store decoded before."""
    _write_old(tmp_path)
    daemon = AgentStore.open(tmp_path)
    assert daemon.load(Notified) == Notified(level="high", at=T0 - DAY)
    other = AgentStore.open(tmp_path)
    other.save(Notified(level="low", at=T0))
    other.close()
    assert daemon.load(Notified) == Notified(level="low", at=T0)
    daemon.close()
