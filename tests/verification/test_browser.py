"""The portal in a real browser: Playwright driving Debian's chromium, headless.

The Makefile installs chromium when it is missing; without it the test is skipped with
the reason. The screenshot of the issue-code page is saved to
``test-artifacts/portal-issue-code.png``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import WORKER_PASSWORD, Live, start_live

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="no /usr/bin/chromium (make test installs it)"
)


@pytest.fixture
def secure_live(tmp_path: Path, sqlite_url: str) -> Iterator[Live]:
    """The service with production cookies (Secure; 127.0.0.1 is a secure context)."""
    running, live = start_live(tmp_path, sqlite_url, cookie_secure=True)
    try:
        yield live
    finally:
        running.__exit__(None, None, None)
        live.service.close()


@pytest.fixture
def page(secure_live: Live) -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        context = browser.new_context(
            base_url=secure_live.url, viewport={"width": 1100, "height": 760}
        )
        try:
            yield context.new_page()
        finally:
            context.close()
            browser.close()


def test_sign_in_issue_code_see_it_listed_sign_out(secure_live: Live, page: object) -> None:
    """Sign in, issue a code, find it listed, sign out (SPEC VER-1, VER-12, VER-13)."""
    from playwright.sync_api import Page, expect

    assert isinstance(page, Page)
    page.goto("/portal/")
    expect(page).to_have_url(re.compile(r"/portal/login$"))
    page.fill("#username", "worker")
    page.fill("#password", WORKER_PASSWORD)
    page.click("#signin")
    expect(page).to_have_url(re.compile(r"/portal/codes/new$"))

    page.select_option("#test_type", "likely")
    page.click("#issue")
    code = page.locator("#code")
    expect(code).to_have_text(re.compile(r"^\d{8}$"))
    # The server renders 60:00; the page's script then counts down from the server's "now".
    expect(page.locator(".countdown .remaining")).to_have_text(
        re.compile(r"^59:[0-5]\d$"), timeout=15_000
    )
    uuid = page.locator("#issued-uuid").inner_text()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "portal-issue-code.png"), full_page=True)

    page.click("text=Recent codes")
    row = page.locator(f'tr[data-uuid="{uuid}"]')
    expect(row).to_have_attribute("data-status", "unclaimed")
    expect(row).to_contain_text("likely")
    assert code_text_absent(page, uuid)

    page.click("#signout")
    expect(page).to_have_url(re.compile(r"/portal/login$"))
    page.goto("/portal/codes")
    expect(page).to_have_url(re.compile(r"/portal/login$"))


def code_text_absent(page: object, uuid: str) -> bool:
    from playwright.sync_api import Page

    assert isinstance(page, Page)
    html = page.content()
    return uuid[:8] in html and not re.search(r">\d{8}<", html)


def test_post_without_csrf_token_is_refused_in_the_browser(secure_live: Live, page: object) -> None:
    """A form posted without its CSRF token is refused with 403 and issues nothing (SPEC VER-13)."""
    from playwright.sync_api import Page, expect

    assert isinstance(page, Page)
    page.goto("/portal/login")
    page.fill("#username", "worker")
    page.fill("#password", WORKER_PASSWORD)
    page.click("#signin")
    expect(page).to_have_url(re.compile(r"/portal/codes/new$"))
    page.evaluate("document.querySelector('#issue-form input[name=csrf_token]').remove()")
    with page.expect_response(lambda r: r.url.endswith("/portal/codes")) as info:
        page.click("#issue")
    assert info.value.status == 403
    expect(page.locator("h1")).to_have_text("Refused")
    assert (
        secure_live.service.codes.issued_today(secure_live.realm.id, secure_live.clock.now()) == 0
    )
