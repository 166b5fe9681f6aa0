"""The audit trail against a real server: a flood of refused requests costs little disk, identical refusals
are one record with their count, fields are bounded and printable, failed authentication is throttled per
client address, and old records are deleted."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from logsvc.auth.credential_service import CredentialService
from logsvc.auth.credentials import AuthStore
from logsvc.auth.policy import Role
from logsvc.crypto import store_key
from logsvc.crypto.sqlite import connect
from tests.conftest import ServerThread, bearer, eventually, make_key, make_settings, run_logsvc

BOGUS = {"Authorization": "Bearer lsk_x"}
DAY_US = 86_400_000_000


def disk_usage(directory: Path) -> int:
    """Bytes of every file under ``directory`` (databases, WAL, shared memory, everything)."""
    return sum(path.stat().st_size for path in directory.rglob("*") if path.is_file())


def denied(client: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = client.get("/admin/audit", params={"limit": 1000, **params}).json()
    return [event for event in events if event["action"] == "request.denied"]


def badly_signed(url: str, access_key_id: str) -> dict[str, str]:
    """SigV4 headers for a POST of ``{}`` to ``url``, signed with a wrong secret."""
    request = AWSRequest(method="POST", url=url, data=b"{}")
    SigV4Auth(Credentials(access_key_id, "not-the-secret"), "execute-api", "us-east-1").add_auth(request)
    return dict(request.headers.items())


def test_a_flood_of_long_refused_paths_costs_under_3_mb(tmp_path: Path) -> None:
    """400 requests, each with its own path of 60 KB and a bogus key: every one is recorded (the throttle
    is off here, to show the bounds alone), each record's target bounded and printable. The head limit is
    raised above the 60 KB: the default 16 KiB refuses such a head with 431 when it comes in more than one
    read, which a loaded machine's loopback sometimes does."""
    data = tmp_path / "data"
    settings = make_settings(data, failed_auth_per_minute=0, max_header_bytes=128 * 1024)
    server = ServerThread(settings).start()
    try:
        with httpx.Client(base_url=server.url, timeout=30, headers=bearer(server.admin)) as admin:
            assert denied(admin) == []  # and auth.db's first writes are done before the measure
            before = disk_usage(data)
            with httpx.Client(base_url=server.url, timeout=30, headers=BOGUS) as attacker:
                for number in range(400):
                    answer = attacker.get(f"/x{number:03d}%1b[2J%0a%00" + "A" * 60_000)
                    assert answer.status_code == 401
            events = denied(admin)
            grown = disk_usage(data) - before
    finally:
        server.stop()
    assert grown < 3 * 1024 * 1024, f"the data directory grew by {grown:,} bytes"
    assert sum(event["count"] for event in events) == 400  # none lost
    assert sorted(event["target"][:9] for event in events) == [f"GET /x{n:03d}" for n in range(400)]
    for event in events:
        # "GET /x123" and the three escapes are 24 characters for 15 of the target; then 176 of the A's.
        assert event["target"] == (
            f"{event['target'][:9]}\\x1b[2J\\x0a\\x00" + "A" * 176 + f"…(+{60_015 - 15 - 176} chars)"
        )
        assert not any(character in event["target"] for character in "\x1b\n\x00")
        assert (event["actor"], event["source"], event["detail"]) == (
            "unauthenticated",
            "127.0.0.1",
            "invalid_api_key",
        )


