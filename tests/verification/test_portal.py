"""The case-worker portal over real HTTP (httpx): sessions, CSRF, lock-out, admin pages."""

from __future__ import annotations

import re
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from phe_trace.verification.tables import audit_events, users

from .conftest import (
    ADMIN_PASSWORD,
    WORKER_PASSWORD,
    Live,
    csrf_of,
    issue_code,
    portal_client,
    sign_in,
    start_live,
)


def _client(live: Live) -> httpx.Client:
    return httpx.Client(base_url=live.url, follow_redirects=False, timeout=30)


def _set_cookie(response: httpx.Response, name: str) -> str:
    return next(
        v
        for k, v in response.headers.multi_items()
        if k == "set-cookie" and v.startswith(name + "=")
    )


def test_session_cookie_is_http_only_strict_and_secure_by_default(
    tmp_path: Path, sqlite_url: str
) -> None:
    """The session cookie is HttpOnly, SameSite=Strict, Secure, scoped to /portal (SPEC VER-12)."""
    running, live = start_live(tmp_path, sqlite_url, cookie_secure=True)
    try:
        with httpx.Client(base_url=live.url, follow_redirects=False) as client:
            form = client.get("/portal/login")
            pre = _set_cookie(form, "phe_trace_presignin").split(";")[0]
            # httpx keeps Secure cookies off plain HTTP, so the test sends it by hand.
            response = client.post(
                "/portal/login",
                data={
                    "username": "worker",
                    "password": WORKER_PASSWORD,
                    "csrf_token": csrf_of(form.text),
                },
                headers={"Cookie": pre},
            )
        assert response.status_code == 303
        cookie = _set_cookie(response, "phe_trace_session").lower()
        attrs = {a.strip().split("=")[0] for a in cookie.split(";")}
        assert {"httponly", "secure", "samesite"} <= attrs
        assert "samesite=strict" in cookie and "path=/portal" in cookie
    finally:
        running.__exit__(None, None, None)
        live.service.close()


def test_pages_need_a_session(live_sqlite: Live) -> None:
    """Without a session every page redirects to sign-in (SPEC VER-12)."""
    with _client(live_sqlite) as client:
        for path in ("/portal/codes/new", "/portal/codes", "/portal/stats", "/portal/admin/users"):
            response = client.get(path)
            assert response.status_code == 303 and response.headers["location"] == "/portal/login"


def test_posts_without_csrf_token_are_refused(live_sqlite: Live) -> None:
    """Every form POST without (or with a wrong) CSRF token answers 403 and changes nothing.

    (SPEC VER-13)
    """
    live = live_sqlite
    with _client(live) as anon:
        anon.get("/portal/login")
        login = anon.post("/portal/login", data={"username": "worker", "password": WORKER_PASSWORD})
        assert login.status_code == 403
    with portal_client(live, "admin", ADMIN_PASSWORD) as client:
        for path, data in (
            ("/portal/codes", {"test_type": "confirmed"}),
            ("/portal/codes", {"test_type": "confirmed", "csrf_token": "forged"}),
            ("/portal/admin/users", {"username": "mallory", "password": "x" * 20}),
            ("/portal/admin/api-keys", {"name": "evil"}),
            ("/portal/logout", {}),
        ):
            assert client.post(path, data=data).status_code == 403, path
        assert live.service.codes.issued_today(live.realm.id, live.clock.now()) == 0
        assert [u.username for u in live.service.accounts.list_users(live.realm.id)] == [
            "admin",
            "worker",
        ]
        assert client.get("/portal/codes/new").status_code == 200  # still signed in


def test_sign_out_ends_the_session(live_sqlite: Live) -> None:
    """After sign-out the old session cookie no longer works (SPEC VER-12)."""
    with portal_client(live_sqlite) as client:
        form = client.get("/portal/codes/new")
        old_cookie = client.cookies.get("phe_trace_session")
        out = client.post("/portal/logout", data={"csrf_token": csrf_of(form.text)})
        assert out.status_code == 303 and out.headers["location"] == "/portal/login"
    with _client(live_sqlite) as replay:
        replay.cookies.set("phe_trace_session", old_cookie or "", path="/portal")
        assert replay.get("/portal/codes/new").status_code == 303


def test_lock_out_after_repeated_failures(live_sqlite: Live) -> None:
    """After 5 failed sign-ins even the right password fails until the lock expires.

    (SPEC VER-12)
    """
    live = live_sqlite
    with _client(live) as client:
        for _ in range(live.service.settings.signin_max_failures):
            assert sign_in(client, "worker", "wrong-password-123").status_code == 401
        locked = sign_in(client, "worker", WORKER_PASSWORD)
        assert locked.status_code == 401 and "Sign-in failed." in locked.text
        assert sign_in(client, "nobody", WORKER_PASSWORD).status_code == 401
        live.clock.advance(timedelta(minutes=live.service.settings.signin_lockout_minutes + 1))
        assert sign_in(client, "worker", WORKER_PASSWORD).status_code == 303
    with live.service.engine.connect() as conn:
        actions = conn.execute(select(audit_events.c.action)).scalars().all()
    assert "user.locked" in actions and "user.signin_locked" in actions


