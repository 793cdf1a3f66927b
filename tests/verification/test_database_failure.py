"""The verification service while its database fails (SPEC VER-15).

Failures are injected into the service's own engine, on SQLite and PostgreSQL alike:

* ``FailingStatements`` raises the driver's own ``OperationalError`` (what a dropped
  connection or a restarting server raises) in place of matching statements, once or
  every time;
* ``LostCommit`` lets one commit go through and then raises, as when the connection drops
  after the server committed but before the service heard so.

The claim of a code or token is retried once in a fresh transaction; when the database
stays down the device API answers 503 ``unavailable`` with ``Retry-After`` in its JSON
error format, chaff answers the same, and the portal shows a plain 503 page. A code is
never claimed twice, and never lost by a retry. The PostgreSQL connection drop itself
(``pg_terminate_backend``) is exercised in ``test_dropped_backend_is_retried`` and, under
load, in ``tests/reliability/test_verification_db_drop.py``.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy import event

from phe_trace import storage
from phe_trace.verification.errors import VerificationDatabaseUnavailableError
from phe_trace.verification.ratelimit import RateLimiter
from phe_trace.verification.tables import audit_events, codes, daily_stats, tokens

from .conftest import Live, csrf_of, issue_code, portal_client, start_live

#: Padded device-API answers are 3–4 KiB (SPEC VER-2); base64 whole groups may end 3 short.
PADDED_MIN, PADDED_MAX = 3072, 4096
_EXECUTE_EVENTS = ("do_execute", "do_execute_no_params", "do_executemany")


class FailingStatements:
    """Raise the driver's OperationalError instead of statements starting with ``prefix``."""

    def __init__(self, engine: sa.Engine, prefix: str = "", times: int = 1) -> None:
        self.engine, self.prefix, self.left = engine, prefix, times
        self.raised = 0
        self.error = engine.dialect.loaded_dbapi.OperationalError

    def _check(self, _cursor: Any, statement: str, *_: Any) -> bool:
        if self.left > 0 and statement.lstrip().startswith(self.prefix):
            self.left -= 1
            self.raised += 1
            raise self.error("injected failure: server closed the connection unexpectedly")
        return False

    def __enter__(self) -> FailingStatements:
        for name in _EXECUTE_EVENTS:
            event.listen(self.engine, name, self._check)
        return self

    def __exit__(self, *exc: object) -> None:
        for name in _EXECUTE_EVENTS:
            event.remove(self.engine, name, self._check)


class LostCommit:
    """The next commit goes through, then the driver raises as if the connection dropped."""

    def __init__(self, engine: sa.Engine, monkeypatch: pytest.MonkeyPatch) -> None:
        self.fired = 0
        dialect = engine.dialect
        commit = dialect.do_commit
        error = dialect.loaded_dbapi.OperationalError

        def do_commit(dbapi_connection: Any) -> None:
            commit(dbapi_connection)
            if not self.fired:
                self.fired += 1
                raise error("injected failure: connection lost after the commit")

        monkeypatch.setattr(dialect, "do_commit", do_commit)


def _api(live: Live) -> httpx.Client:
    return httpx.Client(base_url=live.url, headers={"X-API-Key": live.api_key}, timeout=30)


def _tekmac() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def _count(live: Live, table: sa.Table, *where: Any) -> int:
    with live.service.engine.connect() as conn:
        query = sa.select(sa.func.count()).select_from(table)
        return int(conn.execute(query.where(*where) if where else query).scalar_one())


def _stat(live: Live, column: str) -> int:
    with live.service.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.sum(daily_stats.c[column]))).scalar() or 0)


def _new_code(live: Live) -> str:
    day = live.clock.now().date()
    return live.service.issue_code(live.worker, "confirmed", day, day).code


def _assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    body = response.json()
    assert set(body) == {"error", "errorCode", "padding"}, body
    assert body["errorCode"] == "unavailable"
    assert int(response.headers["Retry-After"]) >= 1
    assert PADDED_MIN - 3 <= len(response.content) <= PADDED_MAX


