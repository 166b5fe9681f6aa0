"""The web viewer as HTTP serves it: `GET /` negotiated between browsers and Elasticsearch's agents, and the
files under /ui/, each with its media type and the strict security headers, to anyone (they hold no data:
the viewer reads the API with the key its user gives it)."""

from __future__ import annotations

from importlib.resources import files

import httpx
import pytest

from logsvc.auth.policy import Role
from logsvc.viewer import CONTENT_SECURITY_POLICY, MEDIA_TYPES
from tests.conftest import ServerThread, bearer, make_key

CHROMIUM_ACCEPT = (
    "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8"
)
UI_FILES = sorted(item.name for item in files("logsvc").joinpath("ui").iterdir() if item.is_file())


def test_a_browser_at_the_root_is_sent_to_the_viewer(server: ServerThread) -> None:
    for method in ("GET", "HEAD"):
        answer = httpx.request(method, f"{server.url}/", headers={"Accept": CHROMIUM_ACCEPT}, timeout=10)
        assert answer.status_code == 303, method
        assert answer.headers["location"] == "/ui/"
    # The redirect needs no credentials, and is the same with them.
    signed = httpx.get(f"{server.url}/", headers={"Accept": "text/html", **bearer(server.admin)}, timeout=10)
    assert (signed.status_code, signed.headers["location"]) == (303, "/ui/")


@pytest.mark.parametrize("accept", [None, "*/*", "application/json", "text/html;q=0"])
def test_any_other_client_gets_the_version_document_with_an_ingest_key(
    server: ServerThread, accept: str | None
) -> None:
    headers = {} if accept is None else {"Accept": accept}
    writer = make_key(server.settings, Role.INGEST)
    answer = httpx.get(f"{server.url}/", headers=headers | bearer(writer), timeout=10)
    assert answer.status_code == 200
    assert answer.headers["x-elastic-product"] == "Elasticsearch"
    assert answer.json()["name"] == "logsvc"
    # The redirect opens nothing: without credentials (or with a wrong one) the document is refused.
    assert httpx.get(f"{server.url}/", headers=headers, timeout=10).status_code == 401
    wrong = httpx.get(f"{server.url}/", headers=headers | {"Authorization": "Bearer lsk_wrong"}, timeout=10)
    assert wrong.status_code == 401


def test_every_file_of_the_viewer_is_served_with_its_type_and_a_strict_policy(server: ServerThread) -> None:
    assert {"index.html", "app.js", "style.css"} <= set(UI_FILES)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for name in ["", *UI_FILES]:
            answer = client.get(f"/ui/{name}")
            assert answer.status_code == 200, name
            expected = files("logsvc").joinpath("ui", name or "index.html").read_bytes()
            assert answer.content == expected, name
            suffix = "." + (name or "index.html").rsplit(".", 1)[1]
            assert answer.headers["content-type"] == MEDIA_TYPES[suffix], name
            assert answer.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
            assert answer.headers["x-content-type-options"] == "nosniff"
            assert answer.headers["x-frame-options"] == "DENY"
            assert answer.headers["referrer-policy"] == "no-referrer"
        # Without its slash the viewer's address still leads there.
        bare = client.get("/ui")
        assert bare.status_code in (307, 308)
        assert bare.headers["location"].endswith("/ui/")


@pytest.mark.parametrize(
    "path", ["/ui/nothing.js", "/ui/..%2Fendpoints.py", "/ui/%2e%2e", "/ui/index.html%00.js", "/ui/ui/app.js"]
)
def test_nothing_else_is_served_from_there(server: ServerThread, path: str) -> None:
    answer = httpx.get(f"{server.url}{path}", timeout=10)
    assert answer.status_code == 404
    assert answer.headers["content-type"] == "application/problem+json"
    assert "def " not in answer.text
