"""The SQLite store on real files: ordering, full-text search, query plans, group commit and shutdown."""

from __future__ import annotations

import asyncio
import fcntl
import os
import random
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import apsw
import msgspec
import pytest
import uuid_utils

from logsvc.domain.cursors import decode_cursor
from logsvc.domain.entries import Level, NewEntry
from logsvc.domain.queries import Query
from logsvc.errors import ConfigError, StoreUnavailable
from logsvc.storage.open import open_store, store_files
from logsvc.storage.port import Exportable, exportable
from logsvc.storage.sqlite import SQLiteStore
from logsvc.storage.sqlite_reads import select_newest
from logsvc.storage.sqlite_schema import BLOCK_SHIFT
from logsvc.store_url import sqlite_url
from tests.conftest import Commits

T = TypeVar("T")
WORDS = ["alpha", "beta", "gamma", "delta", "disk", "timeout", "user", "login"]


def run(function: Callable[[SQLiteStore], Awaitable[T]], path: Path, **kwargs: Any) -> T:
    async def main() -> T:
        store = SQLiteStore(path, **kwargs)
        try:
            return await function(store)
        finally:
            await store.close()

    return asyncio.run(main())


def entry(ts_us: int, message: str, service: str = "svc", level: Level = Level.INFO) -> NewEntry:
    return NewEntry(uuid_utils.uuid7().bytes, service, ts_us, level, "application", message, None, ts_us)


def make_entries(count: int, seed: int) -> list[NewEntry]:
    """Mostly in time order, with backfilled (older) and future-dated entries mixed in, and ties."""
    rng = random.Random(seed)
    base = 1_700_000_000_000_000
    entries = []
    for i in range(count):
        ts = base + i * 1000
        roll = rng.random()
        if roll < 0.05:
            ts -= rng.randrange(0, count * 1000)  # backfill
        elif roll < 0.06:
            ts += rng.randrange(0, count * 200)  # ahead of arrival
        elif roll < 0.2 and entries:
            ts = entries[-1].ts_us  # same timestamp as the previous one
        words = " ".join(rng.choice(WORDS) for _ in range(3))
        entries.append(entry(ts, f"{i} {words}", f"svc-{i % 4}", rng.choice(list(Level))))
    return entries


def brute_force(entries: list[NewEntry], query: Query) -> list[str]:
    """What a read must return, computed the slow, obvious way."""
    arrivals = list(enumerate(entries))
    matching = [
        (e.ts_us, seq, e.message)
        for seq, e in arrivals
        if (query.service_name is None or e.service_name == query.service_name)
        and (query.levels is None or e.level in query.levels)
        and (query.since_us is None or e.ts_us >= query.since_us)
        and all(term in e.message.split() for term in query.terms)
    ]
    matching.sort(reverse=True)
    return [message for _, _, message in matching]


@pytest.fixture(scope="module")
def searchable(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[NewEntry]]:
    path = tmp_path_factory.mktemp("search") / "logs.db"
    entries = make_entries(5 * (1 << BLOCK_SHIFT) + 123, seed=7)

    async def fill(store: SQLiteStore) -> None:
        for start in range(0, len(entries), 5000):
            await store.append(entries[start : start + 5000])

    run(fill, path)
    return path, entries


QUERIES = [
    Query(limit=50),
    Query(limit=1000, terms=("disk",)),
    Query(limit=10, terms=("disk", "login")),
    Query(limit=100, terms=("gamma",), service_name="svc-2"),
    Query(limit=100, terms=("user",), levels=(Level.ERROR, Level.FATAL)),
    Query(limit=100, levels=(Level.WARN, Level.ERROR, Level.FATAL)),
    Query(limit=30, levels=(Level.DEBUG,), service_name="svc-1"),
    Query(limit=100, terms=("beta",), since_us=1_700_000_000_000_000 + 15_000_000),
    Query(limit=7, terms=("nomatch",)),
]