def test_a_dropped_claim_is_retried_and_the_code_claimed_once(live: Live) -> None:
    """The claim's UPDATE fails once: the retry, in a fresh transaction, claims the code
    once and stores one token; the code is then used up (SPEC VER-15, VER-2)."""
    code = _new_code(live)
    with FailingStatements(live.service.engine, "UPDATE vf_codes") as failing, _api(live) as api:
        verified = api.post("/api/verify", json={"code": code})
        assert failing.raised == 1
        assert verified.status_code == 200, verified.text
        again = api.post("/api/verify", json={"code": code})
        assert again.status_code == 400 and again.json()["errorCode"] == "code_invalid"
        token = verified.json()["token"]
        cert = api.post("/api/certificate", json={"token": token, "ekeyhmac": _tekmac()})
        assert cert.status_code == 200, cert.text
    assert _count(live, codes, codes.c.claimed_at.is_not(None)) == 1
    assert _count(live, tokens) == 1
    assert _stat(live, "codes_claimed") == 1


def test_a_dropped_token_use_is_retried_and_the_token_used_once(live: Live) -> None:
    """The token's UPDATE fails once: one certificate, the token then refused (SPEC VER-15)."""
    with _api(live) as api:
        token = api.post("/api/verify", json={"code": _new_code(live)}).json()["token"]
        with FailingStatements(live.service.engine, "UPDATE vf_tokens") as failing:
            cert = api.post("/api/certificate", json={"token": token, "ekeyhmac": _tekmac()})
        assert failing.raised == 1
        assert cert.status_code == 200, cert.text
        again = api.post("/api/certificate", json={"token": token, "ekeyhmac": _tekmac()})
        assert again.status_code == 400 and again.json()["errorCode"] == "token_invalid"
    assert _stat(live, "tokens_claimed") == 1


