"""The portal's community statistics, read over HTTP from the operators that released them.

A key server (uvicorn, SQLite file) ingests sealed reports and serves its released key
counts; a helper and a leader aggregator (each its own key, SQLite file and uvicorn server)
collect two days: one with enough reports (released) and one below the minimum batch (not
released). The verification service runs on its own uvicorn server configured with the
leader's and the key server's URLs. What the page and the downloads show is compared with
what the leader and the key server publish themselves, and with the key counts written.
"""

from __future__ import annotations

import csv
import io
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from nacl.public import PrivateKey

from phe_trace.aggregator import Aggregator, AggregatorSettings, BatchTooSmall, create_app
from phe_trace.analytics.dp import interval_halfwidth
from phe_trace.analytics.metrics import METRICS, DailyObservation
from phe_trace.analytics.reports import daily_reports, upload_body
from phe_trace.server import ServerContext
from phe_trace.server import create_app as create_keyserver_app
from phe_trace.server.storage.tables import key_count_releases
from phe_trace.serving import LoopbackServer, free_port, serve
from phe_trace.verification.portal.community import COLUMNS, TITLES, bucket_label
from tests.server.conftest import make_settings as keyserver_settings

from .conftest import WORKER_PASSWORD, Live, portal_client, start_live

TODAY = int(time.time() // 86400)
RELEASED_DAY, WITHHELD_DAY = TODAY - 1, TODAY - 2
TOKEN = "peer-token-0123456789abcdef"
#: The key server's released counts written for the test: (day, value).
KEY_COUNTS = {RELEASED_DAY: 43, WITHHELD_DAY: 5}


@dataclass
class Operators:
    leader_url: str
    keyserver_url: str


def _aggregator(role: str, tmp: Path, helper_url: str | None, ingest: str) -> Aggregator:
    return Aggregator(
        AggregatorSettings(
            role=role,  # type: ignore[arg-type]
            database_url=f"sqlite:///{tmp / f'{role}.sqlite3'}",
            private_key=bytes(PrivateKey.generate()).hex(),  # type: ignore[arg-type]
            verify_key=bytes(range(32)).hex(),  # type: ignore[arg-type]
            peer_token=TOKEN,  # type: ignore[arg-type]
            helper_url=helper_url,
            ingest_url=ingest,
            min_batch_size=3,
        )
    )


def _observation(i: int) -> DailyObservation:
    return DailyObservation(
        notified=i == 0,
        max_risk_level=2 if i == 0 else 0,
        days_exposure_to_notification=3 if i == 0 else None,
        reported_positive=i == 1,
    )


@pytest.fixture(scope="module")
def operators(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Operators]:
    """Key server, helper and leader with one day released and one below the minimum."""
    tmp = tmp_path_factory.mktemp("operators")
    ctx = ServerContext.open(keyserver_settings(tmp, None))
    with ctx.engine.begin() as conn:
        for day, value in KEY_COUNTS.items():
            conn.execute(
                key_count_releases.insert().values(
                    day=day, value=value, epsilon=0.5, sensitivity=14, released_at=0
                )
            )
    try:
        with LoopbackServer(create_keyserver_app(context=ctx)) as ks:
            helper = _aggregator("helper", tmp, None, ks.url)
            with serve(create_app(helper)) as helper_url:
                leader = _aggregator("leader", tmp, helper_url, ks.url)
                keys = (leader.public_key(), helper.public_key())
                with httpx.Client() as client:
                    for day, devices in ((RELEASED_DAY, 4), (WITHHELD_DAY, 2)):
                        for i in range(devices):
                            body = upload_body(daily_reports(_observation(i), day, *keys))
                            resp = client.post(f"{ks.url}/v1/analytics/reports", json=body)
                            assert resp.status_code == 202, resp.text
                for metric in METRICS:
                    leader.collect(RELEASED_DAY, metric)
                    with pytest.raises(BatchTooSmall):
                        leader.collect(WITHHELD_DAY, metric)
                with serve(create_app(leader)) as leader_url:
                    yield Operators(leader_url, ks.url)
                leader.close()
            helper.close()
    finally:
        ctx.close()


@pytest.fixture
def portal(tmp_path: Path, sqlite_url: str, operators: Operators) -> Iterator[Live]:
    running, live = start_live(
        tmp_path,
        sqlite_url,
        statistics_leader_url=operators.leader_url,
        statistics_keyserver_url=operators.keyserver_url,
    )
    try:
        yield live
    finally:
        running.__exit__(None, None, None)
        live.service.close()


def _published(operators: Operators) -> dict[str, Any]:
    return httpx.get(f"{operators.leader_url}/v1/aggregates").json()  # type: ignore[no-any-return]


def _date(day: int) -> str:
    import datetime as dt

    return (dt.date(1970, 1, 1) + dt.timedelta(days=day)).isoformat()


def _row(html: str, date: str, statistic: str) -> str:
    section = html.split(f'data-date="{date}"', 1)[1].split("</section>", 1)[0]
    match = re.search(
        rf'<tr data-statistic="{statistic}" data-status="(\w+)">(.*?)</tr>', section, re.S
    )
    assert match, (date, statistic)
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", match.group(2))).strip()
    return f"{match.group(1)} {text}"


def test_the_page_shows_released_and_withheld_days_and_the_key_counts(
    portal: Live, operators: Operators
) -> None:
    """AGG-36, AGG-37: the released totals with ε, noise, interval and minimum batch; the
    day below the minimum as "not released (below minimum batch 3)"; the key server's
    counts beside them; what the noise means at small counts."""
    published = _published(operators)
    assert {a["metric"] for a in published["aggregates"]} == set(METRICS)
    assert {(w["day"], w["metric"]) for w in published["not_released"]} == {
        (WITHHELD_DAY, m) for m in METRICS
    }
    with portal_client(portal, "worker", WORKER_PASSWORD) as client:
        page = client.get("/portal/statistics")
    assert page.status_code == 200
    html = page.text
    assert "At small counts the noise dominates" in html
    assert "up to 14 keys" in html and "A day showing 40 may have had no keys at all" in html
    for release in published["aggregates"]:
        row = _row(html, _date(RELEASED_DAY), release["metric"])
        assert row.startswith("released ")
        assert f"{release['report_count']} / 3" in row
        assert f" {release['epsilon']} " in row and f" {release['noise_std']:.1f} " in row
        pairs = zip(release["values"], release["interval_95"], strict=True)
        if len(release["values"]) == 1:
            ((value, (low, high)),) = pairs
            assert f"Prio3 {value} {low} – {high} " in row
        else:
            for bucket, (value, (low, high)) in enumerate(pairs):
                assert f" {bucket_label(release['metric'], bucket)} {value} {low}–{high} " in row
    for metric in METRICS:
        row = _row(html, _date(WITHHELD_DAY), metric)
        assert row == (
            f"not_released {TITLES[metric]} aggregators · Prio3"
            " not released (below minimum batch 3)"
        )
    for day, value in KEY_COUNTS.items():
        row = _row(html, _date(day), "real_keys_published")
        h = interval_halfwidth(0.5, 14, draws=1)
        assert row == (
            "released Real keys published to the key server key server"
            f" {value} {max(0, value - h)} – {value + h} 0.5 39.6 —"
        )
    assert 'class="error problem"' not in html


def test_csv_and_json_carry_the_released_values(portal: Live, operators: Operators) -> None:
    """AGG-37: one row per day, statistic and bucket; values, intervals, ε and noise equal
    the leader's and the key server's own publications; withheld days have no value."""
    published = _published(operators)
    key_counts = httpx.get(f"{operators.keyserver_url}/v1/statistics/key-counts").json()
    with portal_client(portal, "worker", WORKER_PASSWORD) as client:
        csv_resp = client.get("/portal/statistics.csv")
        json_resp = client.get("/portal/statistics.json")
    assert csv_resp.status_code == 200 and csv_resp.headers["content-type"].startswith("text/csv")
    assert "attachment" in csv_resp.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(csv_resp.text)))
    assert tuple(rows[0]) == COLUMNS
    released = {
        (r["date"], r["statistic"], r["bucket"]): r for r in rows if r["status"] == "released"
    }
    want = 0
    for a in published["aggregates"]:
        for bucket, value in enumerate(a["values"]):
            row = released[(a["date"], a["metric"], str(bucket))]
            assert row["source"] == "aggregators"
            assert int(row["value"]) == value
            low, high = a["interval_95"][bucket]
            assert (int(row["interval_95_low"]), int(row["interval_95_high"])) == (low, high)
            assert float(row["epsilon"]) == a["epsilon"]
            assert float(row["noise_std"]) == a["noise_std"]
            assert (row["report_count"], row["min_batch_size"], row["sensitivity"]) == (
                "4",
                "3",
                "1",
            )
            want += 1
    for k in key_counts["releases"]:
        row = released[(k["date"], "real_keys_published", "0")]
        assert row["source"] == "key_server" and int(row["value"]) == KEY_COUNTS[k["day"]]
        assert [int(row["interval_95_low"]), int(row["interval_95_high"])] == k["interval_95"]
        assert (float(row["epsilon"]), row["sensitivity"]) == (0.5, "14")
        want += 1
    assert len(released) == want == sum(m.length for m in METRICS.values()) + 2
    withheld = [r for r in rows if r["status"] == "not_released"]
    assert {(r["date"], r["statistic"]) for r in withheld} == {
        (_date(WITHHELD_DAY), m) for m in METRICS
    }
    assert all(r["value"] == "" and r["min_batch_size"] == "3" for r in withheld)

    doc = json_resp.json()
    assert doc["format"] == "phe-trace-community-statistics/1" and doc["problems"] == []
    assert doc["columns"] == list(COLUMNS) and len(doc["rows"]) == len(rows)
    for from_json, from_csv in zip(doc["rows"], rows, strict=True):
        assert {k: "" if v is None else str(v) for k, v in from_json.items()} == from_csv


