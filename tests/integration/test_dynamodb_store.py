"""What only the DynamoDB store must show, against moto's server mode on 127.0.0.1 (a stand-in for DynamoDB;
none of this ran against AWS): sharded writes, retried UnprocessedItems, no Scan on any read, the item size
limit, TTL from retention, and reads that stop at their budget and go on by cursor."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from types import SimpleNamespace
from typing import Any, TypeVar

import boto3
import httpx
import pytest
import uuid_utils

from logsvc.domain.cursors import decode_cursor
from logsvc.domain.entries import Level, NewEntry
from logsvc.domain.queries import MAX_PAGE_BYTES, Query
from logsvc.domain.retention import RetentionRule
from logsvc.domain.timestamps import parse_timestamp
from logsvc.errors import ConfigError, StoreUnavailable, ValidationFailed
from logsvc.storage.dynamodb import DynamoDBStore
from logsvc.storage.dynamodb_items import shard_of
from logsvc.storage.dynamodb_table import create_table, parse_url
from logsvc.storage.open import open_store
from logsvc.storage.port import Exportable, exportable
from tests.conftest import ServerThread, bearer, make_settings, run_logsvc

T = TypeVar("T")
BASE = 1_700_000_000_000_000
DAY_S = 86_400


def entry(ts_us: int, message: str = "m", service: str = "svc") -> NewEntry:
    return NewEntry(uuid_utils.uuid7().bytes, service, ts_us, Level.INFO, "application", message, None, ts_us)


def client_for(url: str) -> Any:
    target = parse_url(url)
    return boto3.client("dynamodb", region_name=target.region, endpoint_url=target.endpoint)


def run(store: DynamoDBStore, body: Callable[[DynamoDBStore], Awaitable[T]]) -> T:
    async def main() -> T:
        try:
            return await body(store)
        finally:
            await store.close()

    return asyncio.run(main())


class Calls:
    """Records every DynamoDB operation a client makes; ``answer`` may replace the service's answer."""

    def __init__(self, client: Any, answer: Callable[[str, dict[str, Any]], Any] | None = None) -> None:
        self.operations: list[str] = []
        self.answer = answer
        client.meta.events.register("before-call.dynamodb.*", self._before_call)

    def _before_call(self, model: Any, params: dict[str, Any], **_: Any) -> Any:
        self.operations.append(model.name)
        if self.answer is None:
            return None
        return self.answer(model.name, json.loads(params["body"]))


def test_writes_spread_over_the_shards_of_a_service(dynamodb_url: str) -> None:
    entries = [entry(BASE + i) for i in range(200)]
    run(DynamoDBStore(dynamodb_url), lambda store: store.append(entries))
    client = client_for(dynamodb_url)
    table = parse_url(dynamodb_url).table
    counts = [
        client.query(
            TableName=table,
            KeyConditionExpression="pk = :p",
            ExpressionAttributeValues={":p": {"S": f"svc#{shard:02d}"}},
            Select="COUNT",
        )["Count"]
        for shard in range(4)
    ]
    assert sum(counts) == 200
    assert min(counts) >= 30  # a hash of the log_id, not one hot partition
    assert counts == [sum(1 for e in entries if shard_of(e.log_id, 4) == s) for s in range(4)]


def test_unprocessed_items_are_retried_until_written(dynamodb_url: str) -> None:
    client = client_for(dynamodb_url)
    refusals = {"left": 3}

    def throttle_some(operation: str, request: dict[str, Any]) -> Any:
        if operation != "BatchWriteItem" or refusals["left"] == 0:
            return None
        refusals["left"] -= 1
        return SimpleNamespace(status_code=200), {"UnprocessedItems": request["RequestItems"]}

    calls = Calls(client, throttle_some)
    entries = [entry(BASE + i) for i in range(30)]

    async def body(store: DynamoDBStore) -> int:
        await store.append(entries)
        return (await store.recent(Query(limit=100, service_name="svc"))).count

    assert run(DynamoDBStore(dynamodb_url, client=client), body) == 30
    assert refusals["left"] == 0
    # the registry items, then two chunks of entries; three tries refused along the way
    assert calls.operations.count("BatchWriteItem") == 1 + 2 + 3


def test_writes_never_processed_are_not_acknowledged(dynamodb_url: str) -> None:
    client = client_for(dynamodb_url)

    def throttle_all(operation: str, request: dict[str, Any]) -> Any:
        if operation != "BatchWriteItem":
            return None
        return SimpleNamespace(status_code=200), {"UnprocessedItems": request["RequestItems"]}

    Calls(client, throttle_all)
    with pytest.raises(StoreUnavailable, match="unprocessed after 8 attempts"):
        run(DynamoDBStore(dynamodb_url, client=client), lambda store: store.append([entry(BASE)]))


