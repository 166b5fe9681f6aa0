"""The LogStore contract, run on every backend: SQLite on a real file, the tiered store (storage v2) on
real files with its compactor process running (once as the server opens it, and once with generations
of 64 entries, so that every test's entries lie in both tiers and are compacted while it runs), and
DynamoDB in moto's server mode (a stand-in for DynamoDB on 127.0.0.1; none of this ran against AWS)."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import pytest
import uuid_utils

from logsvc.domain.cursors import Position, decode_cursor
from logsvc.domain.entries import Level, NewEntry, format_log_id
from logsvc.domain.queries import Query
from logsvc.domain.stats import ServiceTotal, StatsQuery, parse_stats, stats_answer
from logsvc.domain.timestamps import parse_timestamp
from logsvc.errors import ValidationFailed
from logsvc.scopes import covers
from logsvc.storage.dynamodb import DynamoDBStore
from logsvc.storage.open import open_store
from logsvc.storage.port import Arrival, Arrivals, LogStore
from logsvc.storage.sqlite import SQLiteStore
from logsvc.storage.tiered import TieredStore
from tests.conftest import Commits
from tests.integration.stats_reference import capped

T = TypeVar("T")
BASE = 1_700_000_000_000_000
WORDS = ["alpha", "beta", "gamma", "delta", "disk", "timeout", "user", "login"]

Opener = Callable[[], LogStore]


# Generations this small put a few hundred entries in both tiers, and keep the compactor busy.
SMALL_GENERATIONS = 64


@pytest.fixture(params=["sqlite", "tiered", "tiered-small", "dynamodb"])
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Opener:
    """Opens the same store again each time it is called (as a restarted server would)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'logs.db'}"
    elif request.param == "tiered":
        url = f"tiered:///{tmp_path / 'logs-v2'}"
    elif request.param == "tiered-small":
        return lambda: TieredStore(tmp_path / "logs-v2", rows_per_generation=SMALL_GENERATIONS)
    else:
        url = request.getfixturevalue("dynamodb_url")
    return lambda: open_store(url)


def run(opener: Opener, body: Callable[[LogStore], Awaitable[T]]) -> T:
    async def main() -> T:
        store = opener()
        try:
            return await body(store)
        finally:
            await store.close()

    return asyncio.run(main())


def entry(
    ts_us: int, message: str = "m", service: str = "svc", level: Level = Level.INFO, **kw: Any
) -> NewEntry:
    return NewEntry(
        kw.get("log_id", uuid_utils.uuid7().bytes),
        service,
        ts_us,
        level,
        kw.get("log_type", "application"),
        message,
        kw.get("metadata"),
        ts_us,
    )


def ids(entries: list[NewEntry]) -> list[str]:
    return [format_log_id(e.log_id) for e in entries]


def mixed_entries(count: int, seed: int, services: int = 20) -> list[NewEntry]:
    """Backfilled and future-dated entries, ties, many services, every level, a few words each."""
    rng = random.Random(seed)
    entries: list[NewEntry] = []
    for i in range(count):
        ts = BASE + i * 1000
        roll = rng.random()
        if roll < 0.05:
            ts -= rng.randrange(0, count * 1000)
        elif roll < 0.08:
            ts += rng.randrange(0, count * 200)
        elif roll < 0.2 and entries:
            ts = entries[-1].ts_us
        words = " ".join(rng.choice(WORDS) for _ in range(3))
        entries.append(
            entry(
                ts,
                f"{i} {words}",
                f"svc-{i % services}",
                rng.choice(list(Level)),
                log_type=rng.choice(["application", "audit"]),
            )
        )
    return entries


def expected(entries: list[NewEntry], query: Query) -> list[tuple[int, str]]:
    """(timestamp, log_id) of every match, newest first: what the pages must add up to."""
    return sorted(
        (
            (e.ts_us, format_log_id(e.log_id))
            for e in entries
            if (query.service_name is None or e.service_name == query.service_name)
            and (not query.service_patterns or covers(query.service_patterns, e.service_name))
            and (query.levels is None or e.level in query.levels)
            and (query.log_type is None or e.log_type == query.log_type)
            and (query.since_us is None or e.ts_us >= query.since_us)
            and (query.until_us is None or e.ts_us < query.until_us)
            and all(term in e.message.split() for term in query.terms)
        ),
        reverse=True,
    )


