"""The SDK's clients against a real server: every method, each credential kind, typed errors carrying the
problem document, the async client under concurrency, and models that match the API's schemas."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
import msgspec
import pytest

from logsvc.api.openapi import openapi_document
from logsvc.auth.policy import Role
from logsvc.client import (
    AsyncClient,
    AwsChain,
    AwsCredentials,
    BadRequest,
    BatchCreated,
    Client,
    ClientError,
    Created,
    Entry,
    NotFound,
    Page,
    PayloadTooLarge,
    PermissionDenied,
    ServerError,
    SigV4Auth,
    Throttled,
    Unauthenticated,
    Unreachable,
)
from tests.conftest import ServerThread, free_port, make_key, make_settings


def test_send_get_recent_and_pages(server: ServerThread) -> None:
    with Client(server.url, api_key=server.admin.api_key) as client:
        created = client.send(
            "disk full",
            service="api",
            level="error",
            log_type="system",
            metadata={"disk": "/dev/sda1", "free_bytes": 0, "tags": ["a", "b"]},
        )
        assert isinstance(created, Created)
        entry = client.get(created.log_id)
        assert (entry.service_name, entry.level, entry.log_type, entry.message) == (
            "api",
            "ERROR",
            "system",
            "disk full",
        )
        assert entry.metadata == {"disk": "/dev/sda1", "free_bytes": 0, "tags": ["a", "b"]}
        batch = client.send_batch({"message": f"m{n}", "service_name": "api"} for n in range(5))
        assert isinstance(batch, BatchCreated)
        assert batch.count == 5
        assert len(set(batch.log_ids)) == 5
        assert [e.message for e in client.recent(service_name="api", limit=3)] == ["m4", "m3", "m2"]
        assert [e.message for e in client.recent(service_name="api", min_level="error")] == ["disk full"]
        pages = list(client.pages(service_name="api", limit=2))
        assert [len(p.logs) for p in pages] == [2, 2, 2]
        assert pages[-1].next_cursor is None
        assert [e.message for p in pages for e in p.logs] == ["m4", "m3", "m2", "m1", "m0", "disk full"]


def test_a_resend_with_the_same_log_id_stores_one_entry(server: ServerThread) -> None:
    """The service keeps one entry per service and log id: what makes the handler's retries harmless."""
    log_id = uuid.uuid4()
    when = datetime(2026, 1, 2, 3, 4, 5, 600000, tzinfo=UTC)
    with Client(server.url, api_key=server.admin.api_key) as client:
        first = client.send("once", service="retry", log_id=log_id, timestamp=when)
        again = client.send("once", service="retry", log_id=log_id, timestamp=when)
        batch = client.send_batch([{"message": "once", "service_name": "retry", "log_id": str(log_id)}])
        assert first.log_id == again.log_id == batch.log_ids[0] == str(log_id)
        (stored,) = client.recent(service_name="retry")
        assert stored.timestamp == "2026-01-02T03:04:05.600000Z"
        # Another service may use the same id for an entry of its own.
        client.send("elsewhere", service="other", log_id=log_id)
        assert len(client.recent(service_name="other")) == 1


def test_sigv4_auth_signs_for_the_server(server: ServerThread) -> None:
    key = make_key(server.settings, Role.ADMIN)
    credentials = AwsCredentials(key.access_key_id, key.secret_access_key)
    with Client(server.url, aws_credentials=credentials) as client:
        created = client.send("signed", service="sig")
        assert client.get(created.log_id).message == "signed"
        assert [e.message for e in client.recent(service_name="sig", q="signed")] == ["signed"]
    # The Auth on any httpx client, with a query string to sign.
    auth = SigV4Auth(credentials)
    answer = httpx.get(
        f"{server.url}/logs", params={"service_name": "sig", "q": "sig*"}, auth=auth, timeout=10
    )
    assert answer.status_code == 200, answer.text
    wrong = AwsCredentials(key.access_key_id, "not-the-secret")
    with Client(server.url, aws_credentials=wrong) as client, pytest.raises(PermissionDenied) as refused:
        client.send("forged")
    assert refused.value.status == 403
    assert refused.value.code == "invalid_signature"
    assert "signature" in refused.value.detail


def test_credentials_from_the_aws_chain(
    server: ServerThread, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    key = make_key(server.settings, Role.INGEST)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key.secret_access_key)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    with Client(server.url, aws_credentials=AwsChain()) as client:
        assert client.send("from the chain").log_id


def test_a_token_may_be_renewed_before_each_request(server: ServerThread) -> None:
    asked: list[int] = []

    def token() -> str:
        asked.append(1)
        return server.admin.api_key

    with Client(server.url, token=token) as client:
        client.send("one")
        client.recent()
    assert len(asked) == 2