@pytest.mark.parametrize("budget", [0.005, 0.0], ids=["inline", "over-budget-so-pooled"])
@pytest.mark.parametrize("query", QUERIES, ids=[repr(q) for q in QUERIES])
def test_reads_match_brute_force_across_pages(
    searchable: tuple[Path, list[NewEntry]], query: Query, budget: float
) -> None:
    """Pages walked with the cursor equal the brute-force answer, whatever the arrival order of times,
    whether a read runs on the event loop or, over its time budget, is interrupted and rerun in the pool."""
    path, entries = searchable
    expected = brute_force(entries, query)

    async def walk(store: SQLiteStore) -> list[str]:
        seen: list[str] = []
        current = query
        for _ in range(4):
            page = await store.recent(current)
            seen += [e.message for e in page.logs]
            if page.next_cursor is None:
                break
            current = Query(
                **{
                    **{f: getattr(query, f) for f in query.__struct_fields__},
                    "cursor": decode_cursor(page.next_cursor),
                }
            )
        return seen

    got = run(walk, path, inline_read_budget=budget)
    assert got == expected[: len(got)]
    assert len(got) == min(len(expected), 4 * query.limit)


@pytest.mark.parametrize(
    "query",
    [
        Query(),
        Query(service_name="svc-1"),
        Query(levels=(Level.ERROR,)),
        Query(service_name="svc-1", levels=(Level.ERROR,)),
        Query(levels=(Level.WARN, Level.ERROR, Level.FATAL), service_name="svc-1"),
        Query(since_us=5, until_us=10),
        Query(service_name="svc-1", cursor=(5, 6)),
        Query(levels=(Level.ERROR,), cursor=(5, 6), since_us=1),
    ],
)
def test_reads_walk_an_index_without_sorting(searchable: tuple[Path, list[NewEntry]], query: Query) -> None:
    path, _ = searchable
    sql, args = select_newest(query, query.limit + 1)
    conn = apsw.Connection(str(path))
    steps = [(parent, detail) for _, parent, _, detail in conn.execute("EXPLAIN QUERY PLAN " + sql, args)]
    conn.close()
    plan = [detail for _, detail in steps]
    # "SCAN logs USING INDEX logs_ts" walks the index newest first and stops at LIMIT; a bare SCAN reads all.
    assert not any(step.startswith("SCAN logs") and "INDEX" not in step for step in plan), plan
    # No sort next to a read of logs: a sort there would sort every match. (Merging the per-level heads of
    # a min_level query sorts at most limit + 1 rows per level, one level up.)
    reading = {parent for parent, detail in steps if detail.startswith(("SCAN logs", "SEARCH logs"))}
    assert not any(parent in reading and "TEMP B-TREE" in detail for parent, detail in steps), plan
    assert any("USING" in step and "INDEX" in step for step in plan), plan


def test_concurrent_appends_share_commits(tmp_path: Path) -> None:
    commits = Commits()

    async def hammer(store: SQLiteStore) -> int:
        await asyncio.gather(*(store.append([entry(i, f"m{i}")]) for i in range(500)))
        return (await store.recent(Query(limit=1000))).count

    assert run(hammer, tmp_path / "logs.db", on_commit=commits) == 500
    assert sum(commits) == 500
    assert len(commits) < 500  # group commit: several requests were acknowledged by one fsync