def test_parallel_wrong_passwords_are_each_counted(live: Live) -> None:
    """VER-12: 16 wrong passwords at once: each counts, so the account locks (one UPDATE).

    Every attempt is either refused as already locked or counted; of the counted ones,
    each fifth locks the account and the rest stay in ``failed_signins``. A count written
    from a value read before the update loses attempts and breaks this balance.
    """
    maximum = live.service.settings.signin_max_failures
    clients = [_client(live) for _ in range(16)]
    tokens = [csrf_of(c.get("/portal/login").text) for c in clients]
    start = threading.Barrier(len(clients))

    def attempt(index: int) -> int:
        start.wait()
        form = {"username": "worker", "password": "wrong-password-123", "csrf_token": tokens[index]}
        return clients[index].post("/portal/login", data=form).status_code

    with ThreadPoolExecutor(len(clients)) as pool:
        statuses = list(pool.map(attempt, range(len(clients))))
    for c in clients:
        c.close()
    assert statuses == [401] * 16
    with live.service.engine.connect() as conn:
        actions = conn.execute(select(audit_events.c.action)).scalars().all()
        failures = conn.execute(
            select(users.c.failed_signins).where(users.c.username == "worker")
        ).scalar_one()
    counted = actions.count("user.signin_failed") + actions.count("user.locked")
    assert counted + actions.count("user.signin_locked") == 16
    assert actions.count("user.locked") == counted // maximum >= 1
    assert failures == counted % maximum
    with _client(live) as client:
        assert sign_in(client, "worker", WORKER_PASSWORD).status_code == 401  # locked


def test_recent_codes_by_status_without_codes_or_personal_data(live: Live) -> None:
    """The list shows references and status — unclaimed, claimed, expired — never a code.

    (SPEC VER-10)
    """
    with portal_client(live) as client:
        claimed, unclaimed = issue_code(client), issue_code(client)
        live.service.verify(live.api_key, claimed.code, None)
    live.clock.advance(timedelta(hours=25))
    with portal_client(live) as client:  # the 8-hour session is over: sign in again
        fresh = issue_code(client)
        page = client.get("/portal/codes").text
    for c in (claimed, unclaimed, fresh):
        assert c.code not in page and c.long_code not in page
    assert f'data-uuid="{claimed.uuid}" data-status="claimed"' in page
    assert f'data-uuid="{unclaimed.uuid}" data-status="expired"' in page
    assert f'data-uuid="{fresh.uuid}" data-status="unclaimed"' in page


def _next_utc_day(live: Live) -> None:
    """Move the clock to 00:05 UTC of the next day: the test's steps then share one day."""
    now = live.clock.now()
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    live.clock.advance(midnight - now + timedelta(minutes=5))


def test_statistics_table_and_chart(live_sqlite: Live) -> None:
    """VER-14: issued, claimed, invalid attempts and certificates per day, table and chart.

    The invalid attempts are real requests to ``/api/verify``: a reused code, an unknown
    code and an expired code, each refused and each counted (in a transaction of its own,
    since the refused attempt's is rolled back). ``/metrics`` serves the same counts.
    """
    live = live_sqlite
    _next_utc_day(live)
    with portal_client(live) as client:
        codes = [issue_code(client) for _ in range(3)]
        api = httpx.Client(base_url=live.url, headers={"X-API-Key": live.api_key}, timeout=30)
        with api:
            assert api.post("/api/verify", json={"code": codes[0].code}).status_code == 200
            refused = [api.post("/api/verify", json={"code": codes[0].code})]
            refused.append(api.post("/api/verify", json={"code": "12345678"}))
            live.clock.advance(timedelta(minutes=61))  # the short code lives 60 minutes
            refused.append(api.post("/api/verify", json={"code": codes[1].code}))
            metrics = api.get("/metrics")
        page = client.get("/portal/stats").text
    assert [r.json()["errorCode"] for r in refused] == [
        "code_invalid",
        "code_invalid",
        "code_expired",
    ]
    today = live.clock.now().date().isoformat()
    assert f"<tr><td>{today}</td><td>3</td><td>1</td><td>3</td><td>0</td></tr>" in page
    assert "<svg" in page and f"{today}: 3 issued" in page and f"{today}: 1 claimed" in page
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain; version=0.0.4")
    series = dict(line.rsplit(" ", 1) for line in metrics.text.splitlines() if line[:1] != "#")
    realm = '{realm="test-realm"}'
    assert series[f"phe_trace_verification_invalid_attempts_total{realm}"] == "3"
    assert series[f"phe_trace_verification_codes_issued_total{realm}"] == "3"
    assert series[f"phe_trace_verification_codes_claimed_total{realm}"] == "1"
    assert series[f"phe_trace_verification_certificates_total{realm}"] == "0"


