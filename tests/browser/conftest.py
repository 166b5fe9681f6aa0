"""Fixtures of the browser tests: Debian's Chromium driven by Playwright, against a real server.

Playwright's own browser downloads are never used (they cannot be fetched here nor in CI): the tests drive
the system's /usr/bin/chromium, which `make test` installs with apt-get when it is missing.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    Dialog,
    Page,
    Playwright,
    Request,
    expect,
    sync_playwright,
)

from logsvc.auth.credential_service import NewCredential
from logsvc.auth.policy import Role
from tests.conftest import ServerThread, bearer, make_key, make_settings

CHROMIUM = Path("/usr/bin/chromium")
# Generous: a loaded two-core machine runs these next to other suites.
WAIT_MS = 30_000
expect.set_options(timeout=WAIT_MS)


# Per module, not per session: while Playwright's sync API is open, its event loop is the running loop of
# the main thread, and tests elsewhere that run one of their own (the Lambda handlers') would fail.
@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as running:
        yield running


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: `make test` installs it (apt-get install chromium); "
            "Playwright's own browser downloads are not used"
        )
    launched = playwright.chromium.launch(executable_path=str(CHROMIUM))
    yield launched
    launched.close()


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """Settings of the test's server beyond the defaults; a test parametrizes it to change them."""
    return {}


@pytest.fixture
def server(tmp_path: Path, settings_overrides: dict[str, Any]) -> Iterator[ServerThread]:
    running = ServerThread(make_settings(tmp_path / "data", **settings_overrides)).start()
    yield running
    running.stop()


@pytest.fixture
def reader(server: ServerThread) -> NewCredential:
    return make_key(server.settings, Role.READ)


@dataclass
class Watch:
    """What a page did that no test may allow: requests to another origin, uncaught errors, dialogs
    (an alert() would be script from log text running), Content-Security-Policy violations."""

    origin: str
    foreign: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    def request(self, request: Request) -> None:
        self.requests.append(request.url)
        parts = urlsplit(request.url)
        if f"{parts.scheme}://{parts.netloc}" != self.origin:
            self.foreign.append(request.url)

    def console(self, message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text or "Trusted" in message.text:
            self.violations.append(message.text)

    def dialog(self, dialog: Dialog) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def check(self) -> None:
        assert self.foreign == [], "requests to another origin"
        assert self.errors == [], "uncaught errors in the page"
        assert self.dialogs == [], "dialogs opened"
        assert self.violations == [], "Content-Security-Policy violations"


@pytest.fixture
def watch(server: ServerThread) -> Watch:
    return Watch(origin=server.url)


@pytest.fixture
def page(browser: Browser, server: ServerThread, watch: Watch) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    opened = context.new_page()
    opened.on("request", watch.request)
    opened.on("console", watch.console)
    opened.on("pageerror", lambda error: watch.errors.append(str(error)))
    opened.on("dialog", watch.dialog)
    yield opened
    context.close()
    watch.check()


def ingest(server: ServerThread, entries: list[dict[str, Any]]) -> list[str]:
    """Store entries as an application would (admin key, one batch); their log ids in order."""
    answer = httpx.post(f"{server.url}/logs", json=entries, headers=bearer(server.admin), timeout=30)
    assert answer.status_code == 201, answer.text
    ids: list[str] = answer.json()["log_ids"]
    return ids


def spread(
    count: int,
    *,
    service: str = "api",
    level: str = "INFO",
    start: float | None = None,
    step: float = 1.0,
    message: str = "request {i} handled",
) -> list[dict[str, Any]]:
    """``count`` entries one ``step`` of seconds apart, the newest ``start`` (default: a minute ago)."""
    newest = (time.time() - 60) if start is None else start
    return [
        {
            "service_name": service,
            "level": level,
            "message": message.format(i=i),
            "timestamp": newest - i * step,
            "metadata": {"i": i, "service": service},
        }
        for i in range(count)
    ]


def sign_in(page: Page, server: ServerThread, key: NewCredential, path: str = "/ui/") -> None:
    page.goto(f"{server.url}{path}")
    page.get_by_label("API key").fill(key.api_key)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
