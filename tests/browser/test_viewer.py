"""The web viewer in a real browser (Debian's Chromium, driven by Playwright) against a real server: what an
operator does with it, and what it must never do (run log text, reach another origin, keep the key in a URL
or a cookie). Every test also fails on any request to another origin, any uncaught error, any dialog and
any Content-Security-Policy violation (``Watch`` in conftest.py)."""

from __future__ import annotations

import json
import re
import time
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, Page, Response, expect

from logsvc.auth.credential_service import NewCredential
from logsvc.auth.policy import Role
from tests.browser.conftest import Watch, ingest, sign_in, spread
from tests.conftest import ServerThread, bearer, make_key

ROWS = "#results .row"
NASTY = "<img src=x onerror=\"document.title='pwned';alert(1)\">"


def row_ids(page: Page, selector: str = ROWS) -> list[str]:
    ids: list[str] = page.locator(selector).evaluate_all("rows => rows.map(row => row.dataset.id)")
    return ids


def test_a_browser_at_the_root_is_sent_to_the_viewer_and_sees_the_newest_entries(
    page: Page, server: ServerThread, reader: NewCredential, watch: Watch
) -> None:
    ids = ingest(server, spread(5))
    page.goto(f"{server.url}/")
    expect(page).to_have_url(f"{server.url}/ui/")
    page.get_by_label("API key").fill(reader.api_key)
    page.get_by_role("button", name="Sign in").click()
    rows = page.locator(ROWS)
    expect(rows).to_have_count(5)
    assert row_ids(page) == ids  # newest first
    expect(rows.first).to_contain_text("request 0 handled")
    expect(rows.first.locator(".lvl")).to_have_class(re.compile(r"\blevel-INFO\b"))
    expect(page.locator("#status")).to_have_text("5 entries")
    # The key is kept for the tab only: never in a URL, a cookie or localStorage; sent as a header.
    assert all(reader.api_key not in url for url in [page.url, *watch.requests])
    assert page.evaluate("document.cookie") == ""
    assert page.evaluate("localStorage.length") == 0
    assert page.evaluate("sessionStorage.getItem('logsvc.key')") == reader.api_key

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_label("API key")).to_be_visible()
    expect(rows).to_have_count(0)
    assert page.evaluate("sessionStorage.length") == 0


def test_a_key_that_may_not_read_is_refused_with_the_reason(page: Page, server: ServerThread) -> None:
    writer = make_key(server.settings, Role.INGEST)
    page.goto(f"{server.url}/ui/")
    page.get_by_label("API key").fill("lsk_this-is-not-a-key")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("This key was refused")
    page.get_by_label("API key").fill(writer.api_key)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("This key may not read logs")
    expect(page.get_by_role("button", name="Sign out")).to_be_hidden()
    assert page.evaluate("sessionStorage.length") == 0


def test_search_level_and_time_range_narrow_the_list_and_the_url_shares_the_view(
    page: Page, server: ServerThread, reader: NewCredential
) -> None:
    now = time.time() - 60
    ingest(
        server,
        spread(3, message="payment {i} accepted", start=now)
        + spread(3, level="ERROR", message="payment {i} declined", start=now - 100)
        + spread(2, message="nightly job {i} done", start=now - 2 * 3600),
    )
    sign_in(page, server, reader)
    rows = page.locator(ROWS)
    expect(rows).to_have_count(8)

    page.get_by_label("Search").fill("declined")
    page.get_by_label("Search").press("Enter")
    expect(rows).to_have_count(3)
    expect(rows.locator(".msg")).to_have_text([f"payment {i} declined" for i in range(3)])
    expect(page).to_have_url(re.compile(r"[?&]q=declined\b"))

    page.get_by_label("Search").fill("")
    page.get_by_label("Search").press("Enter")
    page.get_by_label("Minimum level").select_option("WARN")
    expect(rows).to_have_count(3)
    expect(rows.locator(".lvl")).to_have_text(["ERROR"] * 3)
    expect(page).to_have_url(re.compile(r"[?&]min_level=WARN\b"))

    page.get_by_label("Minimum level").select_option("")
    page.get_by_label("Time range").select_option("1h")
    expect(rows).to_have_count(6)  # the nightly job ran two hours ago
    expect(page).to_have_url(re.compile(r"[?&]range=1h\b"))

    # A custom range starts as the span shown (the last hour, in the browser's time zone), to be edited.
    page.get_by_label("Time range").select_option("custom")
    expect(page.get_by_label("Since")).to_be_focused()
    page.get_by_role("button", name="Apply").click()
    expect(page).to_have_url(re.compile(r"[?&]range=custom\b"))
    custom = parse_qs(urlsplit(page.url).query)
    assert custom["since"][0] < custom["until"][0]
    expect(rows).to_have_count(6)
    page.get_by_label("Time range").select_option("1h")

    # The address is the view: opened again (the tab keeps its key), it shows the same.
    page.get_by_label("Search").fill("payment accepted")
    page.get_by_label("Search").press("Enter")
    expect(rows).to_have_count(3)
    shared = page.url
    page.goto(f"{server.url}/ui/")
    expect(rows).to_have_count(8)
    page.goto(shared)
    expect(rows).to_have_count(3)
    expect(page.get_by_label("Search")).to_have_value("payment accepted")
    expect(page.get_by_label("Time range")).to_have_value("1h")
    page.go_back()
    expect(rows).to_have_count(8)


