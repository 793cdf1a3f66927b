"""Fixtures of the verification tests: a real service on a real uvicorn over loopback.

``live`` runs the whole verification app (device API, portal, JWKS) on 127.0.0.1 with a
free port, on SQLite and — where configured — PostgreSQL, with a :class:`ManualClock`
so tests expire codes and tokens without sleeping.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from phe_trace.serving import LoopbackServer
from phe_trace.verification import (
    ManualClock,
    VerificationService,
    VerificationSettings,
    create_app,
)
from phe_trace.verification.models import Realm, User

#: Start of the manual clock: the real time to the minute, so that certificates are also
#: valid for verifiers reading the real clock (pyjwt, the key server).
START = datetime.now(UTC).replace(second=0, microsecond=0)
ADMIN_PASSWORD = "admin-password-for-tests"
WORKER_PASSWORD = "worker-password-for-tests"
SECRET = "a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p6q7r8s9t0"


_HASHES: dict[str, str] = {}


@pytest.fixture(autouse=True)
def _reuse_password_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hash each test password with Argon2id once per run (real hashes, computed once)."""
    from phe_trace.verification import accounts, passwords

    def cached(password: str, strength: passwords.Strength = "interactive") -> str:
        if password not in _HASHES:
            _HASHES[password] = passwords.hash_password(password, strength)
        return _HASHES[password]

    monkeypatch.setattr(accounts, "hash_password", cached)


@dataclass
class Live:
    """A running verification service and handles to drive it."""

    url: str
    service: VerificationService
    clock: ManualClock
    realm: Realm
    admin: User
    worker: User
    api_key: str


def make_settings(tmp_path: Path, database_url: str, **overrides: Any) -> VerificationSettings:
    values: dict[str, Any] = {
        "data_dir": tmp_path / "data",
        "database_url": database_url,
        "secret": SECRET,
        "cookie_secure": False,
        "response_padding": True,
    }
    values.update(overrides)
    return VerificationSettings(**values)


def start_live(tmp_path: Path, database_url: str, **overrides: Any) -> tuple[LoopbackServer, Live]:
    # The real time to the minute (not START: a long test run must not age certificates).
    clock = ManualClock(datetime.now(UTC).replace(second=0, microsecond=0))
    service = VerificationService(make_settings(tmp_path, database_url, **overrides), clock=clock)
    realm = service.accounts.create_realm("test-realm")
    admin = service.accounts.create_user(
        realm.id, "admin", ADMIN_PASSWORD, is_admin=True, actor="test"
    )
    worker = service.accounts.create_user(
        realm.id, "worker", WORKER_PASSWORD, is_admin=False, actor="test"
    )
    _, api_key = service.accounts.create_api_key(realm.id, "test-app", "test")
    running = LoopbackServer(create_app(service=service))
    url = running.start()
    return running, Live(url, service, clock, realm, admin, worker, api_key)


@pytest.fixture
def live(tmp_path: Path, database_url: str) -> Iterator[Live]:
    """The verification service over real HTTP, on SQLite and PostgreSQL."""
    running, handle = start_live(tmp_path, database_url)
    try:
        yield handle
    finally:
        running.__exit__(None, None, None)
        handle.service.close()


@pytest.fixture
def live_sqlite(tmp_path: Path, sqlite_url: str) -> Iterator[Live]:
    """The verification service over real HTTP on SQLite only (for the slower suites)."""
    running, handle = start_live(tmp_path, sqlite_url)
    try:
        yield handle
    finally:
        running.__exit__(None, None, None)
        handle.service.close()


_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
_CODE = re.compile(r'<div class="code" id="code"[^>]*>(\d+)</div>')
_LONG = re.compile(r'<code class="long-code" id="long-code">([a-z0-9]+)</code>')
_UUID = re.compile(r'<code id="issued-uuid">([0-9a-f-]{36})</code>')


def csrf_of(html: str) -> str:
    match = _CSRF.search(html)
    assert match, "page has no CSRF token"
    return match.group(1)


def sign_in(client: httpx.Client, username: str, password: str) -> httpx.Response:
    """Sign in through the portal's form (GET for the token, POST the form)."""
    page = client.get("/portal/login")
    assert page.status_code == 200
    return client.post(
        "/portal/login",
        data={"username": username, "password": password, "csrf_token": csrf_of(page.text)},
    )


@dataclass
class PortalCode:
    code: str
    long_code: str
    uuid: str


def issue_code(
    client: httpx.Client, test_type: str = "confirmed", test_date: str = "", symptom_date: str = ""
) -> PortalCode:
    """Issue a code through the portal form and read it off the page."""
    form = client.get("/portal/codes/new")
    assert form.status_code == 200, form.text
    page = client.post(
        "/portal/codes",
        data={
            "csrf_token": csrf_of(form.text),
            "test_type": test_type,
            "test_date": test_date,
            "symptom_date": symptom_date,
        },
    )
    assert page.status_code == 200, page.text
    code, long_code, uuid = (
        _CODE.search(page.text),
        _LONG.search(page.text),
        _UUID.search(page.text),
    )
    assert code and long_code and uuid, page.text
    return PortalCode(code.group(1), long_code.group(1), uuid.group(1))


@contextmanager
def portal_client(
    live: Live, username: str = "worker", password: str = WORKER_PASSWORD
) -> Iterator[httpx.Client]:
    """An httpx client signed in to the portal."""
    with httpx.Client(base_url=live.url, follow_redirects=False, timeout=30) as client:
        response = sign_in(client, username, password)
        assert response.status_code == 303, response.text
        yield client