async def walk(store: LogStore, query: Query, pages: int = 50) -> list[tuple[int, str]]:
    """Every entry the pages of a read return, following next_cursor."""
    seen: list[tuple[int, str]] = []
    current = query
    for _ in range(pages):
        page = await store.recent(current)
        assert page.count == len(page.logs) <= query.limit
        seen += [(parse_timestamp(e.timestamp), e.log_id) for e in page.logs]
        if page.next_cursor is None:
            return seen
        current = Query(
            **{
                **{f: getattr(query, f) for f in query.__struct_fields__},
                "cursor": decode_cursor(page.next_cursor),
            }
        )
    raise AssertionError("the pages did not end")


def test_newest_100_across_20_services_are_the_newest_by_timestamp(opener: Opener) -> None:
    rng = random.Random(3)
    times = rng.sample(range(BASE, BASE + 10_000_000), 600)  # distinct, arriving in random order
    entries = [entry(ts, f"n{i}", f"svc-{i % 20}") for i, ts in enumerate(times)]

    async def body(store: LogStore) -> list[str]:
        for start in range(0, len(entries), 150):
            await store.append(entries[start : start + 150])
        page = await store.recent(Query(limit=100))
        return [e.log_id for e in page.logs]

    newest = sorted(entries, key=lambda e: e.ts_us, reverse=True)[:100]
    assert run(opener, body) == ids(newest)


QUERIES = [
    Query(limit=50),
    Query(limit=7, service_name="svc-3"),
    Query(limit=20, levels=(Level.WARN, Level.ERROR, Level.FATAL)),
    Query(limit=20, levels=(Level.DEBUG,), service_name="svc-1"),
    Query(limit=25, log_type="audit", since_us=BASE + 100_000, until_us=BASE + 500_000),
    Query(limit=30, terms=("disk",)),
    Query(limit=10, terms=("disk", "login"), service_name="svc-2"),
    Query(limit=40, service_patterns=("svc-1*",)),
    Query(limit=5, terms=("nomatch",)),
]


@pytest.mark.parametrize("query", QUERIES, ids=[f"q{i}" for i in range(len(QUERIES))])
def test_pages_add_up_to_every_match_newest_first(opener: Opener, query: Query) -> None:
    entries = mixed_entries(700, seed=11)

    async def body(store: LogStore) -> list[tuple[int, str]]:
        await store.append(entries[:350])
        await store.append(entries[350:])
        return await walk(store, query)

    got = run(opener, body)
    want = expected(entries, query)
    assert [ts for ts, _ in got] == [ts for ts, _ in want]
    assert sorted(got) == sorted(want)  # every match once; ties may come in either order
    assert len(set(got)) == len(got)


def test_two_entries_with_the_same_service_and_timestamp_both_survive(opener: Opener) -> None:
    twins = [entry(BASE, "first"), entry(BASE, "second")]

    async def body(store: LogStore) -> list[str]:
        await store.append(twins[:1])
        await store.append(twins[1:])
        return sorted(e.message for e in (await store.recent(Query(service_name="svc"))).logs)

    assert run(opener, body) == ["first", "second"]


def test_a_retried_batch_stores_no_duplicates(opener: Opener) -> None:
    batch = mixed_entries(60, seed=5)
    duplicate_inside = [*batch[:3], batch[0]]

    async def body(store: LogStore) -> list[tuple[int, str]]:
        await store.append(batch)
        await store.append(batch)  # the client never saw the first 201
        await store.append(duplicate_inside)
        return await walk(store, Query(limit=1000))

    got = run(opener, body)
    assert sorted(got) == sorted(expected(batch, Query()))


@pytest.fixture(params=["sqlite", "tiered", "tiered-small"])
def counted_opener(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Opener, Commits]:
    """An embedded store, which tells its ``on_commit`` (the metrics') of each transaction of entries."""
    commits = Commits()
    if request.param == "sqlite":
        return (lambda: SQLiteStore(tmp_path / "logs.db", on_commit=commits)), commits
    rows = SMALL_GENERATIONS if request.param == "tiered-small" else None
    return (lambda: TieredStore(tmp_path / "logs-v2", on_commit=commits, rows_per_generation=rows)), commits