def test_the_service_list_comes_from_the_server_and_filters_the_list(
    page: Page, server: ServerThread, reader: NewCredential
) -> None:
    ingest(server, spread(3, service="api") + spread(2, service="billing", start=time.time() - 30))
    sign_in(page, server, reader)
    service = page.get_by_label("Service")
    expect(service.locator("option")).to_have_text(["All services", "api (3)", "billing (2)"])
    service.select_option("billing")
    rows = page.locator(ROWS)
    expect(rows).to_have_count(2)
    expect(rows.locator(".svc")).to_have_text(["billing", "billing"])
    expect(page).to_have_url(re.compile(r"[?&]service_name=billing\b"))


def test_a_scoped_key_sees_only_its_services(page: Page, server: ServerThread) -> None:
    ingest(server, spread(3, service="api") + spread(2, service="billing", start=time.time() - 30))
    scoped = make_key(server.settings, Role.READ, ("billing",))
    sign_in(page, server, scoped)
    rows = page.locator(ROWS)
    expect(rows).to_have_count(2)
    expect(rows.locator(".svc")).to_have_text(["billing", "billing"])
    expect(page.get_by_label("Service").locator("option")).to_have_text(["All services", "billing (2)"])


def test_an_entry_opens_with_every_field_a_permalink_and_its_context(
    page: Page, server: ServerThread, reader: NewCredential
) -> None:
    start = time.time() - 60
    ids = ingest(server, spread(30, service="api", message="api step {i}", start=start))
    # Another service's entries at the same times are no part of the context.
    ingest(server, spread(30, service="billing", message="billing step {i}", start=start - 0.5))
    sign_in(page, server, reader, "/ui/?service_name=api")
    page.locator(f'{ROWS}[data-id="{ids[15]}"]').click()

    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    expect(dialog.locator("#entry-message")).to_have_text("api step 15")
    stored = httpx.get(f"{server.url}/logs/{ids[15]}", headers=bearer(server.admin), timeout=10).json()
    assert json.loads(dialog.locator("#entry-json").text_content() or "") == stored
    assert stored["metadata"] == {"i": 15, "service": "api"}
    permalink = dialog.get_by_role("link", name="Permalink")
    expect(permalink).to_have_attribute("href", f"{server.url}/ui/?entry={ids[15]}")
    expect(page).to_have_url(re.compile(rf"[?&]entry={ids[15]}\b"))

    # Ten before and ten after, in time order: before + [entry] + after.
    context = dialog.locator("#context .row")
    expect(context).to_have_count(21)
    assert row_ids(page, "#context .row") == list(reversed(ids[5:26]))
    expect(dialog.locator('#context [aria-current="true"]')).to_have_attribute("data-id", ids[15])

    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(page).not_to_have_url(re.compile(r"entry="))

    shared = f"{server.url}/ui/?entry={ids[3]}"
    page.goto(shared)
    expect(dialog).to_be_visible()
    expect(dialog.locator("#entry-message")).to_have_text("api step 3")
    assert page.url == shared


def test_the_keyboard_alone_searches_opens_and_closes(
    page: Page, server: ServerThread, reader: NewCredential
) -> None:
    ingest(server, spread(3))
    sign_in(page, server, reader)
    rows = page.locator(ROWS)
    expect(rows).to_have_count(3)
    page.locator("h1").click()  # focus on nothing in particular
    page.keyboard.press("/")
    expect(page.get_by_label("Search")).to_be_focused()
    page.keyboard.type("request 1")
    page.keyboard.press("Enter")
    expect(rows).to_have_count(1)
    page.get_by_label("Search").fill("")
    page.keyboard.press("Enter")
    expect(rows).to_have_count(3)
    for _ in range(20):  # Tab through the query bar to the first row
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.classList.contains('row')"):
            break
    expect(rows.first).to_be_focused()
    page.keyboard.press("ArrowDown")
    expect(rows.nth(1)).to_be_focused()
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    expect(dialog.locator("#entry-message")).to_have_text("request 1 handled")
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(rows.nth(1)).to_be_focused()