def test_identical_refusals_are_one_record_with_their_count(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data")
    server = ServerThread(settings).start()
    try:
        with httpx.Client(base_url=server.url, timeout=30, headers=BOGUS) as attacker:
            statuses = [attacker.get("/logs/recent").status_code for _ in range(20)]
        assert statuses == [401] * 20
        with httpx.Client(base_url=server.url, timeout=30, headers=bearer(server.admin)) as admin:
            over_http = denied(admin)
    finally:
        server.stop()
    # One record per write period (about a second): normally one, more only on a stalled machine.
    assert {(e["target"], e["source"], e["detail"]) for e in over_http} == {
        ("GET /logs/recent", "127.0.0.1", "invalid_api_key")
    }
    assert sum(e["count"] for e in over_http) == 20
    assert len(over_http) < 5
    listed = run_logsvc(settings, "audit", "--json")
    assert listed.returncode == 0, listed.stderr
    from_cli = [event for event in json.loads(listed.stdout) if event["action"] == "request.denied"]
    assert from_cli == over_http
    table = run_logsvc(settings, "audit").stdout.splitlines()
    assert table[1].split("┃")[-2].strip() == "count"
    rows = [line for line in table if "request." in line]  # the table is cut to 80 columns
    assert sum(int(row.split("│")[-2].strip()) for row in rows) == 20


def test_failed_authentication_is_throttled_per_client_address(tmp_path: Path) -> None:
    """The server trusts X-Forwarded-For from a proxy on 127.0.0.1 (``forwarded_allow_ips``), which gives
    each client here an address of its own."""
    settings = make_settings(tmp_path / "data", failed_auth_per_minute=5, forwarded_allow_ips=("127.0.0.1",))
    server = ServerThread(settings).start()
    reader = make_key(settings, Role.READ)
    attacker = {"X-Forwarded-For": "203.0.113.9"}
    neighbour = {"X-Forwarded-For": "198.51.100.7"}
    try:
        with (
            httpx.Client(base_url=server.url, timeout=30) as client,
            httpx.Client(base_url=server.url, timeout=30, headers=bearer(server.admin)) as admin,
        ):
            # A client that authenticates is never throttled, however often it comes.
            for _ in range(20):
                assert client.get("/logs", headers=neighbour | bearer(reader)).status_code == 200
            for _ in range(5):
                assert client.get("/logs", headers=attacker | BOGUS).status_code == 401
            refused = client.get("/logs", headers=attacker | BOGUS)
            assert refused.status_code == 429
            assert refused.headers["content-type"] == "application/problem+json"
            assert refused.json()["code"] == "too_many_failed_authentications"
            assert 1 <= int(refused.headers["retry-after"]) <= 12
            # Refused before the credentials are checked: a good key from that address waits as well.
            assert client.get("/logs", headers=attacker | bearer(reader)).status_code == 429
            # Other addresses are unaffected, and have a budget of their own.
            assert client.get("/logs", headers=neighbour | bearer(reader)).status_code == 200
            assert client.get("/logs", headers=neighbour | BOGUS).status_code == 401
            # Requests without credentials are not throttled: the probes stay up.
            assert client.get("/healthz", headers=attacker).status_code == 200
            # Refused SigV4 signatures (403) count as failed authentication too.
            forger = {"X-Forwarded-For": "192.0.2.44"}
            for number in range(6):
                headers = forger | badly_signed(f"{server.url}/logs", reader.access_key_id)
                answer = client.post("/logs", content=b"{}", headers=headers)
                assert (answer.status_code, answer.json()["code"]) == (
                    (403, "invalid_signature") if number < 5 else (429, "too_many_failed_authentications")
                )
            events = denied(admin)
    finally:
        server.stop()
    # The refused attempts past the limit are not recorded: they cost neither a check nor a record.
    assert sum(e["count"] for e in events if e["source"] == "203.0.113.9") == 5
    assert sum(e["count"] for e in events if e["source"] == "198.51.100.7") == 1
    assert sum(e["count"] for e in events if e["source"] == "192.0.2.44") == 5


def test_without_a_trusted_proxy_x_forwarded_for_names_no_client(tmp_path: Path) -> None:
    """By default no proxy is trusted: a client that names a new address on each request is still one
    client, throttled as one, and the audit trail records the address it came from."""
    settings = make_settings(tmp_path / "data", failed_auth_per_minute=5)
    server = ServerThread(settings).start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            answers = [
                client.get("/logs", headers={"X-Forwarded-For": f"203.0.113.{n}"} | BOGUS).status_code
                for n in range(6)
            ]
    finally:
        server.stop()
    assert answers == [401] * 5 + [429]
    events = [
        e
        for e in json.loads(run_logsvc(settings, "audit", "--json").stdout)
        if e["action"] == "request.denied"
    ]
    assert {e["source"] for e in events} == {"127.0.0.1"}
    assert sum(e["count"] for e in events) == 5


def test_the_server_deletes_audit_records_past_their_retention(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data", audit_retention_days=30, retention_sweep_seconds=0.2)
    now_us = time.time_ns() // 1000
    old = CredentialService(
        AuthStore(settings.auth_db, key=store_key(settings)), clock_us=lambda: now_us - 31 * DAY_US
    )
    try:
        old.create(Role.READ, description="made long ago", actor="past", source="local")
        old.record_denied(actor="unauthenticated", target="GET /logs", source="10.0.0.1", detail="old")
    finally:
        old.close()
    server = ServerThread(settings).start()
    try:
        with httpx.Client(base_url=server.url, timeout=30, headers=bearer(server.admin)) as admin:

            def actors() -> list[str]:
                events = admin.get("/admin/audit", params={"limit": 1000}).json()
                return [event["actor"] for event in events]

            assert eventually(lambda: actors() == ["test"])  # the admin's key.create, made just now
    finally:
        server.stop()


def test_the_audit_records_of_an_older_store_are_kept_and_counted(tmp_path: Path) -> None:
    """An auth.db made before refusals were aggregated (no count column) opens, and keeps its records."""
    path = tmp_path / "auth.db"
    conn = connect(path, None)
    conn.execute(
        "CREATE TABLE audit (seq INTEGER PRIMARY KEY, at INTEGER NOT NULL, actor TEXT NOT NULL, "
        "action TEXT NOT NULL, target TEXT NOT NULL, source TEXT NOT NULL, detail TEXT NOT NULL) STRICT; "
        "INSERT INTO audit(at, actor, action, target, source, detail) "
        "VALUES (1700000000000000, 'alice', 'key.create', 'LSKOLD', 'local', 'role=read services=*')"
    )
    conn.close()
    # Two processes may open it at once.
    opened = [CredentialService(AuthStore(path)), CredentialService(AuthStore(path))]
    try:
        for _ in range(3):
            opened[0].record_denied(actor="unauthenticated", target="GET /", source="10.0.0.1", detail="x")
        events = opened[1].audit(limit=10) + opened[0].audit(limit=10)
    finally:
        for store in opened:
            store.close()
    assert [(e.action, e.count) for e in events] == [
        ("key.create", 1),
        ("request.denied", 3),
        ("key.create", 1),
    ]
