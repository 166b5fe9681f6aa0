"""Credentials shared by server replicas through a DynamoDB table of their own (``auth_store``).

DynamoDB here is moto's server mode on 127.0.0.1 (the ``moto_endpoint`` fixture), a stand-in for DynamoDB,
not AWS itself: what is verified is the behaviour against moto's implementation of the API.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import EndpointConnectionError, ReadTimeoutError

from logsvc.auth import credential_service
from logsvc.auth.credential_service import CredentialService, NewCredential
from logsvc.auth.dynamodb_credentials import DynamoCredentialStore, create_auth_table
from logsvc.auth.open import open_credentials
from logsvc.auth.policy import Role
from logsvc.crypto import key_source, master_key_from
from logsvc.errors import ConfigError, NotFound, StoreUnavailable
from logsvc.server import bootstrap_admin
from logsvc.settings import Settings
from logsvc.storage.dynamodb_table import parse_url
from tests.conftest import ServerThread, bearer, eventually, make_key, make_settings, run_logsvc


@pytest.fixture
def auth_url(moto_endpoint: str, aws_credentials: None) -> str:
    """A new, empty credential table in moto's DynamoDB."""
    url = f"dynamodb://auth-{uuid.uuid4().hex[:12]}?region=us-east-1&endpoint={moto_endpoint}"
    create_auth_table(url)
    return url


def replica_settings(tmp_path: Path, name: str, auth_url: str, **overrides: Any) -> Settings:
    """A replica's settings: its own data directory, the shared credential table and master key file."""
    defaults: dict[str, Any] = {
        "auth_store": auth_url,
        "auth_cache_seconds": 0.2,
        "master_key_file": str(tmp_path / "shared.master.key"),
    }
    return make_settings(tmp_path / name, **(defaults | overrides))


def raw_items(url: str) -> list[dict[str, Any]]:
    """Every item of the table as stored (a Scan: the test reads everything; the store never scans)."""
    target = parse_url(url)
    client = boto3.client("dynamodb", region_name=target.region, endpoint_url=target.endpoint)
    items: list[dict[str, Any]] = client.scan(TableName=target.table)["Items"]
    return items


def sigv4_post(url: str, key: NewCredential) -> httpx.Response:
    body = json.dumps({"service_name": "shared", "message": f"signed {uuid.uuid4()}"}).encode()
    request = AWSRequest(method="POST", url=url, data=body)
    SigV4Auth(Credentials(key.access_key_id, key.secret_access_key), "execute-api", "us-east-1").add_auth(
        request
    )
    headers = dict(request.headers.items()) | {"Content-Type": "application/json"}
    return httpx.post(url, content=body, headers=headers, timeout=10)


@pytest.fixture
def replicas(tmp_path: Path, dynamodb_url: str, auth_url: str) -> Iterator[tuple[ServerThread, ServerThread]]:
    """Two servers on one log table and one credential table. Replica one reloads every 30 s only, so that
    what it does at once (a revocation made there) is not hidden by a reload."""
    one = ServerThread(
        replica_settings(tmp_path, "one", auth_url, store=dynamodb_url, auth_cache_seconds=30)
    ).start()
    two = ServerThread(replica_settings(tmp_path, "two", auth_url, store=dynamodb_url)).start()
    yield one, two
    one.stop()
    two.stop()


