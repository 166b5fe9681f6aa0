"""Authentication and authorization against a real server: every route, every role, every scheme."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from logsvc.api.routes import starlette_routes
from logsvc.auth.credential_service import CredentialService, NewCredential
from logsvc.auth.credentials import AuthStore
from logsvc.auth.policy import Permission, Role
from logsvc.crypto import store_key
from logsvc.endpoints import ENDPOINTS
from tests.conftest import ServerThread, bearer, eventually, make_key, make_settings

ROLES: dict[str, tuple[Role, tuple[str, ...]] | None] = {
    "none": None,
    "ingest": (Role.INGEST, ()),
    "read": (Role.READ, ()),
    "admin": (Role.ADMIN, ()),
    "ingest:payments*": (Role.INGEST, ("payments*",)),
    "read:payments*": (Role.READ, ("payments*",)),
}
ALLOWED = {
    Permission.PUBLIC: set(ROLES),
    Permission.INGEST: {"ingest", "admin", "ingest:payments*"},
    Permission.READ: {"read", "admin", "read:payments*"},
    Permission.ADMIN: {"admin"},
}


@pytest.fixture(scope="module")
def secured(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ServerThread, dict[str, NewCredential]]]:
    running = ServerThread(make_settings(tmp_path_factory.mktemp("auth") / "data")).start()
    keys = {name: make_key(running.settings, *spec) for name, spec in ROLES.items() if spec is not None}
    yield running, keys
    running.stop()


def call(client: httpx.Client, method: str, path: str, headers: dict[str, str]) -> httpx.Response:
    filled = path.replace("{log_id}", str(uuid.uuid4())).replace("{access_key_id}", "LSKUNKNOWN")
    entry = {"severity": "info"} if path.startswith("/compat/") else {"service_name": "payments-eu"}
    body = json.dumps(entry | {"message": "m"}) if method == "POST" else None
    return client.request(
        method, filled, content=body, headers={**headers, "Content-Type": "application/json"}
    )


def test_the_server_serves_exactly_the_declared_routes() -> None:
    """Each route the server serves is one endpoint of the table, with the permission it declares."""
    served = {
        (method, route.path, app.endpoint.name)
        for route in starlette_routes(ENDPOINTS)
        for method, app in route.app.apps.items()  # type: ignore[attr-defined]
    }
    assert served == {(endpoint.method, endpoint.path, endpoint.name) for endpoint in ENDPOINTS}
    assert all(isinstance(endpoint.permission, Permission) for endpoint in ENDPOINTS)


@pytest.mark.parametrize("role", list(ROLES))
def test_authorization_matrix(secured: tuple[ServerThread, dict[str, NewCredential]], role: str) -> None:
    """Each route answers each kind of caller as its declared permission says; nothing is left open."""
    server, keys = secured
    headers = bearer(keys[role]) if role in keys else {}
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for endpoint in ENDPOINTS:
            method, path = endpoint.method, endpoint.path
            response = call(client, method, path, headers)
            if role in ALLOWED[endpoint.permission] and path.startswith("/compat/") and ":" in role:
                # The older clients' routes write and read one service of their own: not in this scope.
                assert response.status_code == 403, (method, path)
                assert "may write only to services" in response.text or "may read only" in response.text
            elif role in ALLOWED[endpoint.permission]:
                assert response.status_code not in (401, 403), (method, path, response.text)
            elif role == "none":
                assert response.status_code == 401, (method, path)
                assert response.json()["code"] == "missing_authentication_token"
                challenges = response.headers["www-authenticate"]
                assert challenges == 'Bearer realm="logsvc", AWS4-HMAC-SHA256 realm="logsvc"'
                for scheme in ("Signature V4", "Bearer", "Basic"):
                    assert scheme in response.json()["detail"]
            else:
                assert response.status_code == 403, (method, path)
                assert response.json()["code"] == "forbidden"


def test_service_scopes(secured: tuple[ServerThread, dict[str, NewCredential]]) -> None:
    server, keys = secured
    with httpx.Client(base_url=server.url, timeout=10) as client:
        admin, scoped_ingest, scoped_read = (
            bearer(keys[k]) for k in ("admin", "ingest:payments*", "read:payments*")
        )
        post = client.post(
            "/logs", json=[{"service_name": "payments-us", "message": "own"}], headers=scoped_ingest
        )
        assert post.status_code == 201
        refused = client.post(
            "/logs",
            json=[
                {"service_name": "payments-us", "message": "a"},
                {"service_name": "billing", "message": "b"},
            ],
            headers=scoped_ingest,
        )
        assert refused.status_code == 403
        assert "billing" in refused.json()["detail"]
        other = client.post("/logs", json={"service_name": "billing", "message": "secret"}, headers=admin)
        other_id = other.json()["log_id"]

        seen = client.get("/logs/recent", params={"limit": 1000}, headers=scoped_read).json()["logs"]
        assert seen
        assert all(e["service_name"].startswith("payments") for e in seen)
        assert any(e["service_name"] == "billing" for e in client.get("/logs", headers=admin).json()["logs"])
        assert client.get("/logs", params={"service_name": "billing"}, headers=scoped_read).status_code == 403
        assert client.get(f"/logs/{other_id}", headers=scoped_read).status_code == 404
        assert client.get(f"/logs/{other_id}", headers=admin).status_code == 200


def test_bad_bearer_tokens(secured: tuple[ServerThread, dict[str, NewCredential]]) -> None:
    server, keys = secured
    real = keys["admin"].api_key
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for token in (
            real[:-1] + ("A" if real[-1] != "A" else "B"),
            "lsk_LSKNOSUCHKEY_abc",
            "lsk_",
            "nonsense",
        ):
            response = client.get("/logs", headers={"Authorization": f"Bearer {token}"})
            assert response.status_code == 401, token
            assert response.json()["code"] in ("invalid_api_key", "invalid_token")
            assert token not in response.text
        # A raw token without "Bearer" is taken only where the older Cognito clients send one.
        raw = client.get("/logs", headers={"Authorization": real})
        assert (raw.status_code, raw.json()["code"]) == (401, "invalid_token")
        assert "/compat/cognito/" in raw.json()["detail"]
        assert client.get("/compat/cognito/logs", headers={"Authorization": real}).status_code == 200
        unknown = client.get("/logs", headers={"Authorization": f"Token {real}"})
        assert (unknown.status_code, unknown.json()["code"]) == (401, "invalid_token")
        assert real not in unknown.text


def test_revocation_takes_effect_at_once(tmp_path: Path) -> None:
    server = ServerThread(make_settings(tmp_path / "data")).start()
    try:
        with httpx.Client(base_url=server.url, timeout=10, headers=bearer(server.admin)) as client:
            made = client.post(
                "/admin/keys", json={"role": "ingest", "services": ["web*"], "description": "ci"}
            )
            assert made.status_code == 201
            created = made.json()
            assert set(created) == {
                "access_key_id",
                "secret_access_key",
                "api_key",
                "roles",
                "services",
                "expires_at",
            }
            key = {"Authorization": f"Bearer {created['api_key']}"}
            assert (
                client.post("/logs", json={"service_name": "web", "message": "x"}, headers=key).status_code
                == 201
            )
            listed = client.get("/admin/keys").json()
            assert all("secret_access_key" not in c and "api_key" not in c for c in listed)
            assert client.delete(f"/admin/keys/{created['access_key_id']}").status_code == 200
            assert (
                client.post("/logs", json={"service_name": "web", "message": "x"}, headers=key).status_code
                == 401
            )

            # Revoked from another process (the CLI works on the store directly): refused on the next request.
            second = make_key(server.settings, Role.READ)
            assert client.get("/logs", headers=bearer(second)).status_code == 200
            other_process = CredentialService(
                AuthStore(server.settings.auth_db, key=store_key(server.settings))
            )
            other_process.revoke(second.access_key_id, actor="cli", source="local")
            other_process.close()
            assert client.get("/logs", headers=bearer(second)).status_code == 401

            events = client.get("/admin/audit", params={"limit": 50}).json()
            actions = [(e["action"], e["target"]) for e in events]
            assert ("key.create", created["access_key_id"]) in actions
            assert ("key.revoke", created["access_key_id"]) in actions
            assert any(action == "request.denied" for action, _ in actions)
            assert created["api_key"] not in json.dumps(events)
            assert created["secret_access_key"] not in json.dumps(events)
    finally:
        server.stop()


def test_expired_key_is_refused(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data")
    server = ServerThread(settings).start()
    try:
        # Long enough that the first request surely comes before it, on a loaded machine too.
        short = make_key(settings, Role.READ, expires_at_us=time.time_ns() // 1000 + 5_000_000)
        with httpx.Client(base_url=server.url, timeout=10, headers=bearer(short)) as client:
            assert client.get("/logs").status_code == 200
            assert eventually(lambda: client.get("/logs").status_code == 401)
    finally:
        server.stop()


def test_key_requests_are_validated(secured: tuple[ServerThread, dict[str, NewCredential]]) -> None:
    server, keys = secured
    with httpx.Client(base_url=server.url, timeout=10, headers=bearer(keys["admin"])) as client:
        response = client.post(
            "/admin/keys", json={"role": "root", "services": ["no spaces"], "expires": "-1d"}
        )
        assert response.status_code == 400
        assert {e["field"] for e in response.json()["errors"]} == {"role", "services[0]", "expires"}
        assert client.delete("/admin/keys/LSKNOSUCH").status_code == 404
        # Each of these used to be taken: a 500 (an expiry past the stores' integers) or a silent default.
        for field, value in [("expires", "999999999999999d"), ("description", {}), ("services", {})]:
            response = client.post("/admin/keys", json={"role": "read", field: value})
            assert response.status_code == 400, response.text
            assert [e["field"] for e in response.json()["errors"]] == [field]
        for loose in ("5_0", "+5", " 5", "\u00b2"):
            response = client.get("/admin/audit", params={"limit": loose})
            assert response.status_code == 400, response.text
            assert [e["field"] for e in response.json()["errors"]] == ["limit"]
        # The admin routes hold to the rules of the others: a parameter they do not take is an error naming
        # it (a misspelt one is never silently ignored), and a body is JSON.
        key_id = keys["read"].access_key_id
        before = client.get("/admin/keys").json()
        for method, path in [
            ("GET", "/admin/keys"),
            ("POST", "/admin/keys"),
            ("DELETE", f"/admin/keys/{key_id}"),
            ("GET", f"/logs/{uuid.uuid4()}"),
        ]:
            body = {"role": "read"} if method == "POST" else None
            response = client.request(method, path, params={"dry_run": "1"}, json=body)
            assert response.status_code == 400, (method, path, response.text)
            assert response.json()["errors"] == [
                {"field": "dry_run", "message": "unknown parameter (this route takes none)"}
            ]
        response = client.get("/admin/audit", params=[("limit", "1"), ("limit", "2")])
        assert response.json()["errors"] == [{"field": "limit", "message": "given more than once"}]
        for media_type in ("text/plain", "application/x-www-form-urlencoded", "application/x-ndjson"):
            response = client.post(
                "/admin/keys", content=b'{"role": "read"}', headers={"Content-Type": media_type}
            )
            assert response.status_code == 415, (media_type, response.text)
        assert client.get("/admin/keys").json() == before  # nothing was created or revoked


def test_the_last_usable_admin_key_cannot_be_revoked(server: ServerThread, client: httpx.Client) -> None:
    first = server.admin.access_key_id
    refused = client.delete(f"/admin/keys/{first}")
    assert refused.status_code == 409, refused.text
    assert refused.json()["code"] == "conflict"
    assert "last usable admin credential" in refused.json()["detail"]
    assert client.get("/admin/keys").status_code == 200  # still an admin

    second = client.post("/admin/keys", json={"role": "admin"}).json()
    assert client.delete(f"/admin/keys/{first}").status_code == 200
    # An expired admin key cannot manage anything: it does not count.
    make_key(server.settings, Role.ADMIN, expires_at_us=time.time_ns() // 1000 - 1)
    with httpx.Client(base_url=server.url, timeout=10, headers=bearer(NewCredential(**second))) as admin:
        assert admin.delete(f"/admin/keys/{second['access_key_id']}").status_code == 409
        assert admin.get("/admin/keys").status_code == 200


def test_admin_answers_are_never_cached(client: httpx.Client) -> None:
    made = client.post("/admin/keys", json={"role": "read"})
    assert made.status_code == 201
    answers = [
        made,
        client.get("/admin/keys"),
        client.get("/admin/audit"),
        client.delete(f"/admin/keys/{made.json()['access_key_id']}"),
    ]
    assert [a.headers.get("cache-control") for a in answers] == ["no-store"] * 4


class TestAbuseLimits:
    def test_flood_from_one_key_is_throttled_while_another_is_served(self, tmp_path: Path) -> None:
        settings = make_settings(tmp_path / "data", rate_limit_per_second=5, rate_limit_burst=5)
        server = ServerThread(settings).start()
        try:
            flooder, other = make_key(settings, Role.READ), make_key(settings, Role.READ)
            with httpx.Client(base_url=server.url, timeout=10) as client:
                statuses = [client.get("/logs", headers=bearer(flooder)).status_code for _ in range(20)]
                assert statuses.count(429) >= 10
                limited = client.get("/logs", headers=bearer(flooder))
                assert limited.status_code == 429
                assert int(limited.headers["retry-after"]) >= 1
                assert limited.json()["code"] == "rate_limited"
                assert client.get("/logs", headers=bearer(other)).status_code == 200
        finally:
            server.stop()

    def test_oversized_headers(self, secured: tuple[ServerThread, dict[str, NewCredential]]) -> None:
        server, keys = secured
        headers = {**bearer(keys["admin"]), "X-Padding": "x" * 20_000}
        response = httpx.get(f"{server.url}/logs", headers=headers, timeout=10)
        assert response.status_code == 431
        assert response.json()["code"] == "headers_too_large"

    def test_batch_of_100000_entries(self, secured: tuple[ServerThread, dict[str, NewCredential]]) -> None:
        server, keys = secured
        body = json.dumps([{"message": "m"}] * 100_000)
        response = httpx.post(
            f"{server.url}/logs",
            content=body,
            headers={**bearer(keys["admin"]), "Content-Type": "application/json"},
            timeout=30,
        )
        assert response.status_code == 400
        assert "at most 10000 entries; got 100000" in response.json()["detail"]


def test_anonymous_access_only_when_enabled(tmp_path: Path) -> None:
    server = ServerThread(make_settings(tmp_path / "data", allow_anonymous=True)).start()
    try:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            assert client.post("/logs", json={"message": "anonymous"}).status_code == 201
            assert client.get("/logs").json()["count"] == 1
            assert client.get("/admin/keys").status_code == 403
    finally:
        server.stop()
