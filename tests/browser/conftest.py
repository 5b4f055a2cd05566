"""Browser tests of the Console: Playwright's sync API driving Debian's Chromium (never a
browser that Playwright downloads) against pytest-django's live server.

- Chromium: $CDP_CHROMIUM, else `chromium` on the PATH, else /usr/bin/chromium. Without it
  (or without the playwright package) the tests skip with the reason, except where the
  environment sets CI: there they fail, since CI must run them (.ci/run installs chromium).
- The live server keeps the `API_KEY` header, as `make run` and production do
  (cdp/wire_headers.py): Django's test server drops headers with underscores.
- Playwright's sync API runs an event loop in the test thread, which Django's ORM takes for
  an async context; DJANGO_ALLOW_ASYNC_UNSAFE lets the tests use the ORM and services
  while a browser is open (only then: the variable is restored when the browser closes).
- Screenshots of each step go to docs/console/ only when CDP_SCREENSHOTS=1
  (docs/console.md embeds them), so ordinary runs leave the tree clean.
"""

from __future__ import annotations

import json
import os
import shutil
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cdp import services
from cdp.wire_headers import WireHeadersRequestHandler

PASSWORD = "s3cret-pass-word"
SCREENSHOT_DIR = Path(__file__).resolve().parents[2] / "docs" / "console"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
VIEWPORT = {"width": 1600, "height": 900}
TIMEOUT_MS = 15_000


def chromium_path() -> str | None:
    wanted = os.environ.get("CDP_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    return wanted if os.path.isfile(wanted) and os.access(wanted, os.X_OK) else None


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI must run the browser tests (.ci/run installs chromium).")
    pytest.skip(f"{reason}: browser tests skipped (install Debian's chromium to run them).")


# --- the browser --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium per test module."""
    executable = chromium_path()
    if executable is None:
        _unavailable("No Chromium found (CDP_CHROMIUM, `chromium` on the PATH, /usr/bin/chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("The playwright package is not installed (pip install -e '.[test]')")
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(
                executable_path=executable, headless=True, args=CHROMIUM_ARGS
            )
            try:
                yield chromium
            finally:
                chromium.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def new_page(browser: Any) -> Iterator[Any]:
    """A factory of pages, each in its own browser context (its own cookies: one signed-in
    user each). Every context is closed after the test."""
    contexts: list[Any] = []

    def make(**options: Any) -> Any:
        context = browser.new_context(viewport=VIEWPORT, **options)
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


# --- the live server ----------------------------------------------------------------------


class _BrowserTestRequestHandler(WireHeadersRequestHandler):
    """The project's request handler (keeps API_KEY), quiet like Django's test handler."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def console_server(live_server: Any, transactional_db: Any) -> Iterator[str]:
    """The live server's base URL, its requests handled like `make run`'s (API_KEY kept)."""
    httpd = live_server.thread.httpd
    previous = httpd.RequestHandlerClass
    httpd.RequestHandlerClass = _BrowserTestRequestHandler
    try:
        yield live_server.url
    finally:
        httpd.RequestHandlerClass = previous


# --- members, screenshots, the HTTP API ---------------------------------------------------


@dataclass
class Admin:
    organization: Any
    user: Any
    raw_key: str

    @property
    def username(self) -> str:
        return self.user.username


def organization_admin(name: str, username: str) -> Admin:
    """An organization with an admin who may sign in to the Console and holds an API key,
    set up as an operator does it (DESIGN §10, docs/decisions.md: staff + membership)."""
    organization = services.organization_create(name=name)
    user = services.user_create(username=username, password=PASSWORD)
    membership = services.member_add(organization=organization, user=user, role="admin")
    services.console_access_grant(user=user)
    _api_key, raw_key = services.api_key_create(membership=membership, name="crm-sync")
    return Admin(organization, user, raw_key)


def sign_in(page: Any, base_url: str, username: str, password: str = PASSWORD) -> None:
    page.goto(f"{base_url}/console/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("#login-form input[type=submit]")
    page.wait_for_selector("#user-tools")


class Screenshots:
    """Saves a PNG of a page into docs/console/ when CDP_SCREENSHOTS=1, else nothing."""

    def __init__(self, directory: Path, enabled: bool) -> None:
        self.directory = directory
        self.enabled = enabled
        self.taken: list[Path] = []

    def __call__(self, page: Any, name: str, *, full_page: bool = True, wide: bool = False) -> None:
        """`wide`: with the navigation sidebar folded away (its « button), as a person
        reading a list of many columns does, and opened again afterwards."""
        if not self.enabled:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"{name}.png"
        fold = wide and page.locator("#toggle-nav-sidebar").is_visible()
        if fold:
            page.click("#toggle-nav-sidebar")
        page.evaluate("window.scrollTo(0, 0)")  # the sticky sidebar at its place
        page.screenshot(path=str(path), full_page=full_page, animations="disabled")
        if fold:
            page.click("#toggle-nav-sidebar")
        self.taken.append(path)


@pytest.fixture
def screenshot() -> Screenshots:
    return Screenshots(SCREENSHOT_DIR, os.environ.get("CDP_SCREENSHOTS") == "1")


def http_json(
    url: str, body: dict[str, Any], headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any]]:
    """POST `body` as JSON with urllib, as a client of the API would; (status, JSON body)."""
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **(headers or {})},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def api_token(base_url: str, admin: Admin) -> str:
    status, body = http_json(
        f"{base_url}/api/accounts/authen",
        {
            "username": admin.username,
            "apiKey": admin.raw_key,
            "cdpGKey": admin.organization.group_key,
        },
    )
    assert status == 200, body
    return body["token"]


def api_ingest(
    base_url: str, admin: Admin, token: str, payload: dict[str, Any]
) -> tuple[int, dict[str, Any]]:
    return http_json(
        f"{base_url}/dhub-i/api/v1.0/ingest",
        payload,
        {"TOKEN": token, "API_KEY": admin.raw_key},
    )
