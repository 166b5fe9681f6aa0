"""What the CLI prints of text that a client or the store gave it: shown as it is, never read as rich markup,
and no control character reaches the terminal raw (`recent`, `audit`, `keys list`)."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from logsvc.auth.profiles import write_profile
from tests.conftest import ServerThread, run_logsvc

CLEAR_SCREEN_AND_TITLE = "\x1b[2J\x1b]0;title\x07"
LINK = "[link=https://evil.example]click[/link]"
HOSTILE = ("[/]", CLEAR_SCREEN_AND_TITLE, LINK)


@pytest.fixture(params=["pipe", "terminal"])
def output(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """How the CLI's stdout is treated: a pipe, or a terminal that rich must colour (and would print links
    on, as OSC 8 sequences, if it read markup). Wide, so that no long text is wrapped."""
    monkeypatch.setenv("COLUMNS", "300")
    if request.param == "terminal":
        monkeypatch.setenv("FORCE_COLOR", "1")
        monkeypatch.setenv("TERM", "xterm-256color")
    else:
        monkeypatch.delenv("FORCE_COLOR", raising=False)
        monkeypatch.setenv("TERM", "dumb")
    return str(request.param)


def assert_shown_as_text(printed: str, output: str) -> None:
    assert "[/]" in printed
    assert LINK in printed
    assert "\\x1b[2J\\x1b]0;title\\x07" in printed  # the escapes are visible
    assert "\x07" not in printed
    assert "\x1b]" not in printed  # no OSC: no window title, no link
    # On a terminal the only escape sequences are rich's own colours and weights (SGR); on a pipe, none.
    own = re.sub(r"\x1b\[[0-9;]*m", "", printed) if output == "terminal" else printed
    assert "\x1b" not in own


def test_recent_shows_stored_markup_and_control_characters_as_text(
    server: ServerThread, client: httpx.Client, output: str
) -> None:
    write_profile(
        Path(server.settings.credentials_file), "default", endpoint=server.url, credential=server.admin
    )
    assert client.post("/logs", json=[{"message": m} for m in HOSTILE]).status_code == 201
    shown = run_logsvc(server.settings, "recent")
    assert shown.returncode == 0, shown.stderr
    assert_shown_as_text(shown.stdout, output)
    as_json = run_logsvc(server.settings, "recent", "--json", "--limit", "3")
    assert as_json.returncode == 0, as_json.stderr
    assert "\x1b" not in as_json.stdout
    assert "\\u001b[2J\\u001b]0;title\\u0007" in as_json.stdout


def test_audit_and_keys_list_show_client_text_as_text(
    server: ServerThread, client: httpx.Client, output: str
) -> None:
    refused = httpx.get(
        f"{server.url}/logs/{quote(' '.join(HOSTILE), safe='')}", headers={"Authorization": "Bearer lsk_x_y"}
    )
    assert refused.status_code == 401
    # Reading the trail over the API writes the server's buffer of refused requests to auth.db.
    targets = [e["target"] for e in client.get("/admin/audit").json()]
    # The trail keeps targets printable (control characters escaped when recorded); the CLI adds nothing.
    assert f"GET /logs/[/] \\x1b[2J\\x1b]0;title\\x07 {LINK}" in targets
    made = client.post("/admin/keys", json={"role": "read", "description": " ".join(HOSTILE)})
    assert made.status_code == 201

    audit = run_logsvc(server.settings, "audit")
    assert audit.returncode == 0, audit.stderr
    assert_shown_as_text(audit.stdout, output)
    keys = run_logsvc(server.settings, "keys", "list")
    assert keys.returncode == 0, keys.stderr
    assert_shown_as_text(keys.stdout, output)
