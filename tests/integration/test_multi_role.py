"""Keys holding several roles: made on the command line and over the admin API, kept by both credential
stores, allowed what any of their roles allows; keys stored while a key had one role keep working."""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from logsvc.auth.credential_service import CredentialService
from logsvc.auth.credentials import AuthStore
from logsvc.auth.dynamodb_credentials import create_auth_table
from logsvc.auth.open import open_credentials
from logsvc.auth.policy import Role
from logsvc.crypto import store_key
from logsvc.crypto.sqlite import connect
from logsvc.errors import Conflict
from logsvc.storage.dynamodb_table import parse_url
from tests.conftest import ServerThread, bearer, make_key, make_settings, run_logsvc


def test_keys_create_takes_several_roles_and_keys_list_shows_whole_ids(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(tmp_path / "data")
    made = run_logsvc(
        settings, "keys", "create", "--role", "ingest", "--role", "read", "--service", "web*", "--json"
    )
    assert made.returncode == 0, made.stderr
    key = json.loads(made.stdout)
    assert (key["roles"], key["services"]) == (["ingest", "read"], ["web*"])
    plain = run_logsvc(settings, "keys", "create", "--role", "read", "--role", "ingest", "--role", "read")
    assert "roles: ingest, read" in plain.stdout
    listed = json.loads(run_logsvc(settings, "keys", "list", "--json").stdout)
    assert [c["roles"] for c in listed] == [["ingest", "read"], ["ingest", "read"]]
    monkeypatch.setenv("COLUMNS", "50")
    narrow = run_logsvc(settings, "keys", "list")
    monkeypatch.delenv("COLUMNS")
    for credential in listed:
        assert credential["access_key_id"] in narrow.stdout  # whole, on one line, however narrow
    audit = run_logsvc(settings, "audit", "--json")
    assert "role=ingest,read services=web*" in {event["detail"] for event in json.loads(audit.stdout)}

    server = ServerThread(settings).start()
    try:
        with httpx.Client(
            base_url=server.url, timeout=10, headers={"Authorization": f"Bearer {key['api_key']}"}
        ) as c:
            assert c.post("/logs", json={"service_name": "web", "message": "hi"}).status_code == 201
            assert c.get("/logs/recent").json()["count"] == 1
            refused = c.get("/admin/keys")
            assert refused.status_code == 403
            assert "roles: ingest, read" in refused.json()["detail"]
    finally:
        server.stop()
    revoked = run_logsvc(settings, "keys", "revoke", key["access_key_id"])  # the id as keys list shows it
    assert revoked.returncode == 0, revoked.stderr


@pytest.mark.parametrize(
    ("request_body", "roles"),
    [
        ({"roles": ["read", "ingest", "read"]}, ["ingest", "read"]),
        ({"roles": ["admin", "read"]}, ["read", "admin"]),
        ({"roles": "read"}, ["read"]),
        ({"role": "ingest"}, ["ingest"]),  # as older callers send it
        ({"role": "ingest", "roles": None}, ["ingest"]),
    ],
)
def test_the_admin_api_takes_roles_or_one_role(
    client: httpx.Client, request_body: dict[str, Any], roles: list[str]
) -> None:
    made = client.post("/admin/keys", json=request_body)
    assert made.status_code == 201, made.text
    assert made.json()["roles"] == roles
    listed = {c["access_key_id"]: c for c in client.get("/admin/keys").json()}
    assert listed[made.json()["access_key_id"]]["roles"] == roles
    assert "role" not in made.json()


@pytest.mark.parametrize(
    ("request_body", "fields"),
    [
        ({}, ["roles"]),
        ({"roles": []}, ["roles"]),
        ({"role": "read", "roles": ["ingest"]}, ["roles"]),
        ({"roles": ["ingest", "root"]}, ["roles[1]"]),
        ({"roles": ["ingest", 3]}, ["roles[1]"]),
        ({"roles": {"ingest": True}}, ["roles"]),
        ({"role": "root"}, ["role"]),
        ({"role": ["ingest"]}, ["role"]),
        ({"roles": ["read"], "rights": ["all"]}, ["rights"]),
    ],
)
def test_a_bad_roles_field_is_a_400_naming_it(
    client: httpx.Client, request_body: dict[str, Any], fields: list[str]
) -> None:
    refused = client.post("/admin/keys", json=request_body)
    assert refused.status_code == 400, refused.text
    assert [error["field"] for error in refused.json()["errors"]] == fields


def test_the_last_admin_rule_counts_a_key_holding_admin_among_other_roles(server: ServerThread) -> None:
    both = make_key(server.settings, (Role.READ, Role.ADMIN))
    with httpx.Client(base_url=server.url, timeout=10, headers=bearer(both)) as client:
        assert client.get("/logs").status_code == 200
        assert client.delete(f"/admin/keys/{server.admin.access_key_id}").status_code == 200
        last = client.delete(f"/admin/keys/{both.access_key_id}")
    assert last.status_code == 409
    assert "last usable admin credential" in last.json()["detail"]


# ---- keys stored while a key had one role ------------------------------------------------------------------

_OLD_SCHEMA = """
CREATE TABLE credentials (
    access_key_id TEXT PRIMARY KEY,
    secret_access_key TEXT NOT NULL,
    api_key_sha256 BLOB NOT NULL,
    role TEXT NOT NULL,
    services TEXT NOT NULL,
    description TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER,
    revoked_at INTEGER
) STRICT;
CREATE TABLE audit (
    seq INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    source TEXT NOT NULL,
    detail TEXT NOT NULL,
    count INTEGER NOT NULL DEFAULT 1
) STRICT;
"""


def old_key(key_id: str) -> tuple[str, str]:
    """The SigV4 secret and API key of a credential an older version made."""
    return f"secret-of-{key_id}", f"lsk_{key_id}_{uuid.uuid4().hex}"


def old_auth_db(path: Path, key: bytes | None, rows: list[tuple[str, str, str, str]]) -> None:
    """An auth.db as a version whose keys had one role wrote it: (key id, API key, role, services JSON)."""
    conn = connect(path, key)
    try:
        conn.execute(_OLD_SCHEMA)
        now = time.time_ns() // 1000
        for key_id, api_key, role, services in rows:
            conn.execute(
                "INSERT INTO credentials VALUES (?, ?, ?, ?, ?, ?, ?, NULL, NULL)",
                (
                    key_id,
                    old_key(key_id)[0],
                    hashlib.sha256(api_key.encode()).digest(),
                    role,
                    services,
                    "old",
                    now,
                ),
            )
    finally:
        conn.close()


def test_an_auth_db_of_single_role_keys_migrates_and_its_keys_still_work(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data")
    data_key = store_key(settings)
    reader_api_key, admin_api_key = old_key("LSKOLDREADER")[1], old_key("LSKOLDADMIN")[1]
    old_auth_db(
        settings.auth_db,
        data_key,
        [("LSKOLDREADER", reader_api_key, "read", '["old*"]'), ("LSKOLDADMIN", admin_api_key, "admin", "[]")],
    )
    server = ServerThread(settings).start()  # opens the file, and so migrates it
    try:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            admin = {"Authorization": f"Bearer {admin_api_key}"}
            assert (
                client.post(
                    "/logs", json={"service_name": "old-app", "message": "m"}, headers=admin
                ).status_code
                == 201
            )
            reader = {"Authorization": f"Bearer {reader_api_key}"}
            assert (
                client.get("/logs", params={"service_name": "old-app"}, headers=reader).json()["count"] == 1
            )
            assert (
                "roles: read" in client.post("/logs", json={"message": "m"}, headers=reader).json()["detail"]
            )
            assert client.get("/logs", params={"service_name": "other"}, headers=reader).status_code == 403
            signed = AWSRequest(method="GET", url=f"{server.url}/logs/recent")
            credentials = Credentials("LSKOLDREADER", old_key("LSKOLDREADER")[0])
            SigV4Auth(credentials, "execute-api", "us-east-1").add_auth(signed)
            assert client.get("/logs/recent", headers=dict(signed.headers)).json()["count"] == 1
            listed = {c["access_key_id"]: c["roles"] for c in client.get("/admin/keys", headers=admin).json()}
    finally:
        server.stop()
    assert listed == {
        "LSKOLDREADER": ["read"],
        "LSKOLDADMIN": ["admin"],
        server.admin.access_key_id: ["admin"],
    }
    conn = connect(settings.auth_db, data_key)
    try:
        columns = {row[1] for row in conn.execute("PRAGMA table_info(credentials)")}
    finally:
        conn.close()
    assert "roles" in columns
    assert "role" not in columns


def test_a_key_holding_a_role_this_version_does_not_know_is_listed_and_revocable_but_grants_nothing(
    tmp_path: Path,
) -> None:
    # A key a newer version made (a downgrade, or a rolling upgrade sharing auth.db): listing must not fail
    # on it, and it must not authenticate with the roles this version does know.
    settings = make_settings(tmp_path / "data")
    newer = make_key(settings, Role.INGEST)
    conn = connect(settings.auth_db, store_key(settings))
    try:
        conn.execute(
            "UPDATE credentials SET roles = ? WHERE access_key_id = ?",
            ('["auditor", "ingest"]', newer.access_key_id),
        )
    finally:
        conn.close()
    server = ServerThread(settings).start()
    try:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            admin = bearer(server.admin)
            listed = client.get("/admin/keys", headers=admin)
            assert listed.status_code == 200, listed.text
            assert {c["access_key_id"]: c["roles"] for c in listed.json()}[newer.access_key_id] == [
                "ingest",
                "auditor",
            ]
            refused = client.post("/logs", json={"service_name": "s", "message": "m"}, headers=bearer(newer))
            assert refused.status_code == 401
            assert client.delete(f"/admin/keys/{newer.access_key_id}", headers=admin).status_code == 200
    finally:
        server.stop()
    listed_after = json.loads(run_logsvc(settings, "keys", "list", "--json").stdout)
    assert [
        c["revoked_at"] is not None for c in listed_after if c["access_key_id"] == newer.access_key_id
    ] == [True]


def test_two_processes_opening_an_old_auth_db_at_once_both_work(tmp_path: Path) -> None:
    path = tmp_path / "auth.db"
    api_key = old_key("LSKOLDADMIN")[1]
    old_auth_db(path, None, [("LSKOLDADMIN", api_key, "admin", "[]")])
    opened = [CredentialService(AuthStore(path)), CredentialService(AuthStore(path))]
    try:
        for service in opened:
            principal = service.check_api_key(api_key)
            assert principal is not None
            assert principal.roles == frozenset({Role.ADMIN})
        with pytest.raises(Conflict):  # the last admin rule reads the migrated keys too
            opened[0].revoke_keeping_an_admin("LSKOLDADMIN", actor="test", source="test")
    finally:
        for service in opened:
            service.close()


# ---- DynamoDB ----------------------------------------------------------------------------------------------


@pytest.fixture
def shared(tmp_path: Path, moto_endpoint: str, aws_credentials: None) -> tuple[Any, ...]:
    url = f"dynamodb://auth-{uuid.uuid4().hex[:12]}?region=us-east-1&endpoint={moto_endpoint}"
    create_auth_table(url)
    settings = make_settings(tmp_path / "data", auth_store=url, auth_cache_seconds=0.2)
    target = parse_url(url)
    return settings, boto3.client("dynamodb", region_name=target.region, endpoint_url=target.endpoint), target


def test_the_dynamodb_store_keeps_several_roles_and_reads_single_role_items(shared: Any) -> None:
    settings, dynamodb, target = shared
    both = make_key(settings, (Role.INGEST, Role.READ))
    one = make_key(settings, Role.READ)
    items = {
        item["sk"]["S"]: item
        for item in dynamodb.query(
            TableName=target.table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": "#credential"}},
        )["Items"]
    }
    assert items[both.access_key_id]["roles"] == {"L": [{"S": "ingest"}, {"S": "read"}]}
    assert "role" not in items[both.access_key_id]  # a replica of the previous version skips it (closed)
    # A single-role key keeps the attribute the previous version reads, beside the list.
    assert items[one.access_key_id]["role"] == {"S": "read"}
    # An item written by the previous version: role only.
    older = {k: v for k, v in items[one.access_key_id].items() if k != "roles"} | {"role": {"S": "ingest"}}
    dynamodb.put_item(TableName=target.table, Item=older)
    # An item written by a newer version, with a role this one does not know: listed, granting nothing.
    newer = items[both.access_key_id] | {
        "sk": {"S": "LSKNEWER"},
        "api_key_sha256": {"B": hashlib.sha256(b"another key").digest()},
        "roles": {"L": [{"S": "auditor"}, {"S": "read"}]},
    }
    dynamodb.put_item(TableName=target.table, Item=newer)

    service = open_credentials(settings)
    try:
        listed = {c.access_key_id: c.roles for c in service.credentials()}
        assert listed == {
            both.access_key_id: ("ingest", "read"),
            one.access_key_id: ("ingest",),
            "LSKNEWER": ("read", "auditor"),
        }
        principal = service.check_api_key(both.api_key)
        assert principal is not None
        assert principal.roles == frozenset({Role.INGEST, Role.READ})
        older_principal = service.check_api_key(one.api_key)
        assert older_principal is not None
        assert older_principal.roles == frozenset({Role.INGEST})
    finally:
        service.close()