def test_a_retried_batch_is_committed_but_not_counted_as_stored_again(
    counted_opener: tuple[Opener, Commits],
) -> None:
    opener, commits = counted_opener
    batch = mixed_entries(60, seed=5)
    new = entry(BASE, "new")

    async def body(store: LogStore) -> int:
        await store.append(batch)
        await store.append(batch)  # the client never saw the first 201
        await store.append([batch[0], new, new])
        return len(await walk(store, Query(limit=1000)))

    assert run(opener, body) == 61
    assert commits == [60, 0, 1]


def test_get_returns_the_entry_as_stored_and_nothing_for_unknown_ids(opener: Opener) -> None:
    stored = entry(
        BASE + 5, "hello é ✓", "payments", Level.ERROR, log_type="audit", metadata='{"n":1.5,"a":[1]}'
    )

    async def body(store: LogStore) -> tuple[Any, Any]:
        await store.append([stored])
        return await store.get(stored.log_id), await store.get(uuid_utils.uuid7().bytes)

    (found,), missing = run(opener, body)
    assert missing == []
    assert (found.log_id, found.service_name, found.level, found.log_type, found.message) == (
        format_log_id(stored.log_id),
        "payments",
        "ERROR",
        "audit",
        "hello é ✓",
    )
    assert bytes(found.metadata) == b'{"n":1.5,"a":[1]}'
    assert found.timestamp == "2023-11-14T22:13:20.000005Z"


def test_entries_survive_a_reopen(opener: Opener) -> None:
    entries = mixed_entries(40, seed=9)

    async def write(store: LogStore) -> None:
        await store.append(entries)

    run(opener, write)
    got = run(opener, lambda store: walk(store, Query(limit=1000)))
    assert sorted(got) == sorted(expected(entries, Query()))


def test_retention_deletes_only_older_entries_in_scope(opener: Opener) -> None:
    entries = [entry(BASE + i * 1_000_000, f"e{i}", f"svc-{i % 3}") for i in range(30)]
    cutoff = BASE + 15 * 1_000_000

    async def body(store: LogStore) -> tuple[int | None, int, int | None, list[tuple[int, str]]]:
        await store.append(entries)
        oldest_before = await store.oldest(exclude=("svc-0",))
        deleted = await store.delete_older(cutoff, exclude=("svc-0",), limit=4)
        deleted += await store.delete_older(cutoff, exclude=("svc-0",), limit=500)
        return (
            oldest_before,
            deleted,
            await store.oldest(exclude=("svc-0",)),
            await walk(store, Query(limit=100)),
        )

    oldest_before, deleted, oldest_after, left = run(opener, body)
    kept = [e for e in entries if e.ts_us >= cutoff or e.service_name == "svc-0"]
    assert oldest_before == BASE + 1_000_000
    assert deleted == len(entries) - len(kept)
    assert oldest_after == cutoff + 1_000_000  # svc-0 holds multiples of 3; the first after is svc-1
    assert sorted(left) == sorted(expected(kept, Query()))


def test_an_empty_store_answers_empty_pages(opener: Opener) -> None:
    async def body(store: LogStore) -> tuple[Any, ...]:
        return (
            await store.recent(Query()),
            await store.recent(Query(service_name="nobody")),
            await store.recent(Query(service_patterns=("x*",))),
            await store.oldest(),
        )

    everything, one, scoped, oldest = run(opener, body)
    assert (everything.count, one.count, scoped.count, oldest) == (0, 0, 0, None)
    assert everything.next_cursor is None


SPREAD_QUERIES = [
    Query(limit=30),
    Query(limit=25, terms=("disk",)),
    Query(limit=40, since_us=BASE + 20 * 86_400_000_000, until_us=BASE + 60 * 86_400_000_000),
    Query(limit=15, service_patterns=("svc-1*",), levels=(Level.ERROR, Level.FATAL)),
]