def test_what_queues_while_another_writer_commits_joins_the_next_commit(tmp_path: Path) -> None:
    """Another worker's writer holds the turn (the writer lock); the requests that arrive while this writer
    waits for it are committed together with the one it waits with, in one transaction and one fsync."""
    commits = Commits()
    path = tmp_path / "logs.db"

    async def wait_for_turn(store: SQLiteStore) -> int:
        other = os.open(f"{path}-writer.lock", os.O_RDWR)
        try:
            fcntl.flock(other, fcntl.LOCK_EX)
            first = asyncio.create_task(store.append([entry(0, "m0")]))
            await _until(lambda: _lock_waiters(Path(f"{path}-writer.lock")) == 1)
            rest = [asyncio.create_task(store.append([entry(i, f"m{i}")])) for i in range(1, 20)]
            await asyncio.sleep(0)  # every request submitted
            await asyncio.sleep(0)  # and handed to the writer (16 at a time, the rest at the turn's end)
            fcntl.flock(other, fcntl.LOCK_UN)
            await asyncio.gather(first, *rest)
        finally:
            os.close(other)
        return (await store.recent(Query(limit=100))).count

    assert run(wait_for_turn, path, on_commit=commits) == 20
    assert commits == [20]


def test_a_group_with_retention_counts_the_entries_it_stored(tmp_path: Path) -> None:
    """Rows that share the writer's turn with retention's work are written in one explicit transaction:
    its commit counts the entries it stored, not one whose log_id the service held already."""
    commits = Commits()
    path = tmp_path / "logs.db"
    held = entry(1, "held")

    async def resend_with_retention(store: SQLiteStore) -> list[str]:
        await store.append([held])
        other = os.open(f"{path}-writer.lock", os.O_RDWR)
        try:
            fcntl.flock(other, fcntl.LOCK_EX)
            first = asyncio.create_task(store.append([held]))
            await _until(lambda: _lock_waiters(Path(f"{path}-writer.lock")) == 1)
            rest = [
                asyncio.create_task(store.delete_older(0)),
                asyncio.create_task(store.append([entry(2, "new")])),
            ]
            await asyncio.sleep(0)  # every request submitted
            await asyncio.sleep(0)  # and handed to the writer
            fcntl.flock(other, fcntl.LOCK_UN)
            await asyncio.gather(first, *rest)
        finally:
            os.close(other)
        return [e.message for e in (await store.recent(Query())).logs]

    assert run(resend_with_retention, path, on_commit=commits) == ["new", "held"]
    assert commits == [1, 1]


def _lock_waiters(lock_file: Path) -> int:
    """How many wait for a lock on ``lock_file`` (Linux lists them in /proc/locks, after ``->``)."""
    inode = f":{lock_file.stat().st_ino} "
    return sum(1 for line in Path("/proc/locks").read_text().splitlines() if "->" in line and inode in line)


async def _until(condition: Callable[[], bool], deadline_s: float = 30) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline_s
    while not condition():
        assert loop.time() < end, "the condition never came true"
        await asyncio.sleep(0.01)


def test_duplicate_log_ids_are_stored_once(tmp_path: Path) -> None:
    first = entry(1, "first")
    again = NewEntry(first.log_id, "svc", 2, Level.ERROR, "application", "retry", None, 2)

    async def write(store: SQLiteStore) -> list[str]:
        await store.append([first, again])
        await store.append([again])
        return [e.message for e in (await store.recent(Query())).logs]

    assert run(write, tmp_path / "logs.db") == ["first"]


def test_close_finishes_accepted_writes_then_refuses(tmp_path: Path) -> None:
    path = tmp_path / "logs.db"

    async def write_then_close() -> None:
        store = SQLiteStore(path)
        pending = [asyncio.ensure_future(store.append([entry(i, f"m{i}")])) for i in range(200)]
        await asyncio.sleep(0)
        await store.close()
        await asyncio.gather(*pending)
        with pytest.raises(StoreUnavailable):
            await store.append([entry(1, "late")])

    asyncio.run(write_then_close())
    conn = apsw.Connection(str(path))
    assert conn.execute("SELECT count(*) FROM logs").fetchone() == (200,)