def test_a_claim_whose_commit_went_unheard_is_not_lost(
    live: Live, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The claim commits but its answer is lost: the retry finds its own token's row and
    hands out that token — not ``code_invalid`` for a code it claimed itself, and no
    second token (SPEC VER-15)."""
    code = _new_code(live)
    lost = LostCommit(live.service.engine, monkeypatch)
    with _api(live) as api:
        verified = api.post("/api/verify", json={"code": code})
        assert lost.fired == 1
        assert verified.status_code == 200, verified.text
        token = verified.json()["token"]
        cert = api.post("/api/certificate", json={"token": token, "ekeyhmac": _tekmac()})
        assert cert.status_code == 200, cert.text
    assert _count(live, tokens) == 1
    assert _stat(live, "codes_claimed") == 1


def test_a_token_use_whose_commit_went_unheard_still_yields_the_certificate(
    live: Live, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The token's use commits unheard: the retry recognises its own ``used_by`` mark and
    signs the certificate; another request with the token is refused (SPEC VER-15)."""
    with _api(live) as api:
        token = api.post("/api/verify", json={"code": _new_code(live)}).json()["token"]
        lost = LostCommit(live.service.engine, monkeypatch)
        cert = api.post("/api/certificate", json={"token": token, "ekeyhmac": _tekmac()})
        assert lost.fired == 1
        assert cert.status_code == 200, cert.text
        again = api.post("/api/certificate", json={"token": token, "ekeyhmac": _tekmac()})
        assert again.status_code == 400 and again.json()["errorCode"] == "token_invalid"
    assert _stat(live, "tokens_claimed") == 1


def test_a_database_that_stays_down_answers_503_and_claims_nothing(live: Live) -> None:
    """Both attempts of the claim fail: 503 ``unavailable`` with Retry-After in the device
    API's padded JSON error format, never a 500; the code stays unclaimed and works once
    the database is back (SPEC VER-15, VER-2)."""
    code = _new_code(live)
    body = {"code": code}
    with _api(live) as api:
        with FailingStatements(live.service.engine, "UPDATE vf_codes", times=10**6) as failing:
            _assert_unavailable(api.post("/api/verify", json=body))
        assert failing.raised == 2  # the first attempt and the one retry
        assert _count(live, codes, codes.c.claimed_at.is_not(None)) == 0
        assert _count(live, tokens) == 0
        token = api.post("/api/verify", json=body).json()["token"]
        cert_body = {"token": token, "ekeyhmac": _tekmac()}
        with FailingStatements(live.service.engine, "UPDATE vf_tokens", times=10**6):
            _assert_unavailable(api.post("/api/certificate", json=cert_body))
        assert api.post("/api/certificate", json=cert_body).status_code == 200


def test_chaff_answers_like_a_real_request_while_the_database_is_down(live: Live) -> None:
    """With the database down, chaff and real requests both answer 503 ``unavailable``
    with the same fields, headers and size range — chaff does not give itself away by a
    200; once the database is back both answer 200 (SPEC VER-15, VER-2)."""
    code = _new_code(live)
    chaff = {"X-Chaff": "1"}
    verify, certificate = {"code": code}, {"token": "t" * 43, "ekeyhmac": _tekmac()}
    with _api(live) as api:
        with FailingStatements(live.service.engine, times=10**6):
            answers = [
                api.post("/api/verify", json=verify),
                api.post("/api/verify", json=verify, headers=chaff),
                api.post("/api/certificate", json=certificate),
                api.post("/api/certificate", json=certificate, headers=chaff),
            ]
        for response in answers:
            _assert_unavailable(response)
        names = {frozenset(k.lower() for k in r.headers if k.lower() != "date") for r in answers}
        assert len(names) == 1, names
        assert api.post("/api/verify", json=verify, headers=chaff).status_code == 200
        assert api.post("/api/verify", json=verify).status_code == 200


def test_chaff_passes_the_same_admission_checks(live: Live) -> None:
    """Chaff without a valid API key answers 401, past the rate limit 429 (without using
    it up) and in maintenance mode 429, as a real request does (SPEC VER-15, VER-9, VER-11)."""
    chaff = {"X-Chaff": "1"}
    live.service.verify_limiter = RateLimiter(1, 3600)
    with _api(live) as api:
        body = {"code": "12345678"}
        assert api.post("/api/verify", json=body, headers=chaff).status_code == 200
        assert api.post("/api/verify", json=body).json()["errorCode"] == "code_invalid"
        for headers in (chaff, {}):
            limited = api.post("/api/verify", json=body, headers=headers)
            assert limited.status_code == 429 and limited.json()["errorCode"] == "too_many_requests"
            assert int(limited.headers["Retry-After"]) >= 1
    with httpx.Client(base_url=live.url, timeout=30) as anonymous:
        refused = anonymous.post("/api/verify", json={"code": "12345678"}, headers=chaff)
    assert refused.status_code == 401 and refused.json()["errorCode"] == "unauthorized"
    live.service.accounts.set_maintenance_mode(True, "test")
    with _api(live) as api:
        for path, body in (
            ("/api/verify", {"code": "12345678"}),
            ("/api/certificate", {"token": "t" * 43, "ekeyhmac": _tekmac()}),
        ):
            real, fake = api.post(path, json=body), api.post(path, json=body, headers=chaff)
            for response in (real, fake):
                assert response.status_code == 429, response.text
                assert response.json()["errorCode"] == "maintenance_mode"


def test_portal_shows_an_unavailable_page_while_the_database_is_down(live: Live) -> None:
    """Every portal page is a plain 503 "Service temporarily unavailable" page with
    Retry-After while the database is down; an issuance attempted then stores nothing
    (SPEC VER-15)."""
    with portal_client(live) as portal:
        csrf = csrf_of(portal.get("/portal/codes/new").text)
        form = {"csrf_token": csrf, "test_type": "confirmed", "test_date": "", "symptom_date": ""}
        with FailingStatements(live.service.engine, times=10**6):
            pages = [
                portal.get("/portal/codes/new"),
                portal.get("/portal/codes"),
                portal.get("/portal/stats"),
                portal.post("/portal/codes", data=form),
            ]
        for page in pages:
            assert page.status_code == 503, page.text
            assert "Service temporarily unavailable" in page.text
            assert "Traceback" not in page.text and "OperationalError" not in page.text
            assert page.headers["content-type"].startswith("text/html")
            assert int(page.headers["Retry-After"]) >= 1
        assert portal.get("/portal/codes/new").status_code == 200
    assert _count(live, codes) == 0
    assert _stat(live, "codes_issued") == 0


#: The portal's Content-Security-Policy (every page carries it).
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
#: What every 503 of the verification service says (the device API's ``error``).
_UNAVAILABLE = "the database is unavailable; retry later"


def _outage(kind: str) -> Exception:
    """The database failing as the handlers meet it: the service's own 503 error (raised
    after the one retry) or a dropped connection outside the retried steps."""
    if kind == "after the retry":
        return VerificationDatabaseUnavailableError(storage.UNAVAILABLE)
    return sa.exc.OperationalError("SELECT 1", {}, Exception("server closed the connection"))


def _headers(response: httpx.Response) -> list[tuple[str, str]]:
    """The response's headers in order, without those of the HTTP server itself."""
    return [(k, v) for k, v in response.headers.items() if k not in ("date", "server")]


@pytest.mark.parametrize("kind", ["after the retry", "outside the retried steps"])
def test_the_device_api_503_is_one_exact_answer(
    live: Live, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """Whether the database failed after the retry or outside the retried steps, the
    device API answers the same 503: ``Retry-After: 2``, and ``error``, ``errorCode``
    ``unavailable`` and ``padding`` in that order, padded to 3–4 KiB (VER-15, VER-2)."""

    def down(*_: object) -> None:
        raise _outage(kind)

    monkeypatch.setattr(live.service, "verify", down)
    with _api(live) as api:
        response = api.post("/api/verify", json={"code": "12345678"})
    assert response.status_code == 503, response.text
    assert _headers(response) == [
        ("retry-after", "2"),
        ("content-length", str(len(response.content))),
        ("content-type", "application/json"),
    ]
    body = response.json()
    assert list(body) == ["error", "errorCode", "padding"]
    assert (body["error"], body["errorCode"]) == (_UNAVAILABLE, "unavailable")
    assert PADDED_MIN - 3 <= len(response.content) <= PADDED_MAX


def test_a_device_api_database_error_no_retry_helps_is_no_503(
    live: Live, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A constraint the database enforces is no outage: not 503 ``unavailable``, no
    ``Retry-After`` (the app must not retry it)."""

    def refused(*_: object) -> None:
        raise sa.exc.IntegrityError("INSERT", {}, Exception("constraint"))

    monkeypatch.setattr(live.service, "verify", refused)
    with _api(live) as api:
        response = api.post("/api/verify", json={"code": "12345678"})
    assert response.status_code == 500
    assert "retry-after" not in response.headers
    assert "unavailable" not in response.text


@pytest.mark.parametrize("kind", ["after the retry", "outside the retried steps"])
def test_the_portal_503_is_one_exact_page(
    live: Live, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """Whether the database failed after the retry or outside the retried steps, the
    portal answers the same plain 503 page with ``Retry-After: 2`` and its security
    headers (VER-15)."""

    def down(*_: object) -> None:
        raise _outage(kind)

    with portal_client(live) as portal:
        csrf = csrf_of(portal.get("/portal/codes/new").text)
        monkeypatch.setattr(live.service, "issue_code", down)
        form = {"csrf_token": csrf, "test_type": "confirmed", "test_date": "", "symptom_date": ""}
        page = portal.post("/portal/codes", data=form)
    assert page.status_code == 503, page.text
    assert _headers(page) == [
        ("content-length", str(len(page.content))),
        ("content-type", "text/html; charset=utf-8"),
        ("retry-after", "2"),
        ("content-security-policy", _CSP),
        ("x-frame-options", "DENY"),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
        ("cache-control", "no-store"),
    ]
    assert "<title>Service temporarily unavailable" in page.text
    assert "The service is temporarily unavailable. Please try again in a moment." in page.text
    assert _UNAVAILABLE not in page.text and "OperationalError" not in page.text


def test_the_portal_503_page_is_the_same_bytes_either_way(
    live: Live, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The page after a failed retry and after a dropped connection elsewhere are byte
    for byte the same (VER-15)."""
    pages = []
    with portal_client(live) as portal:
        csrf = csrf_of(portal.get("/portal/codes/new").text)
        form = {"csrf_token": csrf, "test_type": "confirmed", "test_date": "", "symptom_date": ""}
        for kind in ("after the retry", "outside the retried steps"):

            def down(*_: object, kind: str = kind) -> None:
                raise _outage(kind)

            monkeypatch.setattr(live.service, "issue_code", down)
            page = portal.post("/portal/codes", data=form)
            pages.append((page.status_code, _headers(page), page.content))
    assert pages[0] == pages[1]
    assert pages[0][0] == 503


def test_an_issuance_whose_commit_went_unheard_issues_one_code(
    live: Live, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The issuing transaction commits unheard: the retry finds the code by its uuid and
    shows it; one code, one quota unit and one audit entry are stored, and the code
    verifies (SPEC VER-15, VER-1)."""
    with portal_client(live) as portal:
        lost = LostCommit(live.service.engine, monkeypatch)
        issued = issue_code(portal)  # asserts the page with the code (200)
    assert lost.fired == 1
    assert _count(live, codes) == 1
    assert _stat(live, "codes_issued") == 1
    assert _count(live, audit_events, audit_events.c.action == "code.issue") == 1
    with _api(live) as api:
        assert api.post("/api/verify", json={"code": issued.code}).status_code == 200


class Dropper:
    """Terminates the backend of the connection about to run a statement with ``prefix``."""

    def __init__(self, engine: sa.Engine, prefix: str) -> None:
        self.engine, self.prefix, self.budget = engine, prefix, 1
        self.admin_url = os.environ["PHE_TRACE_TEST_DATABASE_URL"].replace("+psycopg", "")

    def __call__(self, conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if self.budget <= 0 or not statement.startswith(self.prefix):
            return
        import psycopg

        self.budget -= 1
        with psycopg.connect(self.admin_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (cursor.connection.info.backend_pid,))

    def __enter__(self) -> Dropper:
        event.listen(self.engine, "before_cursor_execute", self)
        return self

    def __exit__(self, *exc: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self)


@pytest.fixture
def live_pg(tmp_path: Path, postgres_url: str) -> Iterator[Live]:
    running, handle = start_live(tmp_path, postgres_url)
    try:
        yield handle
    finally:
        running.__exit__(None, None, None)
        handle.service.close()


def test_dropped_backend_is_retried(live_pg: Live) -> None:
    """PostgreSQL terminates the backend of the connection about to claim a code, then of
    the one about to use the token: each claim is retried on a fresh connection and
    succeeds once; the code and the token are then used up (SPEC VER-15)."""
    live = live_pg
    code = _new_code(live)
    engine = live.service.engine
    with _api(live) as api:
        with Dropper(engine, "UPDATE vf_codes") as dropper:
            verified = api.post("/api/verify", json={"code": code})
        assert dropper.budget == 0
        assert verified.status_code == 200, verified.text
        body = {"token": verified.json()["token"], "ekeyhmac": _tekmac()}
        with Dropper(engine, "UPDATE vf_tokens") as dropper:
            cert = api.post("/api/certificate", json=body)
        assert dropper.budget == 0
        assert cert.status_code == 200, cert.text
        assert api.post("/api/verify", json={"code": code}).json()["errorCode"] == "code_invalid"
        assert api.post("/api/certificate", json=body).json()["errorCode"] == "token_invalid"
    assert _count(live, tokens) == 1
    assert _stat(live, "codes_claimed") == 1 and _stat(live, "tokens_claimed") == 1