def test_scrolling_down_loads_the_next_pages(page: Page, server: ServerThread, reader: NewCredential) -> None:
    ids = ingest(server, spread(250))
    sign_in(page, server, reader)
    rows = page.locator(ROWS)
    expect(rows).to_have_count(100)
    page.locator("#more").scroll_into_view_if_needed()
    expect(rows).to_have_count(200)
    page.locator("#more").scroll_into_view_if_needed()
    expect(rows).to_have_count(250)
    expect(page.locator("#more")).to_have_text("End of the results")
    assert row_ids(page) == ids


def test_live_shows_new_entries_as_they_arrive(
    page: Page, server: ServerThread, reader: NewCredential
) -> None:
    ingest(server, spread(3))
    sign_in(page, server, reader)
    rows = page.locator(ROWS)
    expect(rows).to_have_count(3)
    live = page.get_by_role("button", name="Live")
    live.click()
    expect(live).to_have_attribute("aria-pressed", "true")
    expect(page.locator("#live-state")).to_have_text("connected")
    expect(page).to_have_url(re.compile(r"[?&]live=1\b"))

    new = ingest(server, [{"service_name": "api", "level": "WARN", "message": "arrived while watching"}])
    expect(rows).to_have_count(4)
    expect(rows.first).to_have_attribute("data-id", new[0])
    expect(rows.first.locator(".lvl")).to_have_text("WARN")
    expect(page.locator("#rate")).not_to_have_text("0.0")
    expect(page.locator("#dropped")).to_have_text("0")

    live.click()
    expect(live).to_have_attribute("aria-pressed", "false")
    expect(page.locator("#live-status")).to_be_hidden()


def test_live_pauses_while_the_reader_scrolls_away_from_the_top(
    page: Page, server: ServerThread, reader: NewCredential
) -> None:
    ingest(server, spread(100))
    sign_in(page, server, reader)
    rows = page.locator(ROWS)
    expect(rows).to_have_count(100)
    page.get_by_role("button", name="Live").click()
    expect(page.locator("#live-state")).to_have_text("connected")
    newest = row_ids(page)[0]

    # (Newer Chromium returns a promise from scrollTo; awaiting undefined is harmless elsewhere.)
    assert page.evaluate("async () => { await window.scrollTo(0, 600); return window.scrollY; }") == 600
    new = ingest(server, [{"service_name": "api", "message": f"while away {i}"} for i in range(2)])
    resume = page.get_by_role("button", name=re.compile("Paused"))
    expect(resume).to_have_text("Paused: 2 new, show them")
    assert row_ids(page)[0] == newest  # the list held still under the reader

    resume.click()
    expect(rows).to_have_count(102)
    assert row_ids(page)[:3] == [new[1], new[0], newest]
    expect(resume).to_be_hidden()


@pytest.mark.parametrize("settings_overrides", [{"tail_stream_seconds": 1.0}])
def test_live_resumes_each_ended_stream_without_gaps_or_repeats(
    page: Page, server: ServerThread, reader: NewCredential
) -> None:
    sign_in(page, server, reader)
    page.get_by_role("button", name="Live").click()
    expect(page.locator("#live-state")).to_have_text("connected")
    sent: list[str] = []
    resumed_from: list[str] = []
    # The server ends each stream after a second; entries keep coming while the viewer reconnects.
    for round_ in range(3):
        sent += ingest(
            server, [{"service_name": "api", "message": f"round {round_} entry {i}"} for i in range(5)]
        )
        with page.expect_request(lambda request: "/logs/tail" in request.url) as reconnect:
            pass
        resumed_from.append(reconnect.value.all_headers().get("last-event-id", ""))
    rows = page.locator(ROWS)
    expect(rows).to_have_count(15)
    assert sorted(row_ids(page)) == sorted(sent)
    assert all(resumed_from[1:]), resumed_from  # each reconnection after the first entries names the last