def test_writes_of_several_event_loops_are_all_committed(tmp_path: Path) -> None:
    """Each event loop hands its requests to the writer once per turn; the writes of loops in other
    threads, interleaved with this one's, are each committed and answered on their own loop."""
    path = tmp_path / "logs.db"

    async def write_from_threads() -> None:
        store = SQLiteStore(path)
        try:

            def other_loop(thread: int) -> None:
                async def write() -> None:
                    await asyncio.gather(*(store.append([entry(i, f"t{thread}-{i}")]) for i in range(50)))

                asyncio.run(write())

            threads = [threading.Thread(target=other_loop, args=(n,)) for n in range(3)]
            for thread in threads:
                thread.start()
            await asyncio.gather(*(store.append([entry(i, f"main-{i}")]) for i in range(50)))
            await asyncio.to_thread(lambda: [thread.join() for thread in threads])
        finally:
            await store.close()

    asyncio.run(write_from_threads())
    conn = apsw.Connection(str(path))
    assert conn.execute("SELECT count(*), count(DISTINCT message) FROM logs").fetchone() == (200, 200)


def test_the_writes_of_one_busy_turn_are_committed_in_arrival_order(tmp_path: Path) -> None:
    """A turn of the loop with more requests than one hand-over takes (16) hands them over in parts, the
    first before the turn ends: every one is committed, numbered in the order the requests came, and its
    text, metadata and id come back as sent (through the group's JSON and id blob)."""
    path = tmp_path / "logs.db"
    sent = [
        NewEntry(
            uuid_utils.uuid7().bytes,
            "svc",
            i,
            Level.INFO,
            "application",
            f"m{i} \x00 \u2028 \U0001f600",
            '{"n":' + str(i) + "}" if i % 2 else None,
            i,
        )
        for i in range(45)
    ]

    async def one_turn(store: SQLiteStore) -> None:
        await asyncio.gather(*(store.append([e]) for e in sent))

    run(one_turn, path)
    conn = apsw.Connection(str(path))
    stored = conn.execute("SELECT seq, log_id, message, metadata FROM logs ORDER BY seq").fetchall()
    assert stored == [(i + 1, e.log_id, e.message, e.metadata) for i, e in enumerate(sent)]


def test_a_row_the_group_cannot_carry_fails_only_its_own_request(tmp_path: Path) -> None:
    """Rows go to SQLite with their log_ids end to end, 16 bytes each: an id of another length would shift
    every id after it, so the group is refused, and each request is then written alone (the others kept)."""
    good, bad = entry(1, "kept"), entry(2, "short id")
    bad = msgspec.structs.replace(bad, log_id=bad.log_id[:15])

    async def write(store: SQLiteStore) -> list[BaseException | None]:
        return await asyncio.gather(store.append([good]), store.append([bad]), return_exceptions=True)

    outcomes = run(write, tmp_path / "logs.db")
    assert outcomes[0] is None
    assert isinstance(outcomes[1], StoreUnavailable)
    conn = apsw.Connection(str(tmp_path / "logs.db"))
    assert conn.execute("SELECT log_id, message FROM logs").fetchall() == [(good.log_id, "kept")]


def test_only_the_transactions_that_committed_are_counted(tmp_path: Path) -> None:
    """A group refused for one request's row is written request by request: each of those transactions is
    a commit of its own (its own fsync), and the refused rows, and a request refused alone, none."""
    first, bad, last = entry(1, "kept"), entry(2, "short id"), entry(3, "kept too")
    bad = msgspec.structs.replace(bad, log_id=bad.log_id[:15])
    commits = Commits()

    async def write(store: SQLiteStore) -> list[BaseException | None]:
        together = await asyncio.gather(
            store.append([first]), store.append([bad, bad]), store.append([last]), return_exceptions=True
        )
        alone = await asyncio.gather(store.append([bad]), return_exceptions=True)
        return [*together, *alone]

    kept, refused, kept_too, refused_alone = run(write, tmp_path / "logs.db", on_commit=commits)
    assert (kept, kept_too) == (None, None)
    assert all(isinstance(outcome, StoreUnavailable) for outcome in (refused, refused_alone))
    assert commits == [1, 1]


