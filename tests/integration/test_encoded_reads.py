"""The JSON answer of a read made from kept entry encodings (decision 30): byte for byte the encoding of the
page the store reads, whatever is kept, added or deleted, and however a page is cut."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import msgspec
import pytest
import uuid_utils

from logsvc.auth.policy import Principal, Role
from logsvc.domain.cursors import decode_cursor
from logsvc.domain.entries import Level, Limits, NewEntry
from logsvc.domain.queries import MAX_PAGE_BYTES, Query, encoded_page
from logsvc.service import LogService
from logsvc.storage.dynamodb import DynamoDBStore
from logsvc.storage.encoded import EncodedEntries
from logsvc.storage.port import EncodedReads, LogStore
from logsvc.storage.sqlite import SQLiteStore
from tests.conftest import ServerThread, bearer

T = TypeVar("T")
BASE = 1_700_000_000_000_000
ADMIN = Principal(id="admin", roles=frozenset({Role.ADMIN}))
WORDS = ["alpha", "beta", "disk", "timeout", "login", "é", "日本", 'a"b', "tab\there", "line\nbreak", "\x01"]
TYPES = ["application", "audit", "système"]
METADATA = [None, "{}", '{"k":1}', '{"nested":{"list":[1,2.5,"x",null,true]},"ü":"\\u0000"}']


def run(path: Path, body: Callable[[SQLiteStore], Awaitable[T]], **kwargs: Any) -> T:
    return run_on(SQLiteStore(path, **kwargs), body)


S = TypeVar("S", bound=LogStore)


def run_on(store: S, body: Callable[[S], Awaitable[T]]) -> T:
    async def main() -> T:
        try:
            return await body(store)
        finally:
            await store.close()

    return asyncio.run(main())


def make_entries(count: int, seed: int, *, start: int = 0) -> list[NewEntry]:
    """Entries of every kind of text, in time order mostly, with ties, backfills and every level."""
    rng = random.Random(seed)
    made: list[NewEntry] = []
    for i in range(start, start + count):
        ts = BASE + i * 1000
        roll = rng.random()
        if roll < 0.1:
            ts -= rng.randrange(0, 50_000)
        elif roll < 0.3 and made:
            ts = made[-1].ts_us
        message = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 6))) + f" #{i}"
        made.append(
            NewEntry(
                uuid_utils.uuid7().bytes,
                f"svc-{i % 3}",
                ts,
                rng.choice(list(Level)),
                rng.choice(TYPES),
                message,
                rng.choice(METADATA),
                ts + rng.randrange(0, 5_000_000),
            )
        )
    return made


QUERIES = [
    Query(),
    Query(limit=1),
    Query(limit=7, service_name="svc-1"),
    Query(limit=50, levels=(Level.ERROR,)),
    Query(limit=100, levels=(Level.WARN, Level.ERROR, Level.FATAL)),
    Query(limit=1000),
    Query(limit=20, terms=("disk",)),
    Query(limit=10, terms=("disk", "login")),
    Query(limit=5, terms=("nomatch",)),
    Query(limit=30, log_type="audit"),
    Query(limit=40, since_us=BASE + 100_000, until_us=BASE + 400_000),
    Query(levels=()),
    Query(limit=25, service_patterns=("svc-2*",)),
    Query(limit=10, service_name="nobody"),
]


def with_cursor(query: Query, cursor: str) -> Query:
    return msgspec.structs.replace(query, cursor=decode_cursor(cursor))


async def same_bytes(store: SQLiteStore, query: Query, pages: int = 3) -> int:
    """Reads ``pages`` pages both ways (following the cursor), asserting each pair equal; the entries seen."""
    seen = 0
    for _ in range(pages):
        expected = msgspec.json.encode(await store.recent(query))
        assert await store.recent_json(query) == expected
        page = msgspec.json.decode(expected)
        seen += page["count"]
        if page["next_cursor"] is None:
            break
        query = with_cursor(query, page["next_cursor"])
    return seen


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[NewEntry]]:
    path = tmp_path_factory.mktemp("encoded") / "logs.db"
    entries = make_entries(3000, seed=11)
    run(path, lambda store: store.append(entries))
    return path, entries


@pytest.mark.parametrize("budget", [0.005, 0.0], ids=["inline", "over-budget-so-pooled"])
@pytest.mark.parametrize("query", QUERIES, ids=[repr(q) for q in QUERIES])
def test_the_json_is_the_page_encoded_byte_for_byte(
    filled: tuple[Path, list[NewEntry]], query: Query, budget: float
) -> None:
    """Nothing kept, then everything kept, then following the cursor: each answer is the page's encoding."""
    path, _ = filled

    async def both(store: SQLiteStore) -> None:
        await same_bytes(store, query)  # nothing kept yet
        await same_bytes(store, query)  # the first page kept now

    run(path, both, inline_read_budget=budget)


@pytest.mark.parametrize("query", QUERIES[:8], ids=[repr(q) for q in QUERIES[:8]])
def test_a_kept_page_shows_new_and_deleted_entries(tmp_path: Path, query: Query) -> None:
    """A page read again after a few entries came (read by number), after many (read in order) and after
    the oldest were deleted: each time what the store holds now."""

    async def body(store: SQLiteStore) -> None:
        await store.append(make_entries(300, seed=1))
        await same_bytes(store, query, pages=1)
        await store.append(make_entries(3, seed=2, start=300))
        await same_bytes(store, query, pages=1)
        await store.append(make_entries(200, seed=3, start=303))
        await same_bytes(store, query, pages=1)
        assert await store.delete_older(BASE + 450 * 1000, limit=10_000) > 0  # most of the page
        await same_bytes(store, query, pages=1)

    run(tmp_path / "logs.db", body)