@pytest.mark.parametrize("settings_overrides", [{"tail_queue_entries": 1}])
def test_live_shows_how_many_entries_the_server_dropped(
    page: Page, server: ServerThread, reader: NewCredential
) -> None:
    sign_in(page, server, reader)
    page.get_by_role("button", name="Live").click()
    expect(page.locator("#live-state")).to_have_text("connected")
    # One commit of 50 reaches a stream that holds 1: the first is sent, 49 are counted as dropped.
    sent = ingest(server, [{"service_name": "api", "message": f"burst {i}"} for i in range(50)])
    expect(page.locator("#dropped")).to_have_text("49")
    expect(page.locator(ROWS)).to_have_count(1)
    assert row_ids(page) == sent[:1]


def test_the_chart_counts_what_was_ingested_and_a_drag_narrows_the_range(
    page: Page, server: ServerThread, reader: NewCredential
) -> None:
    now = time.time()
    ingest(
        server,
        spread(7, level="ERROR", start=now - 600)
        + spread(12, level="INFO", start=now - 1800)
        + spread(3, level="WARN", start=now - 2400),
    )
    sign_in(page, server, reader, "/ui/?range=1h")
    chart = page.locator("#chart svg")
    expect(chart).to_have_attribute("data-total", "22")
    counted = page.evaluate(
        """() => {
            const counts = {};
            for (const bar of document.querySelectorAll("#chart rect.bar")) {
                counts[bar.dataset.level] = (counts[bar.dataset.level] || 0) + Number(bar.dataset.count);
            }
            return counts;
        }"""
    )
    assert counted == {"ERROR": 7, "INFO": 12, "WARN": 3}

    # Drag from the first bar holding errors to the right edge: only the errors remain.
    first_error = page.locator("#chart rect.bar.level-ERROR").first.bounding_box()
    box = chart.bounding_box()
    assert first_error is not None
    assert box is not None
    y = box["y"] + box["height"] / 2
    page.mouse.move(first_error["x"] + 1, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] - 12, y, steps=5)
    page.mouse.up()
    expect(page).to_have_url(re.compile(r"[?&]range=custom\b"))
    narrowed = parse_qs(urlsplit(page.url).query)
    assert narrowed["since"][0] < narrowed["until"][0]
    expect(page.get_by_label("Time range")).to_have_value("custom")
    expect(page.locator(ROWS)).to_have_count(7)
    expect(page.locator(ROWS).locator(".lvl")).to_have_text(["ERROR"] * 7)
    expect(chart).to_have_attribute("data-total", "7")


def test_log_text_is_shown_as_text_and_never_runs(
    page: Page, server: ServerThread, reader: NewCredential, watch: Watch
) -> None:
    metadata = {"html": "<script>alert(2)</script>", "<b>key</b>": "<svg onload=alert(3)>"}
    ingest(server, [{"service_name": "api", "level": "ERROR", "message": NASTY, "metadata": metadata}])
    sign_in(page, server, reader)
    row = page.locator(ROWS).first
    expect(row.locator(".msg")).to_have_text(NASTY)
    row.click()
    dialog = page.get_by_role("dialog")
    expect(dialog.locator("#entry-message")).to_have_text(NASTY)
    assert json.loads(dialog.locator("#entry-json").text_content() or "")["metadata"] == metadata
    expect(dialog.locator("#context-status")).not_to_have_text("Loading…")

    assert page.locator("img").count() == 0
    assert page.locator("[onerror], [onload]").count() == 0
    assert page.locator("script:not([src])").count() == 0
    assert page.title() == "Logs · Simple Log Service"
    assert watch.dialogs == []
    # And the browser itself refuses every HTML sink on this page (Trusted Types without a policy).
    with page.expect_console_message(lambda message: "TrustedHTML" in message.text):
        refused = page.evaluate(
            """() => {
                try { document.body.insertAdjacentHTML("beforeend", "<b>x</b>"); return "inserted"; }
                catch (error) { return error.name; }
            }"""
        )
    assert refused == "TypeError"
    watch.violations.clear()  # that one was made on purpose


def test_nothing_is_requested_from_another_origin(
    page: Page, server: ServerThread, reader: NewCredential, watch: Watch
) -> None:
    ingest(server, spread(5))
    sign_in(page, server, reader)
    expect(page.locator(ROWS)).to_have_count(5)
    page.locator(ROWS).first.click()
    expect(page.get_by_role("dialog")).to_be_visible()
    page.keyboard.press("Escape")
    page.get_by_role("button", name="Live").click()
    expect(page.locator("#live-status")).to_be_visible()
    assert {url.split("?")[0] for url in watch.requests} >= {
        f"{server.url}/ui/",
        f"{server.url}/ui/app.js",
        f"{server.url}/ui/style.css",
        f"{server.url}/ui/icon.svg",
        f"{server.url}/logs",
    }
    assert watch.foreign == []
    fonts = page.evaluate("getComputedStyle(document.body).fontFamily")
    assert "system-ui" in fonts


