"""The portal over plain HTTP on a name other than localhost, as a development setup meets it.

A real ``phe-trace server run`` process; a real browser (Debian's chromium through
Playwright, skipped where it is missing) loads the portal at ``http://portal.test:PORT``
(mapped to 127.0.0.1 by the browser's own resolver rules, so it is not a secure context).
The browser drops the Secure sign-in cookie: the sign-in must say so and name the
setting, and with that setting off the sign-in must work. The browser test is one of the
deployment suites ``.ci/run`` runs after ``make test`` (``PHE_TRACE_DEPLOYMENT_TESTS=1``).
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.reliability.serverproc import PHE_TRACE, ServerProcess

from .gates import deployment

CHROMIUM = Path("/usr/bin/chromium")
PASSWORD = "a long enough password"
NAMED = "The browser did not send the sign-in cookie: it is Secure"
SETTING = "PHE_TRACE_VERIFICATION_COOKIE_SECURE=false"


def _server(tmp_path: Path, **settings: str) -> ServerProcess:
    server = ServerProcess(tmp_path / "hd", role="all", **settings)
    if not (server.data_dir / "verification.sqlite3").exists():
        result = subprocess.run(
            [*PHE_TRACE, "server", "init", "--data-dir", str(server.data_dir),
             "--username", "worker", "--password-stdin"],
            input=PASSWORD + "\n", env=server.env, capture_output=True, text=True, timeout=120,
            check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
    return server.start()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    running = _server(tmp_path)
    try:
        yield running
    finally:
        running.stop()


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, html
    return found.group(1)


def test_sign_in_without_the_dropped_cookie_names_it_over_http(server: ServerProcess) -> None:
    """(SPEC OPS-8) Real HTTP: httpx, like a browser, keeps a Secure cookie but does not
    send it over plain HTTP. The form posted from an http:// page is refused with the
    cookie and the setting named; from an https:// page (behind a TLS proxy) the refusal
    stays the plain CSRF one."""
    with httpx.Client(base_url=server.url) as client:
        form = client.get("/portal/login")
        assert form.status_code == 200
        assert "Secure" in form.headers["set-cookie"]
        fields = {"username": "worker", "password": PASSWORD, "csrf_token": _csrf(form.text)}
        plain = client.post(
            "/portal/login", data=fields, headers={"Origin": "http://portal.test:8080"}
        )
        behind_tls = client.post(
            "/portal/login", data=fields, headers={"X-Forwarded-Proto": "https"}
        )
    assert plain.status_code == 403
    assert NAMED in plain.text and "plain HTTP" in plain.text and SETTING in plain.text
    assert behind_tls.status_code == 403
    assert "The form was missing its security token." in behind_tls.text
    assert NAMED not in behind_tls.text


@deployment
@pytest.mark.skipif(not CHROMIUM.exists(), reason="no /usr/bin/chromium (make test installs it)")
def test_browser_over_plain_http_is_told_why_and_the_setting_fixes_it(tmp_path: Path) -> None:
    """(SPEC OPS-8) Chromium at http://portal.test:PORT: sign-in refused naming the dropped
    Secure cookie and the setting; restarted with the setting off, the same steps sign in."""
    from playwright.sync_api import sync_playwright

    def sign_in(url: str) -> tuple[str, str]:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=str(CHROMIUM),
                headless=True,
                args=["--no-sandbox", "--disable-gpu", "--no-first-run",
                      "--host-resolver-rules=MAP portal.test 127.0.0.1"],
            )  # fmt: skip
            try:
                page = browser.new_page()
                page.goto(url + "/portal/login")
                page.fill("#username", "worker")
                page.fill("#password", PASSWORD)
                page.click("#signin")
                page.wait_for_load_state()
                return page.url, page.locator("body").inner_text()
            finally:
                browser.close()

    running = _server(tmp_path)
    try:
        _, text = sign_in(f"http://portal.test:{running.port}")
    finally:
        running.stop()
    assert NAMED in text and SETTING in text
    running = _server(tmp_path, PHE_TRACE_VERIFICATION_COOKIE_SECURE="false")
    try:
        url, text = sign_in(f"http://portal.test:{running.port}")
    finally:
        running.stop()
    assert url.endswith("/portal/codes/new"), text
    assert "security token" not in text and NAMED not in text