@pytest.mark.parametrize("query", SPREAD_QUERIES, ids=[f"q{i}" for i in range(len(SPREAD_QUERIES))])
def test_pages_add_up_across_many_days(opener: Opener, query: Query) -> None:
    """Entries eleven hours apart over about three months, backfilled and out of order."""
    entries = [
        msgspec.structs.replace(e, ts_us=BASE + (e.ts_us - BASE) * 39_600_000)
        for e in mixed_entries(200, seed=21)
    ]

    async def body(store: LogStore) -> list[tuple[int, str]]:
        await store.append(entries[100:])
        await store.append(entries[:100])
        return await walk(store, query)

    got = run(opener, body)
    want = expected(entries, query)
    assert [ts for ts, _ in got] == [ts for ts, _ in want]
    assert sorted(got) == sorted(want)


def test_a_log_id_is_unique_within_its_service_not_across_services(opener: Opener) -> None:
    """A writer reusing another service's log_id neither loses its own entry nor touches the other's."""
    first = entry(BASE + 1, "of payments", "payments")
    same_id_elsewhere = msgspec.structs.replace(
        entry(BASE + 2, "of checkout", "checkout"), log_id=first.log_id
    )

    async def body(store: LogStore) -> list[Any]:
        await store.append([first])
        await store.append([same_id_elsewhere])
        await store.append([first, same_id_elsewhere])  # a retry of both: no duplicates
        page = await store.recent(Query(limit=10))
        return [await store.get(first.log_id), page]

    found, page = run(opener, body)
    assert [(e.service_name, e.message) for e in found] == [
        ("checkout", "of checkout"),
        ("payments", "of payments"),
    ]
    assert page.count == 2


def arrived(ts_us: int, message: str, service: str = "svc") -> NewEntry:
    """An entry received now (the arrival index of DynamoDB reads the time of arrival)."""
    now = time.time_ns() // 1000
    return msgspec.structs.replace(entry(ts_us, message, service), received_us=now)


async def follow(
    store: LogStore, after: Position, count: int, searches: tuple[tuple[str, ...], ...]
) -> Arrivals:
    """``count`` arrivals after ``after``, read two at a time (DynamoDB gives them after its delay)."""
    found: list[Arrival] = []
    matched: dict[tuple[str, ...], set[Position]] = {terms: set() for terms in searches}
    deadline = time.monotonic() + 30
    while len(found) < count and time.monotonic() < deadline:
        arrivals = await store.arrivals(after, limit=2, searches=searches)
        assert len(arrivals.entries) <= 2
        found += arrivals.entries
        for terms in searches:
            matched[terms] |= arrivals.found[terms]
        if not arrivals.more:
            await asyncio.sleep(0.05)
        after = arrivals.position
    return Arrivals(found, after, found={terms: frozenset(p) for terms, p in matched.items()})


def test_arrivals_come_in_commit_order_whatever_their_event_time(opener: Opener) -> None:
    async def body(store: LogStore) -> tuple[Arrivals, Arrivals]:
        start = (await store.arrivals(None, limit=10)).position
        await store.append([arrived(BASE + 5_000_000, "the disk is full"), arrived(BASE + 9_000_000, "b")])
        await store.append([arrived(BASE, "oldest event, committed last: disk")])
        first = await follow(store, start, 3, (("disk",), ("full", "the")))
        await store.append([arrived(BASE + 1, "after")])
        return first, await follow(store, first.position, 1, ())

    first, second = run(opener, body)
    messages = [arrival.entry.message for arrival in first.entries]
    assert messages == ["the disk is full", "b", "oldest event, committed last: disk"]
    positions = [arrival.position for arrival in first.entries]
    assert positions == sorted(positions)
    assert len(set(positions)) == 3
    assert first.found[("disk",)] == {positions[0], positions[2]}
    assert first.found[("full", "the")] == {positions[0]}
    assert [arrival.entry.message for arrival in second.entries] == ["after"]
    assert first.entries[2].ts_us == BASE


def test_arrival_positions_are_not_reused_after_the_newest_entries_are_deleted(opener: Opener) -> None:
    async def body(store: LogStore) -> list[str]:
        await store.append([arrived(BASE, "kept", "keep")])
        start = (await store.arrivals(None, limit=10)).position
        await store.append([arrived(BASE, "purged", "gone")])
        seen = await follow(store, start, 1, ())
        assert await store.delete_older(2**62, include=("gone",)) == 1
        await store.append([arrived(BASE, "new", "keep")])
        return [arrival.entry.message for arrival in (await follow(store, seen.position, 1, ())).entries]

    assert run(opener, body) == ["new"]