@pytest.mark.parametrize("encoded_bytes", [8 * 1024 * 1024, 20_000, 0], ids=["kept", "evicting", "none kept"])
def test_pages_cut_by_size_are_the_same(tmp_path: Path, encoded_bytes: int) -> None:
    """Entries of 200 KB among small ones: a page of 1000 stops past MAX_PAGE_BYTES, read both ways, with
    some of it kept (an earlier smaller page), all of it, or an encoding budget that drops most."""
    rng = random.Random(5)
    entries = make_entries(120, seed=4)
    big = {rng.randrange(len(entries)) for _ in range(40)}
    entries = [
        msgspec.structs.replace(e, message=e.message + " x" * 100_000) if i in big else e
        for i, e in enumerate(entries)
    ]

    async def body(store: SQLiteStore) -> None:
        await store.append(entries)
        await same_bytes(store, Query(limit=5))
        for query in (Query(limit=1000), Query(limit=1000, terms=("disk",)), Query(limit=1000)):
            first = msgspec.json.decode(await store.recent_json(query))
            assert first["next_cursor"] is not None  # cut by size, not by the limit
            assert sum(len(e["message"]) for e in first["logs"][:-1]) <= MAX_PAGE_BYTES
            await same_bytes(store, query, pages=10)

    run(tmp_path / "logs.db", body, encoded_bytes=encoded_bytes)


def test_the_sqlite_store_encodes_its_reads_and_the_service_uses_it(tmp_path: Path) -> None:
    async def body(store: SQLiteStore) -> None:
        assert isinstance(store, EncodedReads)
        await store.append(make_entries(50, seed=6))
        service = LogService(store, Limits())
        params = [("limit", "20"), ("min_level", "WARN")]
        expected = msgspec.json.encode(await service.recent(params, principal=ADMIN))
        assert await service.recent_json(params, principal=ADMIN) == expected

    run(tmp_path / "logs.db", body)


def test_a_store_without_encoded_reads_answers_the_same_json(dynamodb_url: str) -> None:
    """The DynamoDB store keeps no encodings: the service encodes its page."""

    async def body(store: DynamoDBStore) -> None:
        assert not isinstance(store, EncodedReads)
        await store.append(make_entries(30, seed=8))
        service = LogService(store, Limits())
        for params in ([("limit", "7")], [("limit", "5"), ("q", "disk")], [("service_name", "svc-1")]):
            expected = msgspec.json.encode(await service.recent(params, principal=ADMIN))
            assert await service.recent_json(params, principal=ADMIN) == expected

    run_on(DynamoDBStore(dynamodb_url), body)


def test_encoded_page_is_the_page_encoding() -> None:
    logs = [msgspec.json.encode({"message": "a"}), msgspec.json.encode({"message": "é\n"})]
    for entries, cursor in (([], None), (logs, None), (logs[:1], "AbC-_9")):
        page = {
            "count": len(entries),
            "logs": [msgspec.json.decode(e) for e in entries],
            "next_cursor": cursor,
        }
        assert encoded_page(entries, cursor) == msgspec.json.encode(page)


def test_kept_encodings_stay_within_their_budget_first_kept_first_dropped() -> None:
    kept = EncodedEntries(max_bytes=3 * (100 + 150))
    kept.keep([(1, (b"a" * 100, 100)), (2, (b"b" * 100, 100)), (3, (b"c" * 100, 100))])
    assert [kept.find(seq) is not None for seq in (1, 2, 3)] == [True, True, True]
    kept.keep([(4, (b"d" * 100, 100))])
    assert [kept.find(seq) is not None for seq in (1, 2, 3, 4)] == [False, True, True, True]
    kept.keep([(5, (b"e" * 400, 400))])  # larger than the rest: everything older goes
    assert [kept.find(seq) is not None for seq in (2, 3, 4, 5)] == [False, False, False, True]
    assert kept.find(5) == (b"e" * 400, 400)
    nothing = EncodedEntries(max_bytes=0)
    nothing.keep([(1, (b"a", 1))])
    assert nothing.find(1) is None


def test_a_served_first_page_follows_new_entries_and_pages_on(server: ServerThread) -> None:
    """Over HTTP: the same first page twice is the same bytes; entries posted after it come first in the
    next read; the pages after it, by cursor, give the rest in order; every entry has its usual fields."""
    headers = bearer(server.admin)

    def post(messages: list[str], start: int) -> None:
        body = [
            {"message": m, "timestamp": (BASE + (start + i) * 1000) / 1e6} for i, m in enumerate(messages)
        ]
        assert httpx.post(f"{server.url}/logs", json=body, headers=headers, timeout=10).status_code == 201

    def read(**params: Any) -> httpx.Response:
        answer = httpx.get(f"{server.url}/logs/recent", params=params, headers=headers, timeout=10)
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"] == "application/json"
        return answer

    post([f"old {i} é" for i in range(30)], 0)
    first = read(limit=10)
    assert read(limit=10).content == first.content
    post(["new 1", "new 2"], 30)
    again = read(limit=10).json()
    newest = [e["message"] for e in again["logs"]]
    assert newest == ["new 2", "new 1"] + [e["message"] for e in first.json()["logs"][:8]]
    assert set(again["logs"][0]) == {
        "log_id", "service_name", "timestamp", "level", "log_type", "message", "metadata", "received_at"
    }  # fmt: skip
    seen = newest
    cursor = again["next_cursor"]
    while cursor is not None:
        page = read(limit=10, cursor=cursor).json()
        seen += [e["message"] for e in page["logs"]]
        cursor = page["next_cursor"]
    assert seen == ["new 2", "new 1"] + [f"old {i} é" for i in reversed(range(30))]