def test_community_statistics_need_a_signed_in_user(portal: Live) -> None:
    """AGG-37, VER-12: without a session the page and both downloads redirect to sign-in
    and carry no number."""
    with httpx.Client(base_url=portal.url, follow_redirects=False) as client:
        for path in ("/portal/statistics", "/portal/statistics.csv", "/portal/statistics.json"):
            resp = client.get(path)
            assert resp.status_code == 303, path
            assert resp.headers["location"].endswith("/portal/login")
            assert "real_keys_published" not in resp.text and "43" not in resp.text


def test_an_unreachable_leader_is_named_and_the_key_counts_still_show(
    tmp_path: Path, sqlite_url: str, operators: Operators
) -> None:
    """AGG-37: a source that does not answer is named on the page (200, not a 5xx)."""
    running, live = start_live(
        tmp_path,
        sqlite_url,
        statistics_leader_url=f"http://127.0.0.1:{free_port()}",
        statistics_keyserver_url=operators.keyserver_url,
    )
    try:
        with portal_client(live, "worker", WORKER_PASSWORD) as client:
            page = client.get("/portal/statistics")
            doc = client.get("/portal/statistics.json").json()
    finally:
        running.__exit__(None, None, None)
        live.service.close()
    assert page.status_code == 200
    assert "The leader aggregator could not be reached (ConnectError)." in page.text
    assert 'data-statistic="real_keys_published"' in page.text
    assert 'data-statistic="notified"' not in page.text
    assert doc["problems"] == ["The leader aggregator could not be reached (ConnectError)."]
    assert {r["statistic"] for r in doc["rows"]} == {"real_keys_published"}