# ---- volume over time, services, context ------------------------------------------------------------------

STATS_NOW = BASE + 3 * 86_400_000_000


def spread_entries(count: int, seed: int) -> list[NewEntry]:
    """Entries over three days at random microseconds (many in the same minute and hour, some at the same
    time), of 20 services, every level, two types, a few words each."""
    rng = random.Random(seed)
    entries: list[NewEntry] = []
    for i in range(count):
        if entries and rng.random() < 0.1:
            ts = entries[-1].ts_us
        elif rng.random() < 0.3:  # a few busy minutes
            ts = BASE + rng.randrange(0, 3) * 3_600_000_000 + rng.randrange(0, 120_000_000)
        else:
            ts = BASE + rng.randrange(0, 3 * 86_400_000_000)
        words = " ".join(rng.choice(WORDS) for _ in range(3))
        entries.append(
            entry(
                ts,
                f"{i} {words}",
                f"svc-{rng.randrange(20)}",
                rng.choice(list(Level)),
                log_type=rng.choice(["application", "audit"]),
            )
        )
    return entries


def brute_histogram(entries: list[NewEntry], query: StatsQuery) -> list[dict[str, int]]:
    """What every bucket must hold, counted here entry by entry."""
    matching = expected(entries, query.filters)
    by_id = {format_log_id(e.log_id): e for e in entries}
    buckets: list[dict[str, int]] = [{} for _ in range(query.buckets)]
    for ts, log_id in matching:
        e = by_id[log_id]
        key = e.level.name if query.by == "level" else e.service_name
        counts = buckets[(ts - query.since_us) // query.step_us]
        counts[key] = counts.get(key, 0) + 1
    return buckets if query.by == "level" else capped(buckets)[0]


def stats_query(params: str) -> StatsQuery:
    return parse_stats([tuple(p.split("=", 1)) for p in params.split("&")], now_us=STATS_NOW)  # type: ignore[misc]


STATS_PARAMS = [
    "hours=80&interval=1h",  # the hour rollup
    "hours=80&interval=2d",  # the day rollup of every service by level
    "hours=20&interval=4m",  # the 2-minute rollup of every service by level
    "hours=80&interval=15m&by=service_name",  # the minute rollup
    "hours=30&interval=1d&min_level=ERROR&log_type=audit",
    "since=1700000000&until=1700043200&interval=90s&service_name=svc-2",  # counted: not whole minutes
    "hours=80&interval=2h&q=disk",  # counted: full text
    "hours=80&interval=1s",  # widened
    "hours=80&interval=3h&by=service_name&level=WARN",
    "hours=80&interval=1s&by=service_name",  # widened to 961 buckets: 9 services named, the rest "(other)"
]


# A scope of two services, and one of all twenty (on DynamoDB: more key ranges than merged, so the time
# index filtered by the patterns).
SCOPES = [(), ("svc-1", "svc-5*"), ("svc-?", "svc-1*")]


@pytest.mark.parametrize("params", STATS_PARAMS)
def test_histograms_count_what_a_read_returns(opener: Opener, params: str) -> None:
    entries = spread_entries(600, seed=31)
    query = stats_query(params)
    # As credentials read: the service layer refuses a service_name outside the scope.
    scopes = SCOPES if query.filters.service_name is None else [()]
    queries = [
        msgspec.structs.replace(query, filters=msgspec.structs.replace(query.filters, service_patterns=scope))
        for scope in scopes
    ]

    async def body(store: LogStore) -> list[Any]:
        await store.append(entries[:300])
        await store.append(entries[300:])
        await store.append(entries[:50])  # a retried batch is not counted twice
        return [await store.histogram(asked) for asked in queries]

    for rows, asked in zip(run(opener, body), queries, strict=True):
        assert [b.counts for b in stats_answer(asked, rows).buckets] == brute_histogram(entries, asked)
        assert any(count for _, _, count in rows)  # the window holds some of the entries
    if query.by == "service_name" and query.buckets > 500:  # the series cap is reached
        assert any("(other)" in counts for counts in brute_histogram(entries, query))


def brute_services(entries: list[NewEntry], patterns: tuple[str, ...]) -> list[ServiceTotal]:
    totals: dict[str, ServiceTotal] = {}
    for e in entries:
        if covers(patterns, e.service_name):
            known = totals.get(e.service_name, ServiceTotal(e.service_name, 0, None))
            newest = max(known.newest_us or 0, e.ts_us)
            totals[e.service_name] = ServiceTotal(e.service_name, known.count + 1, newest)
    return sorted(totals.values(), key=lambda total: total.service_name)


def test_services_are_counted_with_their_newest_entry(opener: Opener) -> None:
    entries = spread_entries(300, seed=41)

    async def body(store: LogStore) -> list[list[ServiceTotal]]:
        empty = await store.services(())
        await store.append(entries)
        await store.append(entries[:20])  # a retry
        return [empty] + [await store.services(scope) for scope in SCOPES]

    empty, *found = run(opener, body)
    assert empty == []
    for totals, scope in zip(found, SCOPES, strict=True):
        assert sorted(totals, key=lambda total: total.service_name) == brute_services(entries, scope)


def test_retention_and_purge_keep_the_counts_right(opener: Opener) -> None:
    entries = spread_entries(400, seed=43)
    cutoff = BASE + 86_400_000_000 + 1_234_567
    query = stats_query("hours=80&interval=1h&by=service_name")
    by_minute = stats_query("hours=80&interval=10m")

    async def body(store: LogStore) -> tuple[Any, ...]:
        await store.append(entries)
        # on while a call deletes its limit or more, as the service does (a tiered call deletes whole pages)
        while await store.delete_older(cutoff, exclude=("svc-0",), limit=37) >= 37:
            pass
        while await store.delete_older(2**62, include=("svc-1*",), limit=500) >= 500:  # a purge
            pass
        return await store.histogram(query), await store.histogram(by_minute), await store.services(())

    hourly, minutely, services = run(opener, body)
    kept = [
        e
        for e in entries
        if (e.ts_us >= cutoff or e.service_name == "svc-0") and not e.service_name.startswith("svc-1")
    ]
    assert [b.counts for b in stats_answer(query, hourly).buckets] == brute_histogram(kept, query)
    assert [b.counts for b in stats_answer(by_minute, minutely).buckets] == brute_histogram(kept, by_minute)
    assert sorted(services, key=lambda total: total.service_name) == brute_services(kept, ())


def test_services_are_read_a_page_at_a_time(opener: Opener) -> None:
    """A page is the first ``limit`` services by name after ``after``; services whose entries were all
    purged (still in DynamoDB's registry) are skipped without shortening the page."""
    entries = spread_entries(300, seed=53)
    asked: list[tuple[str | None, int | None]] = [
        (None, 3),
        ("svc-0", 4),
        ("svc-15", 2),
        ("svc-8", 5),
        ("svc-9", 1),
        (None, None),
    ]

    async def body(store: LogStore) -> list[list[ServiceTotal]]:
        await store.append(entries)
        while await store.delete_older(2**62, include=("svc-1*",), limit=500) >= 500:
            pass
        pages = [await store.services((), after=after, limit=limit) for after, limit in asked]
        pages.append(await store.services(("svc-?",), after="svc-3", limit=2))
        return pages

    *pages, scoped = run(opener, body)
    everything = brute_services([e for e in entries if not e.service_name.startswith("svc-1")], ())
    names = [total.service_name for total in everything]
    assert names[:3] == ["svc-0", "svc-2", "svc-3"]
    for found, (after, limit) in zip(pages, asked, strict=True):
        later = [total for total in everything if after is None or total.service_name > after]
        assert sorted(found, key=lambda total: total.service_name) == later[:limit]
    assert sorted(total.service_name for total in scoped) == ["svc-4", "svc-5"]


def test_an_entry_in_its_context(opener: Opener) -> None:
    rng = random.Random(47)
    times = rng.sample(range(BASE, BASE + 10_000_000), 120)
    entries = [entry(ts, f"c{i}", rng.choice(["api", "web"])) for i, ts in enumerate(times)]
    twins = [entry(BASE + 20_000_000, "twin a", "api"), entry(BASE + 20_000_000, "twin b", "api")]
    api = sorted((e for e in entries if e.service_name == "api"), key=lambda e: e.ts_us)
    middle, first, last = api[len(api) // 2], api[0], api[-1]
    elsewhere = entry(BASE + 5, "same id, other service", "web", log_id=middle.log_id)

    async def body(store: LogStore) -> list[Any]:
        await store.append(entries[:60])
        await store.append(entries[60:] + twins)
        await store.append([elsewhere])
        return [
            await store.context(middle.log_id, "api", before=4, after=3),
            await store.context(first.log_id, "api", before=5, after=2),
            await store.context(last.log_id, "api", before=0, after=5),
            await store.context(twins[1].log_id, "api", before=100, after=100),
            await store.context(middle.log_id, "web", before=1, after=1),
            await store.context(uuid_utils.uuid7().bytes, "api", before=1, after=1),
            await store.context(first.log_id, "web", before=1, after=1),
        ]

    around_middle, around_first, around_last, around_twin, other, unknown, wrong_service = run(opener, body)
    at = api.index(middle)
    assert around_middle.entry.log_id == format_log_id(middle.log_id)
    assert [e.message for e in around_middle.before] == [e.message for e in api[at - 4 : at]]
    assert [e.message for e in around_middle.after] == [e.message for e in api[at + 1 : at + 4]]
    assert around_first.before == []
    assert [e.message for e in around_first.after] == [e.message for e in api[1:3]]
    assert around_last.before == []
    assert sorted(e.message for e in around_last.after) == ["twin a", "twin b"]  # newer than the rest
    # Twins with the same time: one is before the other, both once, all of the service around them.
    whole = [*around_twin.before, around_twin.entry, *around_twin.after]
    assert sorted(e.message for e in whole) == sorted(e.message for e in [*api, *twins])
    times = [parse_timestamp(e.timestamp) for e in whole]
    assert times == sorted(times)
    assert other.entry.message == "same id, other service"
    assert {e.service_name for e in [*other.before, *other.after]} <= {"web"}
    assert (unknown, wrong_service) == (None, None)


@pytest.fixture(params=["sqlite", "tiered", "dynamodb"])
def bounded_opener(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, Opener]:
    """A store that counts at most 50 entries one by one (MAX_COUNTED, made small)."""
    if request.param == "sqlite":
        return "sqlite", lambda: SQLiteStore(tmp_path / "logs.db", count_limit=50)
    if request.param == "tiered":
        return "tiered", lambda: TieredStore(
            tmp_path / "logs-v2", count_limit=50, rows_per_generation=SMALL_GENERATIONS
        )
    url = request.getfixturevalue("dynamodb_url")
    return "dynamodb", lambda: DynamoDBStore(url, count_limit=50)


def test_counting_entries_one_by_one_is_bounded(bounded_opener: tuple[str, Opener]) -> None:
    backend, opener = bounded_opener
    entries = spread_entries(300, seed=53)
    asked = {
        "full_text": stats_query("hours=80&interval=1h&q=disk"),
        "odd_interval": stats_query("hours=24&interval=90s"),
        "rollup": stats_query("hours=80&interval=1h"),
        "narrow": stats_query("since=1700000000&until=1700000600&interval=1m"),
    }

    async def body(store: LogStore) -> dict[str, Any]:
        await store.append(entries)
        outcomes: dict[str, Any] = {}
        for name, query in asked.items():
            try:
                outcomes[name] = await store.histogram(query)
            except ValidationFailed as exc:
                outcomes[name] = [error.field for error in exc.errors]
        return outcomes

    outcomes = run(opener, body)
    narrow = asked["narrow"]
    assert [b.counts for b in stats_answer(narrow, outcomes["narrow"]).buckets] == brute_histogram(
        entries, narrow
    )
    if backend in ("sqlite", "tiered"):
        assert outcomes["full_text"] == ["q"]
        assert outcomes["odd_interval"] == ["interval"]
        rollup = asked["rollup"]  # the rollups count without bound
        assert [b.counts for b in stats_answer(rollup, outcomes["rollup"]).buckets] == brute_histogram(
            entries, rollup
        )
    else:  # DynamoDB reads the items of every histogram
        assert outcomes["full_text"] == outcomes["odd_interval"] == outcomes["rollup"] == ["since"]