def test_a_write_not_handed_over_when_another_loop_closes_the_store_is_refused(tmp_path: Path) -> None:
    """A request whose loop had not yet handed it to the writer when the store was closed elsewhere fails
    with 503's error (nothing from it stored), instead of waiting forever behind the writer's stop."""
    path = tmp_path / "logs.db"

    async def write_while_closed_elsewhere() -> None:
        store = SQLiteStore(path)
        pending = asyncio.ensure_future(store.append([entry(1, "late")]))
        await asyncio.sleep(0)  # submitted: its hand-over runs after this coroutine's next step
        closer = threading.Thread(target=lambda: asyncio.run(store.close()))
        closer.start()
        closer.join()
        with pytest.raises(StoreUnavailable):
            await asyncio.wait_for(pending, 30)

    asyncio.run(write_while_closed_elsewhere())
    conn = apsw.Connection(str(path))
    assert conn.execute("SELECT count(*) FROM logs").fetchone() == (0,)


def test_unopenable_stores_fail_clearly(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database" * 500)
    with pytest.raises(ConfigError, match=r"cannot open .*garbage\.db"):
        SQLiteStore(garbage)
    newer = tmp_path / "newer.db"
    conn = apsw.Connection(str(newer))
    conn.execute("PRAGMA user_version=99")
    conn.close()
    with pytest.raises(ConfigError, match="schema version 99"):
        SQLiteStore(newer)
    with pytest.raises(ConfigError, match="unsupported scheme 'postgres'"):
        open_store("postgres://x")
    with pytest.raises(ConfigError, match=r"sqlite:///relative"):
        open_store("sqlite://host/x.db")


def test_the_sqlite_store_offers_export_and_offline_files(tmp_path: Path) -> None:
    """The capabilities beyond the LogStore port: archive export, and stats, snapshot and destroy offline."""
    path = tmp_path / "logs.db"
    with pytest.raises(ConfigError, match="there is no store at"):
        store_files(sqlite_url(path))
    with pytest.raises(ConfigError, match="for DynamoDB use its own tools"):
        store_files("dynamodb://table?region=us-east-1")

    async def fill(store: SQLiteStore) -> int:
        assert isinstance(store, Exportable)
        await store.append([entry(1_000_000 + i, f"m{i}", service=f"s{i % 2}") for i in range(10)])
        return len((await exportable(store).export_after(0)).rows)

    assert run(fill, path) == 10
    files = store_files(sqlite_url(path))
    assert files.path == path
    stats = files.stats(None)
    assert (stats.entries, [s.entries for s in stats.services]) == (10, [5, 5])
    files.snapshot(None, tmp_path / "copy.db")
    assert store_files(sqlite_url(tmp_path / "copy.db")).stats(None).entries == 10
    files.destroy(None)
    assert not path.exists()


def test_the_full_text_index_merges_a_little_per_commit_also_in_stores_made_before(tmp_path: Path) -> None:
    """FTS5 merges a level's segments all at once when it holds 'crisismerge' of them; at its default (16,
    our automerge too) a commit now and then rewrote 100+ MiB of the index and stalled the writer for
    seconds. The store sets it above automerge, also when it opens a store made without it."""
    path = tmp_path / "logs.db"
    run(lambda store: store.append([entry(1, "one")]), path)
    conn = apsw.Connection(str(path))
    merging = "SELECT k, v FROM logs_fts_config WHERE k IN ('automerge', 'crisismerge') ORDER BY k"
    assert conn.execute(merging).fetchall() == [("automerge", 16), ("crisismerge", 64)]
    conn.execute("DELETE FROM logs_fts_config WHERE k = 'crisismerge'")  # as a store made before
    conn.close()
    run(lambda store: store.append([entry(2, "two")]), path)
    conn = apsw.Connection(str(path))
    assert conn.execute(merging).fetchall() == [("automerge", 16), ("crisismerge", 64)]
