"""The viewer's pictures in docs/images/ (`make screenshots`): a server with a day of sample entries, the
list with its chart, one entry with its context, and Live, in Debian's Chromium.

    python -m tests.browser.screenshots [list] [entry] [live]
"""

from __future__ import annotations

import math
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, expect, sync_playwright

from logsvc.auth.policy import Role
from tests.browser.conftest import CHROMIUM, WAIT_MS, ingest
from tests.conftest import ServerThread, make_key, make_settings

IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"
VIEWS = ("list", "entry", "live")
SERVICES = {
    "api": [
        ("INFO", "GET /orders/{n} 200 in {ms} ms"),
        ("INFO", "POST /orders 201 in {ms} ms"),
        ("WARN", "GET /orders/{n} 429: client over its rate limit"),
        ("DEBUG", "cache hit for order {n}"),
    ],
    "billing": [
        ("INFO", "payment {n} captured"),
        ("WARN", "payment {n} retried: gateway answered 503"),
        ("ERROR", "payment {n} declined: card expired"),
    ],
    "worker": [
        ("INFO", "job export-{n} done in {ms} ms"),
        ("DEBUG", "queue depth {ms}"),
    ],
    "auth": [
        ("INFO", "user {n} signed in"),
        ("WARN", "user {n}: wrong password"),
    ],
}


def sample_day(rng: random.Random, now: float) -> list[dict[str, Any]]:
    """A day of traffic with a daily rhythm and, three hours ago, twenty minutes of payment failures."""
    entries = []
    for minute in range(24 * 60):
        at = now - minute * 60
        busy = 4 + 3 * math.sin(2 * math.pi * (at % 86_400) / 86_400)
        incident = 160 <= minute < 180
        for _ in range(max(0, int(rng.gauss(busy, 1.5)))):
            service = rng.choice(list(SERVICES))
            level, text = rng.choice(SERVICES[service])
            if incident and rng.random() < 0.6:
                service, level, text = "billing", "ERROR", "payment {n} declined: card expired"
            n, ms = rng.randint(10_000, 99_999), rng.randint(3, 900)
            entries.append(
                {
                    "service_name": service,
                    "level": level,
                    "message": text.format(n=n, ms=ms),
                    "timestamp": at - rng.random() * 60,
                    "metadata": {"request_id": f"req-{rng.getrandbits(48):012x}", "region": "eu-west-1"},
                }
            )
    return entries


def sign_in(page: Page, server: ServerThread, key: str, path: str) -> None:
    page.goto(f"{server.url}{path}")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()


def main(views: list[str]) -> None:
    unknown = set(views) - set(VIEWS)
    if unknown:
        sys.exit(f"unknown views {sorted(unknown)}; choose from {', '.join(VIEWS)}")
    expect.set_options(timeout=WAIT_MS)
    rng = random.Random(13)
    IMAGES.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="logsvc-screenshots-") as work:
        server = ServerThread(make_settings(Path(work) / "data")).start()
        try:
            ingest(server, sample_day(rng, time.time() - 30))
            key = make_key(server.settings, Role.READ).api_key
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=str(CHROMIUM))
                try:
                    page = browser.new_page(viewport={"width": 1280, "height": 900}, color_scheme="light")
                    sign_in(page, server, key, "/ui/?range=24h")
                    expect(page.locator("#results .row")).to_have_count(100)
                    if "list" in views or "entry" in views:
                        expect(page.locator("#chart svg")).to_be_visible()
                    if "list" in views:
                        page.screenshot(path=IMAGES / "viewer-list.png")
                    if "entry" in views:
                        page.get_by_label("Service").select_option("billing")
                        page.get_by_label("Minimum level").select_option("ERROR")
                        page.locator("#results .row").nth(3).click()
                        current = page.locator('#context [aria-current="true"]')
                        expect(current).to_be_visible()
                        current.scroll_into_view_if_needed()
                        page.screenshot(path=IMAGES / "viewer-entry.png")
                        page.keyboard.press("Escape")
                    if "live" in views:
                        take_live(page, server, rng)
                finally:
                    browser.close()
        finally:
            server.stop()
    for view in views:
        print(IMAGES / f"viewer-{view}.png")


def take_live(page: Page, server: ServerThread, rng: random.Random) -> None:
    page.goto(f"{server.url}/ui/?range=15m&live=1")
    expect(page.locator("#live-state")).to_have_text("connected")
    for _ in range(6):
        service = rng.choice(list(SERVICES))
        sent = ingest(
            server,
            [
                {
                    "service_name": service,
                    "level": level,
                    "message": text.format(n=rng.randint(10_000, 99_999), ms=rng.randint(3, 900)),
                }
                for level, text in rng.sample(SERVICES[service], k=len(SERVICES[service]))
            ],
        )
        expect(page.locator(f'#results .row[data-id="{sent[-1]}"]')).to_be_visible()
    # The live bar and the list under it, as they move.
    top = page.locator("#live-status").bounding_box()
    assert top is not None
    viewport = page.viewport_size
    assert viewport is not None
    clip = {"x": 0, "y": top["y"] - 8, "width": viewport["width"], "height": 420}
    page.screenshot(path=IMAGES / "viewer-live.png", clip=clip)


if __name__ == "__main__":
    main(sys.argv[1:] or list(VIEWS))