def test_throttling_and_missing_tables_are_503s(dynamodb_url: str) -> None:
    client = client_for(dynamodb_url)

    def throttled(operation: str, request: dict[str, Any]) -> Any:
        if operation != "Query":
            return None
        error = {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}}
        return SimpleNamespace(status_code=400), error

    Calls(client, throttled)
    with pytest.raises(StoreUnavailable, match="throttling") as caught:
        run(DynamoDBStore(dynamodb_url, client=client), lambda store: store.recent(Query()))
    assert caught.value.status == 503
    assert caught.value.headers == {"Retry-After": "1"}
    missing = dynamodb_url.replace("dynamodb://logs-", "dynamodb://absent-")
    with pytest.raises(ConfigError, match=r"cannot open DynamoDB table absent-.*ResourceNotFoundException"):
        DynamoDBStore(missing)


def test_no_read_scans(dynamodb_url: str) -> None:
    client = client_for(dynamodb_url)
    calls = Calls(client)
    entries = [entry(BASE + i * 1000, f"word{i % 3}", f"svc-{i % 5}") for i in range(100)]

    async def body(store: DynamoDBStore) -> None:
        await store.append(entries)
        calls.operations.clear()
        await store.recent(Query())
        await store.recent(Query(service_name="svc-1", levels=(Level.ERROR,)))
        await store.recent(Query(service_patterns=("svc-1", "svc-2")))
        await store.recent(Query(terms=("word1",), since_us=BASE, until_us=BASE + 50_000))
        await store.get(entries[7].log_id)
        await store.oldest()

    run(DynamoDBStore(dynamodb_url, client=client), body)
    assert set(calls.operations) == {"Query", "GetItem"}


def test_items_over_400_kb_are_refused_by_name_and_nothing_is_written(dynamodb_url: str) -> None:
    small = entry(BASE, "fits")
    large = NewEntry(
        uuid_utils.uuid7().bytes, "svc", BASE, Level.INFO, "application", "x" * 420_000, None, BASE
    )

    async def body(store: DynamoDBStore) -> int:
        with pytest.raises(ValidationFailed) as caught:
            await store.append([small, large])
        (error,) = caught.value.errors
        assert (error.field, error.index) == ("message", 1)
        assert "at most 409600 bytes" in error.message
        return (await store.recent(Query())).count

    assert run(DynamoDBStore(dynamodb_url), body) == 0


def test_retention_is_written_as_each_items_ttl(dynamodb_url: str) -> None:
    rules = [RetentionRule(("audit*",), (), 365), RetentionRule((), ("audit*", "keep"), 7)]
    entries = [entry(BASE, service="audit-log"), entry(BASE, service="web"), entry(BASE, service="keep")]
    run(DynamoDBStore(dynamodb_url, retention=rules), lambda store: store.append(entries))
    client = client_for(dynamodb_url)
    table = parse_url(dynamodb_url).table
    assert (
        client.describe_time_to_live(TableName=table)["TimeToLiveDescription"]["AttributeName"]
        == "expires_at"
    )
    expiry = {}
    for e in entries:
        key = {
            "pk": {"S": f"{e.service_name}#{shard_of(e.log_id, 4):02d}"},
            "sk": {"S": f"{BASE:019d}#{e.log_id.hex()}"},
        }
        item = client.get_item(TableName=table, Key=key)["Item"]
        expiry[e.service_name] = int(item["expires_at"]["N"]) if "expires_at" in item else None
    start = BASE // 1_000_000
    assert expiry == {"audit-log": start + 365 * DAY_S, "web": start + 7 * DAY_S, "keep": None}


def test_a_read_stops_at_its_budget_and_goes_on_by_cursor(dynamodb_url: str) -> None:
    entries = [entry(BASE + i * 1000, "needle" if i % 40 == 0 else "hay", f"svc-{i % 3}") for i in range(400)]
    needles = sorted((e.log_id.hex() for e in entries if e.message == "needle"), reverse=True)

    async def body(store: DynamoDBStore) -> tuple[list[int], list[str]]:
        await store.append(entries)
        counts: list[int] = []
        found: list[str] = []
        query = Query(limit=5, terms=("NEEDLE",))
        while True:
            page = await store.recent(query)
            counts.append(page.count)
            found += [e.log_id.replace("-", "") for e in page.logs]
            if page.next_cursor is None:
                return counts, found
            query = Query(limit=5, terms=("NEEDLE",), cursor=decode_cursor(page.next_cursor))

    counts, found = run(DynamoDBStore(dynamodb_url, examine_limit=60), body)
    assert found == sorted(needles, key=lambda h: -next(e.ts_us for e in entries if e.log_id.hex() == h))
    assert len(counts) > 3  # more pages than 10 matches / 5 need: some pages stopped at the budget
    assert any(count < 5 for count in counts[:-1])