def test_the_page_in_a_browser(portal: Live) -> None:
    """AGG-37: signed in through the form, the nav leads to the page; the CSV link
    downloads with the session. The screenshot is saved as
    ``portal-community-statistics.png`` beside the other browser tests' screenshots."""
    from .test_browser import ARGS, ARTIFACTS, CHROMIUM

    if not CHROMIUM.exists():
        pytest.skip("no /usr/bin/chromium (make test installs it)")
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        context = browser.new_context(base_url=portal.url, viewport={"width": 1100, "height": 900})
        try:
            page = context.new_page()
            page.goto("/portal/login")
            page.fill("#username", "worker")
            page.fill("#password", WORKER_PASSWORD)
            page.click("#signin")
            page.click("text=Community statistics")
            withheld = page.locator(
                f'section[data-date="{_date(WITHHELD_DAY)}"] tr[data-statistic="notified"]'
            )
            expect(withheld).to_contain_text("not released (below minimum batch 3)")
            expect(page.locator("#noise-note")).to_contain_text("At small counts")
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "portal-community-statistics.png"), full_page=True)
            with page.expect_download() as info:
                page.click("#download-csv")
            header = Path(info.value.path()).read_text().splitlines()[0]
            assert header == ",".join(COLUMNS)
        finally:
            context.close()
            browser.close()


def test_a_leader_answer_the_portal_cannot_read_is_named_not_shown(
    tmp_path: Path, sqlite_url: str, operators: Operators
) -> None:
    """AGG-37: releases of a metric the portal does not know (here a spreadsheet formula)
    are refused as a whole and named; nothing of them reaches the page or the CSV."""
    from fastapi import FastAPI

    hostile = FastAPI()
    release = {
        "day": RELEASED_DAY,
        "date": _date(RELEASED_DAY),
        "metric": '=HYPERLINK("http://x.invalid")',
        "values": [1],
        "epsilon": 1.0,
        "report_count": 200,
        "noise_std": 1.9,
        "interval_95": [[0, 5]],
    }

    @hostile.get("/v1/aggregates")
    def aggregates() -> dict[str, Any]:
        return {"min_batch_size": 3, "aggregates": [release], "not_released": []}

    with serve(hostile) as leader_url:
        running, live = start_live(
            tmp_path,
            sqlite_url,
            statistics_leader_url=leader_url,
            statistics_keyserver_url=operators.keyserver_url,
        )
        try:
            with portal_client(live, "worker", WORKER_PASSWORD) as client:
                page = client.get("/portal/statistics").text
                table = client.get("/portal/statistics.csv").text
        finally:
            running.__exit__(None, None, None)
            live.service.close()
    assert "The leader aggregator sent releases this portal cannot read." in page
    assert "HYPERLINK" not in page and "HYPERLINK" not in table
    assert {row["source"] for row in csv.DictReader(io.StringIO(table))} == {"key_server"}