def test_daily_quota_is_enforced(live_sqlite: Live) -> None:
    """Past the realm's daily quota issuance answers quota_exceeded; the next UTC day it works.

    (SPEC VER-11)
    """
    live = live_sqlite
    live.service.accounts.set_daily_quota(live.realm.id, 2, "test")
    with portal_client(live) as client:
        issue_code(client)
        issue_code(client)
        form = client.get("/portal/codes/new").text
        refused = client.post(
            "/portal/codes", data={"csrf_token": csrf_of(form), "test_type": "confirmed"}
        )
        assert refused.status_code == 429 and 'data-code="quota_exceeded"' in refused.text
    live.clock.advance(timedelta(days=1))
    with portal_client(live) as client:
        issue_code(client)


@pytest.mark.parametrize(
    ("test_date", "symptom_date"), [("2001-01-01", ""), ("", "2999-01-01"), ("yesterday", "")]
)
def test_issuance_refuses_bad_dates(live_sqlite: Live, test_date: str, symptom_date: str) -> None:
    """Dates in the future, too old or malformed answer invalid_date (SPEC VER-1)."""
    with portal_client(live_sqlite) as client:
        form = client.get("/portal/codes/new").text
        response = client.post(
            "/portal/codes",
            data={
                "csrf_token": csrf_of(form),
                "test_type": "confirmed",
                "test_date": test_date,
                "symptom_date": symptom_date,
            },
        )
    assert response.status_code == 400 and 'data-code="invalid_date"' in response.text


def test_case_workers_cannot_open_admin_pages(live_sqlite: Live) -> None:
    """Users, API keys and the audit log are for realm admins only (SPEC VER-14)."""
    with portal_client(live_sqlite) as client:
        for path in ("/portal/admin/users", "/portal/admin/api-keys", "/portal/admin/audit"):
            assert client.get(path).status_code == 403


def test_admin_manages_users_and_api_keys(live_sqlite: Live) -> None:
    """An admin adds a case worker and an API key (shown once, works, revocable).

    (SPEC VER-9, VER-14)
    """
    live = live_sqlite
    with portal_client(live, "admin", ADMIN_PASSWORD) as admin:
        page = admin.get("/portal/admin/users").text
        created = admin.post(
            "/portal/admin/users",
            data={
                "csrf_token": csrf_of(page),
                "username": "carol",
                "password": "carols-password-1",
            },
        )
        assert created.status_code == 200 and "User carol created." in created.text
        weak = admin.post(
            "/portal/admin/users",
            data={"csrf_token": csrf_of(page), "username": "dave", "password": "short"},
        )
        assert weak.status_code == 400
        keys_page = admin.get("/portal/admin/api-keys").text
        made = admin.post(
            "/portal/admin/api-keys", data={"csrf_token": csrf_of(keys_page), "name": "ios-app"}
        )
        new_key = re.search(r'id="new-api-key">([^<]+)<', made.text)
        assert new_key
        key = new_key.group(1)
        listing = admin.get("/portal/admin/api-keys").text
        assert key not in listing
    with portal_client(live, "carol", "carols-password-1") as carol:
        issued = issue_code(carol)
    with httpx.Client(base_url=live.url, headers={"X-API-Key": key}) as app:
        assert app.post("/api/verify", json={"code": issued.code}).status_code == 200
    key_id = next(
        k.id for k in live.service.accounts.list_api_keys(live.realm.id) if k.name == "ios-app"
    )
    with portal_client(live, "admin", ADMIN_PASSWORD) as admin:
        page = admin.get("/portal/admin/api-keys").text
        revoked = admin.post(
            f"/portal/admin/api-keys/{key_id}/revoke", data={"csrf_token": csrf_of(page)}
        )
        assert revoked.status_code == 303
        audit = admin.get("/portal/admin/audit").text
    with httpx.Client(base_url=live.url, headers={"X-API-Key": key}) as app:
        assert app.post("/api/verify", json={"code": "12345678"}).status_code == 401
    assert "apikey.create" in audit and "apikey.revoke" in audit and "user.create" in audit
    assert f"code {issued.uuid} (confirmed)" in audit and issued.code not in audit


def test_disabled_user_is_signed_out_and_cannot_sign_in(live_sqlite: Live) -> None:
    """Disabling an account ends its sessions (SPEC VER-14)."""
    live = live_sqlite
    with portal_client(live) as worker:
        with portal_client(live, "admin", ADMIN_PASSWORD) as admin:
            page = admin.get("/portal/admin/users").text
            response = admin.post(
                f"/portal/admin/users/{live.worker.id}/disable", data={"csrf_token": csrf_of(page)}
            )
            assert response.status_code == 303
        assert worker.get("/portal/codes/new").status_code == 303
    with _client(live) as client:
        assert sign_in(client, "worker", WORKER_PASSWORD).status_code == 401


def test_security_headers(live_sqlite: Live) -> None:
    """Portal pages forbid framing and caching and load no third-party code (SPEC VER-13)."""
    with _client(live_sqlite) as client:
        response = client.get("/portal/login")
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["cache-control"] == "no-store"