def test_a_key_made_on_one_replica_works_on_the_other_until_revoked_there(
    replicas: tuple[ServerThread, ServerThread],
) -> None:
    one, two = replicas
    with httpx.Client(base_url=one.url, timeout=10, headers=bearer(one.admin)) as admin_one:
        made = admin_one.post("/admin/keys", json={"role": "ingest", "services": ["shared"]})
        assert made.status_code == 201, made.text
        key = NewCredential(**{k: v for k, v in made.json().items() if k != "description"})

        # On the other replica an unknown id reloads its copy, unless a reload is under way (one that may
        # have read the table before the key existed): the key works there within one reload period.
        def accepted_on_two() -> bool:
            sent = httpx.post(
                f"{two.url}/logs", json={"service_name": "shared", "message": "bearer"}, headers=bearer(key)
            )
            return sent.status_code == 201

        assert eventually(accepted_on_two)
        assert sigv4_post(f"{two.url}/logs", key).status_code == 201
        assert sigv4_post(f"{one.url}/logs", key).status_code == 201
        scoped = httpx.post(
            f"{two.url}/logs", json={"service_name": "other", "message": "x"}, headers=bearer(key)
        )
        assert scoped.status_code == 403

        assert admin_one.delete(f"/admin/keys/{key.access_key_id}").status_code == 200
        # Refused at once where it was revoked, within auth_cache_seconds on the other.
        assert sigv4_post(f"{one.url}/logs", key).json()["code"] == "invalid_signature"

    def refused_on_two() -> bool:
        answer = httpx.post(
            f"{two.url}/logs", json={"service_name": "shared", "message": "late"}, headers=bearer(key)
        )
        return answer.status_code == 401

    assert eventually(refused_on_two)
    assert sigv4_post(f"{two.url}/logs", key).json()["code"] == "invalid_signature"

    with httpx.Client(base_url=two.url, timeout=10, headers=bearer(two.admin)) as admin_two:
        listed = {c["access_key_id"]: c for c in admin_two.get("/admin/keys").json()}
        assert listed[key.access_key_id]["revoked_at"] is not None
        assert {one.admin.access_key_id, two.admin.access_key_id} <= listed.keys()
        events = admin_two.get("/admin/audit", params={"limit": 50}).json()
    actions = [(e["action"], e["target"], e["actor"]) for e in events if e["action"].startswith("key.")]
    assert any(e["action"] == "request.denied" for e in events)  # the refusals on replica two
    assert actions[:2] == [
        ("key.revoke", key.access_key_id, one.admin.access_key_id),
        ("key.create", key.access_key_id, one.admin.access_key_id),
    ]
    assert [e["at"] for e in events] == sorted((e["at"] for e in events), reverse=True)


def test_refused_requests_are_audited_in_the_shared_table(
    replicas: tuple[ServerThread, ServerThread],
) -> None:
    one, two = replicas
    wrong = httpx.get(f"{one.url}/logs", headers={"Authorization": "Bearer lsk_LSKNOSUCH_wrong"})
    assert wrong.status_code == 401

    def denied_on_two() -> bool:
        events = httpx.get(f"{two.url}/admin/audit", headers=bearer(two.admin), timeout=10).json()
        return any(e["action"] == "request.denied" for e in events)

    assert eventually(denied_on_two)


def test_secrets_are_not_stored_in_the_clear(tmp_path: Path, auth_url: str) -> None:
    settings = replica_settings(tmp_path, "one", auth_url)
    key = make_key(settings, Role.READ, description="reader")
    stored = json.dumps(raw_items(auth_url), default=repr)
    assert key.access_key_id in stored
    assert key.secret_access_key not in stored
    assert key.api_key not in stored
    assert key.api_key.removeprefix(f"lsk_{key.access_key_id}_") not in stored  # the random part
    # And yet the store can still sign with it: the secret is sealed, not hashed.
    store = open_credentials(settings)
    try:
        assert store.secret_for(key.access_key_id) == key.secret_access_key
        principal = store.check_api_key(key.api_key)
        assert principal is not None
        assert principal.roles == {Role.READ}
        assert store.check_api_key(key.api_key + "x") is None
    finally:
        store.close()


