"""One retention rule over everything the agent keeps, proven on the store's own rows.

An agent ``b`` hears a neighbour ``a`` for an hour every day for 20 simulated days
(sim radio), checks for exposures against signed exports on a real HTTP server (``a``
publishes its key of the day before, every day), takes part in the aggregate statistics
through a real key server (SQLite, its own signing key, uvicorn), and sees its clock go
back twice. Afterwards every row of its SQLite file is opened with the store's key file
and every time in it — keys, sightings, check results, kept matches, processed export
files, open keys, warnings, statistics reports, the last step — is compared with the
rule: nothing may be dated before the first UTC day kept (``retention_days - 1`` days
before the last one), so nothing is older than ``retention_days × 24 h``.
(SPEC AGENT-9)
"""

from __future__ import annotations

import base64
import json
import os
import random
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from nacl.public import PrivateKey

from phe_trace.agent import Agent, AgentConfig, AgentStore
from phe_trace.agent import analytics as steps
from phe_trace.agent.radio.sim import SimRadio
from phe_trace.agent.records import decode_sightings, decode_tek
from phe_trace.agent.store import META_NAMES
from phe_trace.analytics.config import CONFIG_FORMAT
from phe_trace.clock import SettableClock
from phe_trace.crypto import SealingKey
from phe_trace.protocol import export
from phe_trace.server import ServerContext
from phe_trace.server import create_app as create_keyserver_app
from phe_trace.server.analytics_ingest import IngestStore
from phe_trace.server.routers.analytics_config import CONFIG_FILE
from phe_trace.server.signing import load_signing_keys
from phe_trace.serving import LoopbackServer, serve
from tests.server.conftest import make_settings

from .conftest import T0
from .exports import REGION, confirmed, export_zip, new_signer, spki
from .http_host import ExportHost