def test_shard_count_is_fixed_for_the_tables_life(dynamodb_url: str) -> None:
    with pytest.raises(ConfigError, match="created with 4 shards; the store URL says 8"):
        DynamoDBStore(dynamodb_url.replace("shards=4", "shards=8"))
    assert DynamoDBStore(dynamodb_url.replace("&shards=4", "")).shards == 4


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("dynamodb://", "write dynamodb://TABLE"),
        ("dynamodb://t/extra", "write dynamodb://TABLE"),
        ("dynamodb://t?region=us-east-1&shard=4", "unknown parameter shard"),
        ("dynamodb://t?shards=0", "shards must be a whole number from 1 to 64"),
        ("dynamodb://t?shards=x", "shards must be a whole number from 1 to 64"),
    ],
)
def test_bad_urls_are_named(url: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        open_store(url)


def test_create_table_refuses_an_existing_table(dynamodb_url: str) -> None:
    with pytest.raises(ConfigError, match=r"cannot create DynamoDB table logs-\w+: ResourceInUseException"):
        create_table(dynamodb_url)


def test_the_server_runs_on_dynamodb(dynamodb_url: str, tmp_path: Any) -> None:
    """`logsvc serve --store dynamodb://...`: two servers (replicas) on one table see each other's writes."""
    first = ServerThread(make_settings(tmp_path / "a", store=dynamodb_url)).start()
    second = ServerThread(make_settings(tmp_path / "b", store=dynamodb_url)).start()
    try:
        with httpx.Client(base_url=first.url, headers=bearer(first.admin)) as one:
            created = one.post("/logs", json={"service_name": "api", "message": "from replica one"})
            assert created.status_code == 201, created.text
            log_id = created.json()["log_id"]
        with httpx.Client(base_url=second.url, headers=bearer(second.admin)) as two:
            recent = two.get("/logs/recent", params={"service_name": "api"})
            assert recent.status_code == 200
            assert [e["log_id"] for e in recent.json()["logs"]] == [log_id]
            assert two.get(f"/logs/{log_id}").json()["message"] == "from replica one"
            bad = two.post("/logs", json={"message": ""})
            assert bad.status_code == 400
            assert bad.headers["content-type"] == "application/problem+json"
            assert two.get("/readyz").status_code == 200
    finally:
        first.stop()
        second.stop()


def test_sqlite_only_features_refuse_a_dynamodb_store_by_name(dynamodb_url: str, tmp_path: Any) -> None:
    with pytest.raises(
        ConfigError, match="archive_dir works with the sqlite store; DynamoDB has point-in-time"
    ):
        make_settings(tmp_path / "d", store=dynamodb_url, archive_dir=str(tmp_path / "archive"))
    stats = run_logsvc(make_settings(tmp_path / "e", store=dynamodb_url), "store", "stats")
    assert stats.returncode == 2
    assert "this command works on the embedded sqlite store; for DynamoDB use its own tools" in stats.stderr


def test_the_dynamodb_store_offers_no_archive_export(dynamodb_url: str) -> None:
    """Archiving is a capability of its own: a store without it is refused by name, not by a stub method."""
    store = DynamoDBStore(dynamodb_url)
    try:
        assert not isinstance(store, Exportable)
        with pytest.raises(ConfigError, match=r"has no archive export: .*point-in-time recovery"):
            exportable(store)
    finally:
        asyncio.run(store.close())


def test_the_cli_creates_a_table_the_server_can_use(
    moto_endpoint: str, aws_credentials: None, tmp_path: Any
) -> None:
    url = f"dynamodb://cli-made?region=us-east-1&endpoint={moto_endpoint}&shards=2"
    settings = make_settings(tmp_path / "d")
    created = run_logsvc(settings, "aws", "create-table", url)
    assert created.returncode == 0, created.stderr
    assert created.stdout.strip() == "created cli-made"
    assert DynamoDBStore(url.replace("&shards=2", "")).shards == 2
    again = run_logsvc(settings, "aws", "create-table", url)
    assert again.returncode == 2
    assert "cannot create DynamoDB table cli-made: ResourceInUseException" in again.stderr


def test_a_budget_stop_between_days_loses_nothing(dynamodb_url: str) -> None:
    day = 86_400_000_000
    entries = [
        entry(BASE + i * day // 3, "needle" if i % 7 == 0 else "hay", f"svc-{i % 2}") for i in range(90)
    ]
    needles = sorted(((e.ts_us, e.log_id.hex()) for e in entries if e.message == "needle"), reverse=True)

    async def body(store: DynamoDBStore) -> list[tuple[int, str]]:
        await store.append(entries)
        found: list[tuple[int, str]] = []
        query = Query(limit=4, terms=("needle",))
        for _ in range(200):
            page = await store.recent(query)
            found += [(parse_timestamp(e.timestamp), e.log_id.replace("-", "")) for e in page.logs]
            if page.next_cursor is None:
                return found
            query = Query(limit=4, terms=("needle",), cursor=decode_cursor(page.next_cursor))
        raise AssertionError("the pages did not end")

    assert run(DynamoDBStore(dynamodb_url, examine_limit=100), body) == needles


def test_an_entry_stored_by_a_failed_batch_is_still_found(dynamodb_url: str) -> None:
    """The registry is written before the entries: a chunk that fails leaves the others readable, and a
    retry of the whole batch completes it without duplicates."""
    client = client_for(dynamodb_url)
    entries = [entry(BASE + i, f"e{i}", "orders") for i in range(30)]
    failing = {"on": True}

    def refuse_the_second_chunk(operation: str, request: dict[str, Any]) -> Any:
        if operation != "BatchWriteItem" or not failing["on"]:
            return None
        if len(request["RequestItems"][parse_url(dynamodb_url).table]) == 5:
            return SimpleNamespace(status_code=200), {"UnprocessedItems": request["RequestItems"]}
        return None

    Calls(client, refuse_the_second_chunk)

    async def body(store: DynamoDBStore) -> tuple[int, int, int]:
        with pytest.raises(StoreUnavailable):
            await store.append(entries)
        everything = (await store.recent(Query())).count
        scoped = (await store.recent(Query(service_patterns=("ord*",)))).count
        failing["on"] = False
        await store.append(entries)
        return everything, scoped, (await store.recent(Query())).count

    assert run(DynamoDBStore(dynamodb_url, client=client), body) == (25, 25, 30)


def test_a_cursor_older_than_a_moving_since_answers_an_empty_page_without_asking(dynamodb_url: str) -> None:
    client = client_for(dynamodb_url)
    calls = Calls(client)

    async def body(store: DynamoDBStore) -> Any:
        await store.append([entry(BASE)])
        calls.operations.clear()
        return await store.recent(Query(since_us=BASE + 10, cursor=(BASE + 5, "0" * 32)))

    page = run(DynamoDBStore(dynamodb_url, client=client), body)
    assert (page.count, page.next_cursor) == (0, None)
    assert calls.operations == []  # DynamoDB refuses a BETWEEN whose low end is above its high end


@pytest.mark.parametrize("cursor", [(-1, "0" * 32), (BASE, 17), (BASE, "zz"), (BASE, "0" * 2000)])
def test_tampered_cursors_are_400s(dynamodb_url: str, cursor: tuple[int, Any]) -> None:
    with pytest.raises(ValidationFailed) as caught:
        run(DynamoDBStore(dynamodb_url), lambda store: store.recent(Query(cursor=cursor)))
    assert caught.value.errors[0].field == "cursor"


def test_a_page_stops_before_its_bytes_outgrow_a_lambda_answer(dynamodb_url: str) -> None:
    entries = [
        NewEntry(
            uuid_utils.uuid7().bytes, "big", BASE + i, Level.INFO, "application", "é" * 150_000, None, BASE
        )
        for i in range(30)
    ]

    async def body(store: DynamoDBStore) -> list[int]:
        await store.append(entries)
        counts: list[int] = []
        query = Query(limit=1000)
        while True:
            page = await store.recent(query)
            counts.append(page.count)
            if page.next_cursor is None:
                return counts
            query = Query(limit=1000, cursor=decode_cursor(page.next_cursor))

    counts = run(DynamoDBStore(dynamodb_url), body)
    assert sum(counts) == 30
    assert max(counts) * 300_000 <= MAX_PAGE_BYTES + 300_000  # each entry is 300 KB of UTF-8
    assert len(counts) >= 3


def test_walking_empty_days_is_bounded_per_request(dynamodb_url: str) -> None:
    """Days whose entries were all deleted stay in the registry: a read must not query them all at once."""
    client = client_for(dynamodb_url)
    calls = Calls(client)
    day = 86_400_000_000

    async def body(store: DynamoDBStore) -> tuple[int, str | None]:
        await store.append([entry(BASE + i * day, service="old") for i in range(120)])
        await store.delete_older(BASE + 200 * day, limit=1000)
        calls.operations.clear()
        page = await store.recent(Query())
        return page.count, page.next_cursor

    count, cursor = run(DynamoDBStore(dynamodb_url, examine_limit=400), body)
    assert count == 0
    assert cursor is not None  # stopped at its budget: the client may go on, or stop
    assert (
        calls.operations.count("Query") <= 400 // 40 + 4 + 1
    )  # budget / cost per query, one day, the day list