def test_two_replicas_starting_at_once_create_one_admin(
    tmp_path: Path, moto_endpoint: str, aws_credentials: None
) -> None:
    for attempt in range(3):
        url = f"dynamodb://boot-{uuid.uuid4().hex[:12]}?region=us-east-1&endpoint={moto_endpoint}"
        create_auth_table(url)
        settings = [replica_settings(tmp_path / str(attempt), name, url) for name in ("a", "b", "c")]
        # Every replica needs the master key before the race: the first start makes the key file.
        open_credentials(settings[0]).close()
        barrier = threading.Barrier(len(settings))
        made: list[NewCredential | None] = [None] * len(settings)
        failed: list[BaseException | None] = [None] * len(settings)

        def start(
            index: int,
            barrier: threading.Barrier,
            made: list[NewCredential | None],
            failed: list[BaseException | None],
            settings: list[Settings],
        ) -> None:
            try:
                barrier.wait()
                first_start = bootstrap_admin(settings[index])
                made[index] = None if first_start is None else first_start[0]
            except BaseException as exc:  # kept, so that the test fails with the replica's own reason
                failed[index] = exc

        threads = [
            threading.Thread(target=start, args=(i, barrier, made, failed, settings))
            for i in range(len(settings))
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert not any(thread.is_alive() for thread in threads), "a replica's start took over 30 s"
        for error in failed:
            if error is not None:
                raise error
        winners = [i for i, credential in enumerate(made) if credential is not None]
        assert len(winners) == 1, made
        written = [Path(s.credentials_file).exists() for s in settings]
        assert written == [i in winners for i in range(len(settings))]
        store = open_credentials(settings[0])
        try:
            admins = [c for c in store.credentials() if Role.ADMIN in c.roles]
            assert [c.access_key_id for c in admins] == [made[winners[0]].access_key_id]  # type: ignore[union-attr]
            # A later start finds the admin; once it is revoked, the next start makes another.
            assert bootstrap_admin(settings[1]) is None
            store.revoke(admins[0].access_key_id, actor="test", source="test")
            assert bootstrap_admin(settings[2]) is not None
        finally:
            store.close()


def test_the_dynamodb_stand_in_serves_one_transaction_at_a_time(
    auth_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the first-admin test above proves holds only if two transactions cannot interleave, as in
    DynamoDB. moto's own server let them (two first admins, or the stored one undone, under load): the
    fixture serves one request at a time. Here a first claim is held inside moto; a second, sent meanwhile,
    must not be served before the first ends, and loses to it."""
    from moto.dynamodb.models import DynamoDBBackend

    target = parse_url(auth_url)
    client = boto3.client("dynamodb", region_name=target.region, endpoint_url=target.endpoint)
    held, second_served = threading.Event(), threading.Event()
    served_while_held: list[bool] = []
    transact = DynamoDBBackend.transact_write_items

    def holding(backend: DynamoDBBackend, items: list[dict[str, Any]]) -> None:
        who = items[0]["Put"]["Item"]["who"]["S"]
        if who == "first":
            held.set()
            # Bounded, and only to see that the second is not served meanwhile: with the fixture's lock it
            # cannot be, however loaded the machine.
            served_while_held.append(second_served.wait(2))
        try:
            transact(backend, items)
        finally:
            if who == "second":
                second_served.set()

    monkeypatch.setattr(DynamoDBBackend, "transact_write_items", holding)

    def claim(who: str) -> str:
        item = {"pk": {"S": "#race"}, "sk": {"S": "#race"}, "who": {"S": who}}
        put = {"TableName": target.table, "Item": item, "ConditionExpression": "attribute_not_exists(pk)"}
        try:
            client.transact_write_items(TransactItems=[{"Put": put}])
        except client.exceptions.TransactionCanceledException:
            return "cancelled"
        return "stored"

    outcome: dict[str, str] = {}
    first = threading.Thread(target=lambda: outcome.update(first=claim("first")))
    first.start()
    assert held.wait(30)
    outcome["second"] = claim("second")
    first.join(30)
    assert served_while_held == [False]
    assert outcome == {"first": "stored", "second": "cancelled"}
    (stored,) = [item for item in raw_items(auth_url) if item["pk"]["S"] == "#race"]
    assert stored["who"]["S"] == "first"


def test_a_replica_with_another_master_key_does_not_start(tmp_path: Path, auth_url: str) -> None:
    good = replica_settings(tmp_path, "one", auth_url)
    make_key(good, Role.READ)
    other = replica_settings(tmp_path, "two", auth_url, master_key_file=str(tmp_path / "other.master.key"))
    shared = master_key_from(key_source(good), data_dir=Path(good.data_dir), create=False)
    # The other replica has a master key of its own (made by a local store), not the shared one.
    open_credentials(make_settings(tmp_path / "own", master_key_file=other.master_key_file)).close()
    with pytest.raises(ConfigError) as refused:
        open_credentials(other)
    assert f"wrapped by the master key with fingerprint {shared.fingerprint}" in str(refused.value)
    assert "does not open the data key of DynamoDB table" in str(refused.value)
    # And the CLI says so in one line, exit status 2.
    listed = run_logsvc(other, "keys", "list")
    assert listed.returncode == 2
    assert "does not open the data key of DynamoDB table" in listed.stderr
    # A missing key file is named too, rather than a new key made for a table that has one.
    missing = replica_settings(tmp_path, "three", auth_url, master_key_file=str(tmp_path / "none.key"))
    with pytest.raises(ConfigError, match=r"none\.key does not exist"):
        open_credentials(missing)


def test_settings_that_cannot_work_are_refused(tmp_path: Path, dynamodb_url: str, auth_url: str) -> None:
    with pytest.raises(ConfigError, match=r"auth_store = dynamodb://\.\.\. needs encryption = true"):
        replica_settings(tmp_path, "one", auth_url, encryption=False)
    with pytest.raises(ConfigError, match="auth_store is empty"):
        make_settings(tmp_path / "two", auth_store="sqlite:///auth.db")
    same = replica_settings(tmp_path, "three", dynamodb_url.replace("&shards=4", ""), store=dynamodb_url)
    with pytest.raises(ConfigError, match="auth_store names the log table of store"):
        open_credentials(same)
    with pytest.raises(ConfigError, match=r"auth_store URL .*unknown parameter shards"):
        open_credentials(replica_settings(tmp_path, "four", auth_url + "&shards=2"))
    unreachable = replica_settings(
        tmp_path, "five", "dynamodb://nosuch?region=us-east-1&endpoint=http://127.0.0.1:9"
    )
    with pytest.raises(ConfigError, match="cannot open the credential table nosuch"):
        open_credentials(unreachable)


class _Recorder:
    """The DynamoDB operations a client makes (botocore's own event hooks; nothing of ours is replaced)."""

    def __init__(self, url: str) -> None:
        target = parse_url(url)
        self.client = boto3.client("dynamodb", region_name=target.region, endpoint_url=target.endpoint)
        self.calls: list[str] = []
        self.client.meta.events.register("before-call.dynamodb.*", self._before_call)

    def _before_call(self, model: Any, **_: Any) -> None:
        self.calls.append(model.name)


def test_lookups_are_answered_from_memory_and_nothing_scans(tmp_path: Path, auth_url: str) -> None:
    settings = replica_settings(tmp_path, "one", auth_url, auth_cache_seconds=30)
    key = make_key(settings, Role.INGEST)
    recorder = _Recorder(auth_url)
    source = key_source(settings)
    store = CredentialService(
        DynamoCredentialStore(
            parse_url(auth_url),
            master=lambda create: master_key_from(source, data_dir=Path(settings.data_dir), create=create),
            cache_seconds=30,
            client=recorder.client,
        )
    )
    try:
        opened = len(recorder.calls)
        for _ in range(200):
            assert store.check_api_key(key.api_key) is not None
            assert store.secret_for(key.access_key_id) == key.secret_access_key
        assert len(recorder.calls) == opened
        # A flood of unknown ids reloads at most once a second.
        for number in range(200):
            assert store.secret_for(f"LSKUNKNOWN{number}") is None
        assert recorder.calls[opened:] == ["Query"]
        store.record_denied(actor="x", target="/logs", source="127.0.0.1", detail="test")
        made = store.create(Role.READ, actor="test", source="test")
        store.revoke(made.access_key_id, actor="test", source="test")
        with pytest.raises(NotFound):
            store.revoke(made.access_key_id, actor="test", source="test")
        assert [e.action for e in store.audit(limit=3)] == ["key.revoke", "key.create", "request.denied"]
        assert store.has_admin() is False
    finally:
        store.close()
    assert "Scan" not in recorder.calls
    assert set(recorder.calls) <= {"GetItem", "PutItem", "Query", "TransactWriteItems", "BatchWriteItem"}


def test_a_lost_table_is_a_503_not_a_backend_error(tmp_path: Path, auth_url: str) -> None:
    settings = replica_settings(tmp_path, "one", auth_url)
    store = open_credentials(settings)
    try:
        target = parse_url(auth_url)
        boto3.client("dynamodb", region_name=target.region, endpoint_url=target.endpoint).delete_table(
            TableName=target.table
        )
        with pytest.raises(StoreUnavailable):
            store.credentials()
        with pytest.raises(StoreUnavailable):
            store.create(Role.READ, actor="test", source="test")
        with pytest.raises(StoreUnavailable):
            store.secret_for("LSKNEVERSEEN")  # an unknown id asks the table, which is gone
    finally:
        store.close()


def test_the_cli_creates_the_table_and_manages_keys_in_it(
    tmp_path: Path, moto_endpoint: str, aws_credentials: None
) -> None:
    url = f"dynamodb://cli-auth-{uuid.uuid4().hex[:8]}?region=us-east-1&endpoint={moto_endpoint}"
    one = replica_settings(tmp_path, "one", url)
    created = run_logsvc(one, "aws", "create-auth-table", url)
    assert created.returncode == 0, created.stderr
    assert created.stdout.strip() == f"created {parse_url(url).table}"
    made = run_logsvc(one, "keys", "create", "--role", "read", "--json")
    assert made.returncode == 0, made.stderr
    key_id = json.loads(made.stdout)["access_key_id"]
    # Another machine (another data directory) with the same master key sees it, and its audit trail.
    two = replica_settings(tmp_path, "two", url)
    listed = run_logsvc(two, "keys", "list", "--json")
    assert key_id in [c["access_key_id"] for c in json.loads(listed.stdout)]
    audit = run_logsvc(two, "audit", "--json")
    assert ("key.create", key_id) in [(e["action"], e["target"]) for e in json.loads(audit.stdout)]
    again = run_logsvc(one, "aws", "create-auth-table", url)
    assert again.returncode == 2
    assert "ResourceInUseException" in again.stderr


def test_rotate_master_is_refused_while_the_table_holds_a_data_key(tmp_path: Path, auth_url: str) -> None:
    settings = replica_settings(tmp_path, "one", auth_url)
    make_key(settings, Role.READ)
    before = Path(settings.master_key_file).read_bytes()
    rotated = run_logsvc(settings, "keys", "rotate-master")
    assert rotated.returncode == 2
    assert "not the data key in the #keyring item of the auth_store table" in rotated.stderr
    assert Path(settings.master_key_file).read_bytes() == before
    open_credentials(settings).close()  # the table still opens with the master key


class _Clock:
    """A monotonic clock the test moves (the store's staleness is measured on it)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def open_store(
    settings: Settings,
    client: Any,
    *,
    clock_us: Callable[[], int] | None = None,
    audit_retention_days: float = 0,
    **options: Any,
) -> CredentialService:
    """The credential service on a store on ``client`` (whose calls a test may record or refuse), with the
    settings' master key."""
    source = key_source(settings)
    assert settings.auth_store.startswith("dynamodb://")
    store = DynamoCredentialStore(
        parse_url(settings.auth_store),
        master=lambda create: master_key_from(source, data_dir=Path(settings.data_dir), create=create),
        client=client,
        **options,
    )
    if clock_us is None:
        return CredentialService(store, audit_retention_days=audit_retention_days)
    return CredentialService(store, clock_us=clock_us, audit_retention_days=audit_retention_days)


def test_an_idle_replica_keeps_its_copy_fresh(tmp_path: Path, auth_url: str) -> None:
    settings = replica_settings(tmp_path, "one", auth_url)
    key = make_key(settings, Role.INGEST)
    recorder = _Recorder(auth_url)
    clock = _Clock()
    store = open_store(settings, recorder.client, cache_seconds=0.05, monotonic=clock)
    # Only the store's own threads: moto serves each request on a thread of its own, alive for a moment.
    assert isinstance(store.store, DynamoCredentialStore)
    ours = {store.store._refresher, store._flusher}
    assert all(thread.is_alive() for thread in ours)
    try:
        opened = recorder.calls.count("Query")
        clock.now += 3600  # an hour without a request: the reloads went on all the same
        # Two Queries after the move: the first (at least) completed with the clock moved.
        assert eventually(lambda: recorder.calls.count("Query") >= opened + 2)
        assert store.secret_for(key.access_key_id) == key.secret_access_key
    finally:
        store.close()
    assert not any(thread.is_alive() for thread in ours)  # close() stopped the reloads and the flusher


@pytest.mark.serial  # a latency bound
def test_an_unknown_id_does_not_wait_for_a_slow_reload(tmp_path: Path, auth_url: str) -> None:
    settings = replica_settings(tmp_path, "one", auth_url)
    key = make_key(settings, Role.INGEST)
    recorder = _Recorder(auth_url)
    in_reload, release = threading.Event(), threading.Event()

    def slow_background_query(model: Any, **_: Any) -> None:
        if model.name == "Query" and threading.current_thread().name == "logsvc-credentials":
            in_reload.set()
            release.wait(10)

    recorder.client.meta.events.register("before-call.dynamodb.Query", slow_background_query)
    store = open_store(settings, recorder.client, cache_seconds=0.05)
    try:
        assert in_reload.wait(5)
        started = time.monotonic()
        assert store.secret_for("LSKUNKNOWN") is None  # answered from the copy, no Query of its own
        assert store.secret_for(key.access_key_id) == key.secret_access_key
        assert time.monotonic() - started < 1
    finally:
        release.set()
        store.close()


def test_a_flood_of_refusals_is_a_few_writes_one_at_a_time(tmp_path: Path, auth_url: str) -> None:
    settings = replica_settings(tmp_path, "one", auth_url)
    recorder = _Recorder(auth_url)
    in_flush, release = threading.Event(), threading.Event()

    def slow_first_write(model: Any, **_: Any) -> None:
        if not in_flush.is_set():
            in_flush.set()
            release.wait(10)

    recorder.client.meta.events.register("before-call.dynamodb.BatchWriteItem", slow_first_write)
    store = open_store(settings, recorder.client, cache_seconds=30)
    try:
        store.record_denied(actor="a", target="GET /admin/keys", source="10.0.0.1", detail="first")
        assert in_flush.wait(5)
        for _ in range(3000):
            store.record_denied(actor="a", target="GET /admin/keys", source="10.0.0.1", detail="flood")
        store.record_denied(actor="a", target="GET /admin/keys", source="10.0.0.2", detail="flood")
        time.sleep(1.5)  # more than a flush period: no second flush starts while the first is slow
        assert recorder.calls.count("BatchWriteItem") == 1
        release.set()
        details = sorted((e.detail, e.count) for e in store.audit(limit=10) if e.action == "request.denied")
    finally:
        release.set()
        store.close()
    assert details == [("first", 1), ("flood", 1), ("flood", 3000)]
    assert recorder.calls.count("BatchWriteItem") == 2


def test_refusals_beyond_the_buffer_are_dropped_and_counted(
    tmp_path: Path, auth_url: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The background write must not take the buffer while it fills (a loaded machine can take over its
    # one second to record 10,005 refusals): this test writes it once, itself.
    monkeypatch.setattr(credential_service, "FLUSH_SECONDS", 3600.0)
    settings = replica_settings(tmp_path, "one", auth_url)
    recorder = _Recorder(auth_url)

    def refused(model: Any, **_: Any) -> Any:
        return SimpleNamespace(status_code=400), {"Error": {"Code": "ValidationException", "Message": "no"}}

    recorder.client.meta.events.register("before-call.dynamodb.BatchWriteItem", refused)
    store = open_store(settings, recorder.client, cache_seconds=30)
    try:
        for number in range(10_005):
            store.record_denied(actor="a", target="GET /logs", source=f"s{number}", detail="x")
        with caplog.at_level(logging.WARNING, logger="logsvc.auth.dynamodb"):
            store.flush_audit()
    finally:
        store.close()
    assert "5 refused-request audit events dropped (more than 10000 waiting)" in caplog.text
    assert "10000 audit events not written" in caplog.text


def test_bad_items_and_failed_reloads_do_not_stop_the_reloads(
    tmp_path: Path, auth_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = replica_settings(tmp_path, "one", auth_url)
    key = make_key(settings, Role.INGEST)
    target = parse_url(auth_url)
    writer = boto3.client("dynamodb", region_name=target.region, endpoint_url=target.endpoint)
    (good,) = [item for item in raw_items(auth_url) if item["sk"]["S"] == key.access_key_id]
    # A role from a newer version (a rolling upgrade), and an item missing a field.
    newer = {"sk": {"S": "LSKNEWROLE"}, "roles": {"L": [{"S": "ingest"}, {"S": "auditor"}]}}
    writer.put_item(TableName=target.table, Item=good | newer)
    writer.put_item(
        TableName=target.table,
        Item={k: v for k, v in good.items() if k != "services"} | {"sk": {"S": "LSKBROKEN"}},
    )
    recorder = _Recorder(auth_url)
    failures = {"left": 0}

    def fail_some_reloads(model: Any, **_: Any) -> None:
        if failures["left"] and threading.current_thread().name == "logsvc-credentials":
            failures["left"] -= 1
            raise RuntimeError("not a backend error")

    recorder.client.meta.events.register("before-call.dynamodb.Query", fail_some_reloads)
    store = open_store(settings, recorder.client, cache_seconds=0.05)
    try:
        assert store.secret_for(key.access_key_id) == key.secret_access_key
        assert "credential LSKNEWROLE skipped: ValueError" in caplog.text
        assert "credential LSKBROKEN skipped: KeyError('services')" in caplog.text
        failures["left"] = 2
        assert eventually(lambda: failures["left"] == 0)
        reloads = recorder.calls.count("Query")
        assert eventually(lambda: recorder.calls.count("Query") > reloads + 1)  # the thread lives on
        assert "reload failed, keeping the copy" in caplog.text
    finally:
        store.close()


def test_a_revoked_key_works_nowhere_longer_than_three_reload_periods(tmp_path: Path, auth_url: str) -> None:
    settings = replica_settings(tmp_path, "one", auth_url)
    key = make_key(settings, Role.INGEST)
    clock = _Clock()
    # Reloads every 10 s of real time: none happens during the test, as if every one failed.
    lagging = open_store(settings, _Recorder(auth_url).client, cache_seconds=10, monotonic=clock)
    revoking = open_credentials(settings)
    try:
        revoking.revoke(key.access_key_id, actor="test", source="test")
        assert revoking.check_api_key(key.api_key) is None  # at once where it was revoked
        clock.now += 29
        assert lagging.check_api_key(key.api_key) is not None  # the documented lag
        clock.now += 2  # past max(3 x 10 s, 15 s): the copy is no longer trusted
        with pytest.raises(StoreUnavailable):
            lagging.check_api_key(key.api_key)
    finally:
        revoking.close()
        lagging.close()


def test_a_first_admin_transaction_in_conflict_is_tried_again(tmp_path: Path, auth_url: str) -> None:
    settings = replica_settings(tmp_path, "one", auth_url)
    recorder = _Recorder(auth_url)
    conflicts = {"left": 2}

    def conflict(model: Any, **_: Any) -> Any:
        if not conflicts["left"]:
            return None
        conflicts["left"] -= 1
        reasons = [{"Code": "TransactionConflict"}, {"Code": "None"}, {"Code": "None"}]
        error = {"Code": "TransactionCanceledException", "Message": "Transaction cancelled"}
        return SimpleNamespace(status_code=400), {"Error": error, "CancellationReasons": reasons}

    recorder.client.meta.events.register("before-call.dynamodb.TransactWriteItems", conflict)
    store = open_store(settings, recorder.client, cache_seconds=30)
    try:
        made = store.bootstrap_admin(description="first", actor="test", source="test")
        assert made is not None
        assert conflicts["left"] == 0
        assert [c.access_key_id for c in store.credentials()] == [made.access_key_id]
        store.revoke(made.access_key_id, actor="test", source="test")
        conflicts["left"] = 100  # conflicts that never end: a 503 after a few tries, not a loop
        with pytest.raises(StoreUnavailable):
            store.bootstrap_admin(description="second", actor="test", source="test")
        assert conflicts["left"] == 96
    finally:
        store.close()


@pytest.mark.parametrize("lost", ["the answer after the last retry", "the answer of a try, then a retry"])
def test_a_first_admin_stored_but_not_acknowledged_is_still_handed_out(
    tmp_path: Path, auth_url: str, lost: str
) -> None:
    """The transaction that stores the first admin reaches the table, but its answer is lost: after
    botocore's last retry, or before a retry that finds the epoch moved (DynamoDB answers such a retry
    from its idempotency token; a stand-in may not). The admin is stored: it must be the one returned, with
    its secret, not a failure that leaves an admin nobody holds (a restart would find it and make none)."""
    settings = replica_settings(tmp_path, "one", auth_url)
    recorder = _Recorder(auth_url)
    if lost == "the answer after the last retry":

        def answer_lost(**_: Any) -> None:
            raise ReadTimeoutError(endpoint_url=auth_url)

        recorder.client.meta.events.register("after-call.dynamodb.TransactWriteItems", answer_lost)
    else:
        earlier_try = _Recorder(auth_url).client

        def stored_by_an_earlier_try(params: dict[str, Any], **_: Any) -> None:
            earlier_try.transact_write_items(**params)

        recorder.client.meta.events.register(
            "before-parameter-build.dynamodb.TransactWriteItems", stored_by_an_earlier_try
        )
    store = open_store(settings, recorder.client, cache_seconds=30)
    try:
        made = store.bootstrap_admin(description="first", actor="test", source="test")
        assert made is not None
        assert [c.access_key_id for c in store.credentials()] == [made.access_key_id]
        assert store.check_api_key(made.api_key) is not None
    finally:
        store.close()


def test_a_first_admin_that_never_reached_the_table_is_a_failure(tmp_path: Path, auth_url: str) -> None:
    settings = replica_settings(tmp_path, "one", auth_url)
    recorder = _Recorder(auth_url)

    def never_sent(**_: Any) -> None:
        raise EndpointConnectionError(endpoint_url=auth_url)

    recorder.client.meta.events.register("before-call.dynamodb.TransactWriteItems", never_sent)
    store = open_store(settings, recorder.client, cache_seconds=30)
    try:
        with pytest.raises(StoreUnavailable):
            store.bootstrap_admin(description="first", actor="test", source="test")
        assert store.credentials() == []
    finally:
        store.close()
    assert bootstrap_admin(settings) is not None  # the next start makes it


def test_shared_audit_follows_the_same_rules_and_its_own_retention(tmp_path: Path, auth_url: str) -> None:
    """Refusals in the table are bounded, printable and counted as in auth.db; days of events past
    ``audit_retention_days`` are deleted whole, with Queries and BatchWriteItem."""
    settings = replica_settings(tmp_path, "one", auth_url)
    day_us = 86_400_000_000
    now_us = time.time_ns() // 1000
    recorder = _Recorder(auth_url)
    ticks = iter(range(now_us - 40 * day_us, now_us, 1000))  # a clock 40 days behind that moves on
    old = open_store(settings, recorder.client, clock_us=lambda: next(ticks), cache_seconds=30)
    try:
        old.create(Role.READ, actor="past", source="local")
        for _ in range(3):
            old.record_denied(actor="unauthenticated", target="GET /\x1b[2J", source="10.0.0.1", detail="old")
        old.flush_audit()
        for number in range(40):  # more than one BatchWriteItem to delete
            old.record_denied(
                actor="unauthenticated", target="GET /", source=f"10.0.1.{number}", detail="old"
            )
    finally:
        old.close()
    store = open_store(
        settings, recorder.client, audit_retention_days=30, cache_seconds=30, clock_us=lambda: now_us
    )
    try:
        store.record_denied(
            actor="unauthenticated", target="GET /" + "A" * 5000, source="10.0.0.2", detail="x"
        )
        store.record_denied(
            actor="unauthenticated", target="GET /" + "A" * 5000, source="10.0.0.2", detail="x"
        )
        before = [(e.actor, e.target, e.count) for e in store.audit(limit=100)]
        calls = len(recorder.calls)
        assert store.expire_audit() == 42  # the old day's key.create and its refusals (41 records)
        assert "Scan" not in recorder.calls[calls:]
        after = [(e.actor, e.target, e.count) for e in store.audit(limit=100)]
    finally:
        store.close()
    assert len(before) == 43
    assert before[0] == ("unauthenticated", "GET /" + "A" * 195 + "…(+4805 chars)", 2)
    assert before[-2:] == [("unauthenticated", "GET /\\x1b[2J", 3), ("past", before[-1][1], 1)]
    assert after == before[:1]
    old_day = datetime.fromtimestamp((now_us - 40 * day_us) / 1e6, UTC).strftime("%Y-%m-%d")
    assert not [item for item in raw_items(auth_url) if old_day in item["pk"]["S"] + item["sk"]["S"]]