DAY = 86_400
D0 = int(T0 // DAY)
DAYS = 20
#: The server side keeps export files this long (PUB-32), and drops them from its index.
SERVER_RETENTION_S = 14 * DAY
#: The store's row tables (each row with a UTC day in clear).
ROW_TABLES = ("tek", "sighting_window", "check_result")


# -- the world: an export host and a key server with the statistics configuration ----------


@dataclass
class World:
    host: ExportHost
    signer: export.EcdsaSigner
    keyserver_url: str
    keyserver_key: str
    clock: SettableClock
    #: Export path → when it was published.
    published: dict[str, float] = field(default_factory=dict)

    def publish(self, keys: list[Any], now: float) -> str:
        """One signed export of ``keys`` at ``now``; the index lists the files the server
        still keeps."""
        path = export.export_file_name(REGION, int(now) - 3600, int(now), 1)
        self.host.files[path] = export_zip(self.signer, keys, int(now) - 3600, int(now))
        self.published[path] = now
        self.expire(now)
        return path

    def expire(self, now: float) -> None:
        for path, at in list(self.published.items()):
            if at < now - SERVER_RETENTION_S:
                del self.published[path], self.host.files[path]
        self.host.files[export.index_file_name(REGION)] = export.format_index(
            sorted(self.published)
        )

    def downloads(self) -> list[str]:
        return [p for p, _ in self.host.requests if p.endswith(".zip")]


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    clock = SettableClock(T0)
    settings = make_settings(tmp_path / "ks", None)
    ctx = ServerContext.open(settings, clock=clock)
    IngestStore(ctx.engine)
    doc = {
        "format": CONFIG_FORMAT,
        "leader": {"url": "http://leader.invalid", "public_key": _aggregator_key()},
        "helper": {"url": "http://helper.invalid", "public_key": _aggregator_key()},
        "min_batch_size": 3,
        "budget_period_days": 14,
        "metrics": {
            m: {"epsilon_per_day": 1.0, "budget": 14.0}
            for m in ("notified", "risk_level", "days_to_notification", "reported_positive")
        },
    }
    (settings.data_dir / CONFIG_FILE).write_text(json.dumps(doc))
    key = load_signing_keys(settings.signing_key_dir, settings.signing_key_id)[0]
    host = ExportHost()
    try:
        with LoopbackServer(create_keyserver_app(context=ctx)) as ks, serve(host) as url:
            host.url = url
            yield World(
                host,
                new_signer(),
                ks.url,
                base64.b64encode(key.public_key_der).decode(),
                clock,
            )
    finally:
        ctx.close()


def _aggregator_key() -> str:
    return base64.b64encode(bytes(PrivateKey.generate().public_key)).decode()


def _agent(tmp_path: Path, world: World, name: str, seed: int, **settings: Any) -> Agent:
    config = AgentConfig(
        data_dir=tmp_path / name,
        radio="sim",
        key_server_url=world.keyserver_url,
        export_base_url=f"{world.host.url}/v1/exports/",
        export_public_keys=f"{spki(world.signer)},{world.keyserver_key}",
        download_backoff_s=0.0,
        desktop_notifications=False,
        **settings,
    )
    return Agent.open(config, now=T0, radio=SimRadio(), rng=random.Random(seed))


@dataclass
class Run:
    a: Agent
    b: Agent
    #: When ``b`` last ran.
    end: float
    #: ``b``'s data directory.
    directory: Path


def _live(
    tmp_path: Path,
    world: World,
    check_days: range,
    *,
    days: int = DAYS,
    clock_back_days: tuple[int, ...] = (),
    analytics: bool = True,
    **settings: Any,
) -> Run:
    """``b`` hears ``a`` 10:00–11:00 every day; on ``check_days`` ``a``'s key of the day
    before is published at 06:00, then ``b`` checks for exposures and does its
    statistics step at 07:00 (opted in on the first check day)."""
    a = _agent(tmp_path, world, "a", 1, **settings)
    b = _agent(tmp_path, world, "b", 2, **settings)
    for day in range(days):
        start = T0 + day * DAY
        if day in check_days:
            world.clock.t = start + 6 * 3600
            keys = [
                confirmed(k.key_data, k.rolling_start_interval_number)
                for k in a.store.teks()
                if k.rolling_start_interval_number // 144 == D0 + day - 1
            ]
            world.publish(keys, start + 6 * 3600)
            b.sync(start + 6 * 3600)
            world.clock.t = start + 7 * 3600
            if analytics and day == check_days[0]:
                with httpx.Client() as client:
                    steps.enable(b.store, steps.fetch_config(b.config, client), start + 7 * 3600)
            if analytics:
                b.analytics_step(start + 7 * 3600)
        else:
            world.expire(start + 6 * 3600)
        t = start + 10 * 3600
        while t < start + 11 * 3600:
            a.tick(t)
            b.tick(t)
            b.radio.inject(a.radio.current_payload(), rssi=-60, unix_time=t)  # type: ignore[union-attr]
            t += 300
        if day in clock_back_days:
            b.tick(start + 12 * 3600)
            b.tick(start + 9 * 3600)  # three hours back: a warning (AGENT-11)
        a.tick(start + 23 * 3600)
        b.tick(start + 23 * 3600)
    end = T0 + (days - 1) * DAY + 23 * 3600
    a.close()
    b.close()
    return Run(a, b, end, tmp_path / "b")


# -- reading every row of the store with its own key -----------------------------------------


def _dated(name: str, value: dict[str, Any]) -> list[float]:
    """Every time in a state record, as unix seconds, read from the agent's own formats."""
    times: list[float] = []

    def walk(item: Any) -> None:
        if isinstance(item, list):
            for v in item:
                walk(v)
        elif isinstance(item, dict):
            for k, v in item.items():
                number = isinstance(v, int | float) and not isinstance(v, bool)
                if number and (k in ("at", "last_now", "due", "next_try") or k.endswith("_at")):
                    times.append(float(v))
                elif number and k in ("day", "prepared_through"):
                    times.append(float(v) * DAY)
                else:
                    walk(v)

    walk(value)
    if name == "matches":
        times += [float(m["sighting"]["unix_time"]) for m in value.get("items", [])]
    if name == "sync":
        processed = value.get("processed", {})
        assert isinstance(processed, dict), "processed export files carry no time"
        times += [float(t) for t in processed.values()]
        for files in value.get("regions", {}).values():
            assert isinstance(files, dict), "a region's processed files carry no time"
            times += [float(t) for t in files.values()]
        columns = value.get("open_keys", {})  # named columns, one value per open key
        times += [
            float((start + period) * 600)
            for start, period in zip(
                columns.get("rolling_start_interval_number", []),
                columns.get("rolling_period", []),
                strict=True,
            )
        ]
    if name == "warnings":
        assert all(isinstance(w, dict) for w in value.get("items", [])), "a warning has no time"
    if name == "analytics_outbox":
        times += [float(int(k.split("/")[0]) * DAY) for k in value.get("boxes", {})]
    return times


def _open_everything(directory: Path) -> tuple[dict[str, list[float]], dict[str, Any]]:
    """Every row of the database opened with ``store.key``: the times per record kind,
    and the opened state records."""
    key = SealingKey((directory / "store.key").read_bytes())
    conn = sqlite3.connect(directory / "agent.sqlite3")
    try:
        tables = {n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert tables == {"meta", "tek", "sighting_window", "check_result"}, tables
        times: dict[str, list[float]] = {t: [] for t in ROW_TABLES}
        for (sealed,) in conn.execute("SELECT sealed FROM tek"):
            k = decode_tek(key.open("tek", sealed))
            times["tek"].append(float(k.rolling_start_interval_number * 600))
        for (sealed,) in conn.execute("SELECT sealed FROM sighting_window"):
            times["sighting_window"] += [
                s.unix_time for s in decode_sightings(key.open("sightings", sealed))
            ]
        for (sealed,) in conn.execute("SELECT sealed FROM check_result"):
            times["check_result"].append(float(json.loads(key.open("check", sealed))["at"]))
        meta: dict[str, Any] = {}
        for name, sealed in conn.execute("SELECT name, sealed FROM meta"):
            plain = key.open(f"meta/{name}", sealed)
            if name == "store":
                assert plain.startswith(b"phe-trace agent store")
                continue
            meta[name] = json.loads(plain)
            times[f"meta/{name}"] = _dated(name, meta[name])
    finally:
        conn.close()
    assert set(meta) == set(META_NAMES)
    return times, meta


def _assert_nothing_older(times: dict[str, list[float]], end: float, retention_days: int) -> None:
    first_kept = (int(end // DAY) - retention_days + 1) * DAY
    assert first_kept > end - retention_days * DAY
    old = {kind: min(ts) for kind, ts in times.items() if ts and min(ts) < first_kept}
    assert old == {}, f"kept from before {first_kept}: {old}"


# -- the tests --------------------------------------------------------------------------------


def test_twenty_days_with_daily_checks_keep_nothing_older_than_retention(
    tmp_path: Path, world: World
) -> None:
    """20 days of hearing, daily checks, statistics and two clock warnings: every row of
    the store, opened with its key, is from the last 14 UTC days — and all of those are
    still there; every file is downloaded once (SPEC AGENT-9, AGENT-15, SCALE-8)."""
    run = _live(tmp_path, world, range(1, DAYS), clock_back_days=(2, 18))
    times, meta = _open_everything(run.directory)
    _assert_nothing_older(times, run.end, 14)
    last = int(run.end // DAY)
    first = last - 13
    # Not over-eager: the last 14 days of everything are kept.
    assert {int(t // DAY) for t in times["tek"]} == set(range(first, last + 1))
    assert {int(t // DAY) for t in times["sighting_window"]} == set(range(first, last + 1))
    assert {int(t // DAY) for t in times["check_result"]} == set(range(first, last + 1))
    matched_days = {int(m["sighting"]["unix_time"] // DAY) for m in meta["matches"]["items"]}
    assert matched_days == set(range(first, last))  # day 19's key is not published yet
    processed = meta["sync"]["processed"]
    # a record is dated by its check, or later by what its name allows (SCALE-8): up to
    # the day after the last check
    days = {int(t // DAY) for t in processed.values()}
    assert set(range(first + 1, last + 1)) <= days <= set(range(first, last + 2))
    assert set(world.published) <= set(processed)  # every file still listed is known
    assert [w["message"][:20] for w in meta["warnings"]["items"]] == ["the clock went back "]
    report_days = {r["day"] for r in meta["analytics"]["reports"]}
    assert report_days and min(report_days) == first
    assert meta["state"]["last_now"] == run.end
    # A file the server still lists on the day its record expires is skipped, not
    # downloaded a second time (SCALE-8).
    downloads = world.downloads()
    assert len(set(downloads)) == DAYS - 1
    assert all(downloads.count(p) == 1 for p in downloads)


def test_twenty_days_without_checks_keep_nothing_older_than_retention(
    tmp_path: Path, world: World
) -> None:
    """Checks and statistics on days 1–3 only, then 16 days of hearing alone: the
    matches, processed files, check results, last check, notification, statistics
    reports and warnings of those days are gone with everything else (SPEC AGENT-9)."""
    run = _live(tmp_path, world, range(1, 4), clock_back_days=(2,))
    times, meta = _open_everything(run.directory)
    _assert_nothing_older(times, run.end, 14)
    assert times["tek"] and times["sighting_window"]
    assert times["check_result"] == []
    assert meta["matches"].get("items", []) == []
    assert meta["sync"].get("processed", {}) == {} and not meta["sync"].get("open_keys", {}).get(
        "key_data"
    )
    assert meta["last_check"] == {} and meta["notified"] == {}
    assert meta["warnings"].get("items", []) == []
    assert meta["analytics"]["reports"] == [] and meta["analytics"]["enabled"]
    assert meta["analytics_outbox"].get("boxes", {}) == {}


def test_kept_matches_expire_without_another_check(tmp_path: Path, world: World) -> None:
    """A match found by one check is dropped by the daily purge once its sighting is
    older than the retention period, with no further check; the risk goes with it
    (SPEC AGENT-9, AGENT-15)."""
    run = _live(tmp_path, world, range(1, 2), days=3)
    day13 = T0 + 13 * DAY + 23 * 3600
    b = Agent.open(run.b.config, now=day13, radio=SimRadio())
    found = b.store.get_meta("matches")["items"]
    assert found and {int(m["sighting"]["unix_time"] // DAY) for m in found} == {
        D0
    }  # day 13: still kept
    assert b.status(day13)["last_exposure_day"] == "2026-11-02"
    b.tick(T0 + 14 * DAY + 60)  # the first tick of day 14: day 0 is no longer kept
    assert b.store.get_meta("matches")["items"] == []
    assert b.status(T0 + 14 * DAY + 60)["last_exposure_day"] is None
    b.close()
    _assert_nothing_older(_open_everything(run.directory)[0], T0 + 14 * DAY + 60, 14)


def test_matches_follow_the_configured_retention_not_14_days(tmp_path: Path, world: World) -> None:
    """With ``retention_days`` 7 a match is dropped after 7 days, also by the checks that
    run meanwhile (SPEC AGENT-9)."""
    run = _live(tmp_path, world, range(1, 10), days=10, analytics=False, retention_days=7)
    store = AgentStore.open(run.directory)
    kept = store.get_meta("matches")["items"]
    store.close()
    assert {int(m["sighting"]["unix_time"] // DAY) for m in kept} == set(range(D0 + 3, D0 + 9))
    _assert_nothing_older(_open_everything(run.directory)[0], run.end, 7)


def test_processed_export_files_expire(tmp_path: Path, world: World) -> None:
    """The record of processed export files holds a file only while the retention rule
    keeps its date: its check, or the time its name still allows a match (a day after
    the window), when later — so a file checked on day 2 is gone on day 17 (SPEC AGENT-9,
    AGENT-13, SCALE-8)."""
    run = _live(tmp_path, world, range(1, 3), days=18)
    checked = set(world.downloads())
    assert len(checked) == 2
    store = AgentStore.open(run.directory)
    processed = store.get_meta("sync")["processed"]
    store.close()
    assert checked.isdisjoint(processed)
    assert _open_everything(run.directory)[1]["sync"]["processed"] == {}


def test_old_stored_forms_are_read_and_then_expire(tmp_path: Path, world: World) -> None:
    """A store written before processed files and warnings carried a time (bare lists of
    names, home's and a region's; bare strings) is read as before: a listed file is not
    downloaded again, and all are dated by the first purge, so they expire with the rule
    (SPEC AGENT-9)."""
    path = world.publish([confirmed(os.urandom(16), D0 * 144)], T0 + 3600)
    b = _agent(tmp_path, world, "b", 2)
    b.store.put_meta("sync", {"processed": [path], "regions": {"FR": ["FR/1.zip"]}})
    b.store.put_meta("warnings", {"items": ["the clock went back by 600 s"]})
    b.close()
    opened_at = T0 + 2 * DAY
    b = Agent.open(b.config, now=opened_at, radio=SimRadio())
    assert b.store.get_meta("sync")["processed"] == {path: opened_at}
    assert b.store.get_meta("sync")["regions"] == {"FR": {"FR/1.zip": opened_at}}
    assert b.status(opened_at)["warnings"] == ["the clock went back by 600 s"]
    result = b.sync(opened_at + 60)
    assert result.files_checked == 0 and world.downloads() == []
    b.tick(opened_at + 13 * DAY)
    assert b.store.get_meta("sync")["processed"] == {path: opened_at}  # day 13 of 14
    b.tick(opened_at + 14 * DAY)
    assert b.store.get_meta("sync")["processed"] == {}
    assert b.store.get_meta("warnings")["items"] == []
    b.close()


def test_the_retention_table_names_every_record_of_the_store(tmp_path: Path) -> None:
    """One table dates everything the store can hold: every row table and every state
    record has its rule (SPEC AGENT-9)."""
    from phe_trace.agent.retention import RULES

    assert {r.record for r in RULES} == {
        *ROW_TABLES,
        "meta/store",
        "meta/regions",  # written by `region add` only
        *(f"meta/{n}" for n in META_NAMES),
    }
    config = AgentConfig(data_dir=tmp_path / "s", radio="sim")
    Agent.open(config, now=T0).close()
    conn = sqlite3.connect(tmp_path / "s" / "agent.sqlite3")
    tables = {n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    names = {n for (n,) in conn.execute("SELECT name FROM meta")}
    conn.close()
    assert tables - {"meta"} == set(ROW_TABLES)
    assert {f"meta/{n}" for n in names} <= {r.record for r in RULES}
