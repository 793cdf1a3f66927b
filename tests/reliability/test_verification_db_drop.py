"""The verification service while PostgreSQL drops its connections under load.

16 app-like clients each take a fresh code, exchange it at ``/api/verify`` and the token
at ``/api/certificate``, and send chaff beside; a 503 is retried as an app would.
Meanwhile every backend of the service's database is terminated (``pg_terminate_backend``)
three times, cutting statements in flight. Afterwards: no answer was a 500 (a 503
``unavailable`` with ``Retry-After`` at most, in the device API's JSON error format, for
chaff too); every acknowledged verify claimed its code exactly once and stored exactly one
token; no code or token was claimed without an acknowledgement (none lost to a retry),
none twice; every acknowledged certificate verifies and carries its request's TEK HMAC.
(SPEC VER-15, VER-2, VER-5)
"""

from __future__ import annotations

import base64
import os
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import jwt
import pytest
import sqlalchemy as sa

from phe_trace.verification.tables import codes, daily_stats, tokens
from tests.verification.conftest import Live, start_live

CLIENTS = 16
CODES = 900


@dataclass
class Outcome:
    """What the clients saw."""

    verified: Counter[str] = field(default_factory=Counter)  # code -> 200s
    certificates: list[tuple[str, str]] = field(default_factory=list)  # (certificate, tekmac)
    statuses: Counter[str] = field(default_factory=Counter)
    chaff_statuses: Counter[str] = field(default_factory=Counter)
    refusals: list[str] = field(default_factory=list)  # real requests answered 4xx
    malformed: list[str] = field(default_factory=list)  # non-200 not in the JSON format
    lock: threading.Lock = field(default_factory=threading.Lock)


class AppLoad:
    """``CLIENTS`` threads redeeming codes from ``todo`` until it is empty or stopped."""

    def __init__(self, live: Live, todo: queue.Queue[str]) -> None:
        self.live, self.todo = live, todo
        self.outcome = Outcome()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(CLIENTS)]

    def start(self) -> AppLoad:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> Outcome:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)
        return self.outcome

    def _post(self, api: httpx.Client, path: str, body: dict[str, str], chaff: bool) -> dict:
        """POST until an answer other than 503 (the app's retry); the final JSON body."""
        headers = {"X-Chaff": "1"} if chaff else {}
        while True:
            try:
                response = api.post(path, json=body, headers=headers)
                status = str(response.status_code)
            except httpx.HTTPError as exc:
                status, response = type(exc).__name__, None
            with self.outcome.lock:
                (self.outcome.chaff_statuses if chaff else self.outcome.statuses)[status] += 1
            if response is None:
                time.sleep(0.05)
                continue
            try:
                data = response.json()
            except ValueError:
                data = {}
            if response.status_code != 200 and (
                not data.get("errorCode") or "padding" not in data or "Traceback" in response.text
            ):
                with self.outcome.lock:
                    self.outcome.malformed.append(f"{status} {response.text[:300]}")
            if response.status_code != 503:
                return {"status": response.status_code, **data}
            if data.get("errorCode") != "unavailable" or "Retry-After" not in response.headers:
                with self.outcome.lock:
                    self.outcome.malformed.append(f"503 {response.text[:300]}")
            time.sleep(0.05)  # an app waits Retry-After; shorter here to keep the load up

    def _run(self) -> None:
        headers = {"X-API-Key": self.live.api_key}
        with httpx.Client(base_url=self.live.url, headers=headers, timeout=30) as api:
            while not self._stop.is_set():
                try:
                    code = self.todo.get_nowait()
                except queue.Empty:
                    return
                self._post(api, "/api/verify", {"code": code}, chaff=True)
                answer = self._post(api, "/api/verify", {"code": code}, chaff=False)
                if answer["status"] != 200:
                    with self.outcome.lock:
                        self.outcome.refusals.append(f"verify {answer}")
                    continue
                with self.outcome.lock:
                    self.outcome.verified[code] += 1
                mac = base64.b64encode(os.urandom(32)).decode()
                body = {"token": answer["token"], "ekeyhmac": mac}
                self._post(api, "/api/certificate", body, chaff=True)
                answer = self._post(api, "/api/certificate", body, chaff=False)
                with self.outcome.lock:
                    if answer["status"] == 200:
                        self.outcome.certificates.append((answer["certificate"], mac))
                    else:
                        self.outcome.refusals.append(f"certificate {answer}")