def test_every_viewer_file_carries_a_strict_content_security_policy(page: Page, server: ServerThread) -> None:
    policies: dict[str, dict[str, str]] = {}

    def seen(response: Response) -> None:
        if "/ui/" in response.url:
            policies[response.url] = response.headers

    page.on("response", seen)
    page.goto(f"{server.url}/ui/")
    expect(page.get_by_label("API key")).to_be_visible()
    assert {f"{server.url}/ui/{name}" for name in ("", "app.js", "api.js", "style.css")} <= policies.keys()
    for url, headers in policies.items():
        directives = dict(part.partition(" ")[::2] for part in headers["content-security-policy"].split("; "))
        assert directives["default-src"] == "'self'", url
        assert directives["frame-ancestors"] == "'none'", url
        assert directives["object-src"] == "'none'", url
        assert directives["form-action"] == "'none'", url
        assert "script-src" not in directives, url  # so default-src 'self' governs scripts
        assert "style-src" not in directives, url
        assert not re.search(r"unsafe-|\*|data:|blob:|http", headers["content-security-policy"]), url
        assert headers["x-content-type-options"] == "nosniff", url
        assert headers["x-frame-options"] == "DENY", url
        assert headers["referrer-policy"] == "no-referrer", url


def test_light_and_dark_follow_the_system_setting(browser: Browser, server: ServerThread) -> None:
    for scheme, background in (("light", "rgb(255, 255, 255)"), ("dark", "rgb(13, 17, 23)")):
        context = browser.new_context(color_scheme=scheme)
        try:
            page = context.new_page()
            page.goto(f"{server.url}/ui/")
            expect(page.get_by_label("API key")).to_be_visible()
            assert page.evaluate("getComputedStyle(document.body).backgroundColor") == background
        finally:
            context.close()


# The examples of the WHATWG HTML standard, section "Server-sent events" (9.2.6), and the shapes of our
# own stream (CRLF and CR line ends, a heartbeat comment, an id that carries over to the next event, an
# id-only event that moves the cursor); each with the events and the last event ID a reconnection sends.
SSE_CASES = [
    ("data: YHOO\ndata: +2\ndata: 10\n\n", [["message", "YHOO\n+2\n10", ""]], ""),
    (
        ": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\ndata:  third event\n\n",
        [["message", "first event", "1"], ["message", "second event", ""], ["message", " third event", ""]],
        "",
    ),
    ("data\n\ndata\ndata\n\ndata:", [["message", "", ""], ["message", "\n", ""]], ""),
    ("data:test\n\ndata: test\n\n", [["message", "test", ""], ["message", "test", ""]], ""),
    (
        'event: entry\r\nid: c1\r\ndata: {"a":1}\r\n\r\n'
        ': heartbeat\r\r\nevent: dropped\rdata: {"dropped": 3}\r\r',
        [["entry", '{"a":1}', "c1"], ["dropped", '{"dropped": 3}', "c1"]],
        "c1",
    ),
    # An event cut off before its blank line is not taken, nor is its id: a reconnection asks for it again.
    (
        'id: p1\n\n: heartbeat\n\nid: c2\nevent: entry\ndata: {"b":\ndata: 2}\n\n'
        "id: c3\nevent: entry\ndata: {",
        [["entry", '{"b":\n2}', "c2"]],
        "c2",
    ),
]


def test_the_event_stream_parser_reads_the_standards_examples_however_they_are_split(
    page: Page, server: ServerThread
) -> None:
    page.goto(f"{server.url}/ui/")
    expect(page.get_by_label("API key")).to_be_visible()
    for stream, expected, last_id in SSE_CASES:
        splits = page.evaluate(
            """async (stream) => {
                const { SseParser } = await import(new URL("sse.js", location.href));
                const parse = (chunks) => {
                    const events = [];
                    const parser = new SseParser((event) => events.push([event.type, event.data, event.id]));
                    for (const chunk of chunks) parser.push(chunk);
                    return [events, parser.lastEventId];
                };
                const results = [parse([stream]), parse([...stream])];
                for (let at = 1; at < stream.length; at++) {
                    results.push(parse([stream.slice(0, at), stream.slice(at)]));
                }
                return results;
            }""",
            stream,
        )
        for events, last in splits:
            assert (events, last) == (expected, last_id), stream