def test_typed_errors_carry_the_problem(server: ServerThread) -> None:
    with Client(server.url, api_key=server.admin.api_key) as client:
        with pytest.raises(BadRequest) as bad:
            client.send("   ")
        assert (bad.value.status, bad.value.code) == (400, "validation_error")
        assert bad.value.errors == [{"field": "message", "message": "must not be blank"}]
        assert str(bad.value) == "400 Request validation failed: message: must not be blank"
        with pytest.raises(BadRequest) as bad_batch:
            client.send_batch([{"message": "fine"}, {"message": "x", "level": "loud"}])
        assert [(e["index"], e["field"]) for e in bad_batch.value.errors] == [(1, "level")]
        with pytest.raises(BadRequest) as bad_filter:
            client.recent(limit=0)
        assert bad_filter.value.errors[0]["field"] == "limit"
        with pytest.raises(NotFound) as missing:
            client.get(uuid.uuid4())
        assert missing.value.problem["status"] == 404
    with Client(server.url) as anonymous, pytest.raises(Unauthenticated) as unauthenticated:
        anonymous.recent()
    assert unauthenticated.value.status == 401
    scoped = make_key(server.settings, Role.INGEST, ("payments*",))
    with Client(server.url, api_key=scoped.api_key) as client:
        client.send("mine", service="payments-api")
        with pytest.raises(PermissionDenied) as denied:
            client.send("theirs", service="web")
        assert denied.value.code == "forbidden"
        assert not denied.value.retryable


def test_413_and_429_are_typed_and_say_when_to_retry(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path / "data", max_body_bytes=2048, rate_limit_per_second=0.1, rate_limit_burst=1
    )
    server = ServerThread(settings).start()
    try:
        with Client(server.url, api_key=server.admin.api_key) as client:
            with pytest.raises(PayloadTooLarge) as large:
                client.send("x" * 4096)
            assert large.value.code == "payload_too_large"
            # That request took the one token of the bucket, which refills in 10 s.
            with pytest.raises(Throttled) as throttled:
                client.recent()
            assert throttled.value.retryable
            assert throttled.value.retry_after is not None
            assert throttled.value.retry_after >= 1
    finally:
        server.stop()


def test_an_answer_without_a_problem_document_is_still_typed() -> None:
    """What a proxy or a load balancer may answer instead of logsvc: a 5xx with an HTML page and a date."""

    def gateway(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            503,
            text="<html>Service Unavailable</html>",
            headers={"Retry-After": "Wed, 21 Oct 2065 07:28:00 GMT"},
        )

    with (
        Client("http://logs.example", transport=httpx.MockTransport(gateway)) as client,
        pytest.raises(ServerError) as down,
    ):
        client.send("hello")
    assert down.value.status == 503
    assert down.value.retryable
    assert down.value.problem == {"detail": "<html>Service Unavailable</html>"}
    assert down.value.retry_after is not None
    assert down.value.retry_after > 86400


def test_no_server_is_unreachable() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with Client(url, api_key="k", timeout=5) as client, pytest.raises(Unreachable) as unreachable:
        client.send("nobody listens")
    assert unreachable.value.status is None
    assert unreachable.value.retryable
    assert str(unreachable.value).startswith(f"cannot reach {url}: ConnectError")
    assert isinstance(unreachable.value, ClientError)
    assert isinstance(unreachable.value.__cause__, httpx.ConnectError)


def test_one_credential_at_most() -> None:
    with pytest.raises(ValueError, match="give one credential, not api_key and token"):
        Client("http://127.0.0.1:9", api_key="a", token="b")


def test_the_async_client_under_concurrency(server: ServerThread) -> None:
    async def scenario() -> tuple[list[Created], list[str], Entry, BatchCreated]:
        async with AsyncClient(server.url, api_key=server.admin.api_key) as client:
            sent = await asyncio.gather(
                *(client.send(f"concurrent {n}", service="async", metadata={"n": n}) for n in range(200))
            )
            batch = await client.send_batch([{"message": "in a batch", "service_name": "async"}] * 3)
            read = [
                e.message async for page in client.pages(service_name="async", limit=64) for e in page.logs
            ]
            one = await client.get(sent[7].log_id)
            return sent, read, one, batch

    sent, read, one, batch = asyncio.run(scenario())
    assert len({created.log_id for created in sent}) == 200
    assert batch.count == 3
    assert sorted(read) == sorted([f"concurrent {n}" for n in range(200)] + ["in a batch"] * 3)
    assert (one.message, one.metadata) == ("concurrent 7", {"n": 7})


def test_async_errors_are_the_same_types(server: ServerThread) -> None:
    async def scenario() -> None:
        async with AsyncClient(server.url, api_key=server.admin.api_key) as client:
            with pytest.raises(BadRequest):
                await client.send("")
            with pytest.raises(NotFound):
                await client.get(str(uuid.uuid4()))
        async with AsyncClient(f"http://127.0.0.1:{free_port()}", timeout=5) as nobody:
            with pytest.raises(Unreachable):
                await nobody.recent()

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("model", "schema"),
    [(Entry, "LogEntry"), (Page, "Page"), (Created, "Created"), (BatchCreated, "BatchCreated")],
)
def test_the_models_have_the_fields_of_the_api(model: type[msgspec.Struct], schema: str) -> None:
    properties = openapi_document()["components"]["schemas"][schema]["properties"]
    assert set(model.__struct_fields__) == set(properties)