def _wait_for(count: Callable[[], int], at_least: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while count() < at_least:
        assert time.monotonic() < deadline, "the clients made no progress"
        time.sleep(0.05)


def _terminate_backends(admin_url: str, database: str) -> int:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (database,),
        ).fetchall()
    return len(rows)


def _scalar(live: Live, query: sa.Select[tuple[int]]) -> int:
    with live.service.engine.connect() as conn:
        return int(conn.execute(query).scalar() or 0)


@pytest.mark.slow
def test_postgres_connections_dropped_under_verify_load(tmp_path: Path, postgres_url: str) -> None:
    """pg_terminate_backend on every service connection, 3 times, while 16 apps redeem codes."""
    running, live = start_live(tmp_path, postgres_url, verify_rate_limit=1_000_000)
    try:
        live.service.accounts.set_daily_quota(live.realm.id, CODES, "test")
        day = live.clock.now().date()
        todo: queue.Queue[str] = queue.Queue()
        for _ in range(CODES):
            todo.put(live.service.issue_code(live.worker, "confirmed", day, day).code)
        admin = os.environ["PHE_TRACE_TEST_DATABASE_URL"].replace("+psycopg", "")
        database = postgres_url.rsplit("/", 1)[1]
        cut: Counter[str] = Counter()  # statements the drops cut off ("-": ping or commit)

        def count_cut(context: sa.engine.ExceptionContext) -> None:
            if context.is_disconnect:
                cut[(context.statement or "-").split(" ", 1)[0]] += 1

        sa.event.listen(live.service.engine, "handle_error", count_cut)
        load = AppLoad(live, todo).start()
        done = load.outcome.certificates.__len__
        terminated = 0
        try:
            for _ in range(3):
                _wait_for(done, done() + 60)
                terminated += _terminate_backends(admin, database)
            _wait_for(done, done() + 60)  # it recovered
        finally:
            outcome = load.stop()
        print(f"statuses {dict(outcome.statuses)}, chaff {dict(outcome.chaff_statuses)}, cut {cut}")
        assert terminated > 0, "no service connection was there to drop"
        in_flight = sum(n for word, n in cut.items() if word != "-")
        assert in_flight > 0, f"the drops cut no statement in flight: {cut}"
        # never a 500: 200, or 503 unavailable (retried by the app) — chaff alike
        assert set(outcome.statuses) <= {"200", "503"}, dict(outcome.statuses)
        assert set(outcome.chaff_statuses) <= {"200", "503"}, dict(outcome.chaff_statuses)
        assert not outcome.malformed, outcome.malformed[:5]
        # a code or token whose claim the retry lost would come back code_/token_invalid
        assert not outcome.refusals, outcome.refusals[:5]
        assert set(outcome.verified.values()) == {1}
        acknowledged = len(outcome.verified)
        claimed = _scalar(live, sa.select(sa.func.count()).where(codes.c.claimed_at.is_not(None)))
        assert claimed == acknowledged, (claimed, acknowledged)  # none claimed unheard
        keyring = live.service.keyring
        with live.service.engine.connect() as conn:
            hashes = [keyring.hash_code(code) for code in outcome.verified]
            found = conn.execute(
                sa.select(sa.func.count()).where(
                    codes.c.code_hash.in_(hashes), codes.c.claimed_at.is_not(None)
                )
            ).scalar()
        assert found == acknowledged  # each acknowledged code is the one claimed
        assert _scalar(live, sa.select(sa.func.count()).select_from(tokens)) == acknowledged
        assert _scalar(live, sa.select(sa.func.sum(daily_stats.c.codes_claimed))) == claimed
        used = _scalar(live, sa.select(sa.func.count()).where(tokens.c.used_at.is_not(None)))
        assert used == len(outcome.certificates)  # one certificate per used token
        assert _scalar(live, sa.select(sa.func.sum(daily_stats.c.tokens_claimed))) == used
        public = {k["kid"]: jwt.PyJWK(k) for k in live.service.signing.jwks()["keys"]}
        for certificate, mac in outcome.certificates:
            key = public[jwt.get_unverified_header(certificate)["kid"]]
            claims = jwt.decode(
                certificate,
                key.key,
                algorithms=["ES256"],
                audience=live.service.settings.audience,
                issuer=live.service.settings.issuer,
            )
            assert claims["tekmac"] == mac
    finally:
        running.__exit__(None, None, None)
        live.service.close()
