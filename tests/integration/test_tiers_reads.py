"""The reads over both files of storage v2 (decisions 28 and 34) give what today's store gives for the same
entries: the same pages with the same cursors for every filter, search and cursor, the same entries by id
and in context, the same arrivals, whichever of them were compacted into cold pages; and the append's
idempotency lookup finds exactly the entries the cold tier holds."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from logsvc.domain.cursors import decode_cursor
from logsvc.domain.entries import Level, NewEntry, format_log_id
from logsvc.domain.queries import Query
from logsvc.storage.sqlite import SQLiteStore
from logsvc.storage.sqlite_schema import new_rows
from logsvc.storage.tiers import ColdFile, HotFile, compact
from logsvc.storage.tiers_reads import arrivals, contains, context, get, newest, recent, services
from logsvc.storage.token_filter import Tokenizer

BASE_US = 1_764_460_800_000_000
MAX_PAGES = 200  # more than any walk of these tests takes: a cursor that does not move fails, not hangs
WORDS = ["timeout", "Timeout", "db", "user", "logged", "in", "zeppelin", "héllo", "hello", "42"]

entries = st.lists(
    st.tuples(
        st.sampled_from(["api", "auth", "auth-v2", "db"]),
        st.sampled_from(list(Level)),
        st.integers(0, 40),  # event times collide often: the arrival number breaks ties
        st.sampled_from(["application", "audit"]),
        st.lists(st.sampled_from(WORDS), min_size=1, max_size=5).map(" ".join),
    ),
    min_size=1,
    max_size=120,
)
queries = st.builds(
    Query,
    limit=st.integers(1, 7),
    service_name=st.none() | st.sampled_from(["api", "auth", "web"]),
    levels=st.none() | st.lists(st.sampled_from(list(Level)), min_size=1, unique=True).map(tuple),
    log_type=st.none() | st.sampled_from(["application", "audit"]),
    since_us=st.none() | st.integers(0, 40).map(lambda t: BASE_US + t),
    until_us=st.none() | st.integers(0, 41).map(lambda t: BASE_US + t),
    terms=st.lists(
        st.sampled_from(["timeout", "db", "zeppelin", "logged in", "hello", "user db"]), max_size=2
    ).map(tuple),
    service_patterns=st.lists(st.sampled_from(["auth*", "a??", "d?", "web*"]), max_size=2).map(tuple),
)


def walk_store(store: SQLiteStore, query: Query) -> list[str]:
    """Every matching id, page after page, as a client follows next_cursor."""
    ids: list[str] = []
    cursor = None
    for _ in range(MAX_PAGES):
        page = asyncio.run(store.recent(Query(**{**_fields(query), "cursor": cursor})))
        ids += [entry.log_id for entry in page.logs]
        if page.next_cursor is None:
            return ids
        cursor = decode_cursor(page.next_cursor)
    raise AssertionError("the cursors do not end")


def walk_tiers(hot: HotFile, cold: ColdFile, query: Query, tokenizer: Tokenizer) -> list[str]:
    ids: list[str] = []
    cursor = None
    for _ in range(MAX_PAGES):
        rows = newest(hot, cold, Query(**{**_fields(query), "cursor": cursor}), query.limit + 1, tokenizer)
        ids += [format_log_id(row[1]) for row in rows[: query.limit]]
        if len(rows) <= query.limit:
            return ids
        last = rows[query.limit - 1]
        cursor = (last[2], last[0])
    raise AssertionError("the cursors do not end")


def _fields(query: Query) -> dict[str, object]:
    return {name: getattr(query, name) for name in query.__struct_fields__}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    drawn=entries,
    batch=st.integers(1, 30),
    per_generation=st.integers(5, 40),
    compacted=st.integers(0, 10),
    query_list=st.lists(queries, min_size=1, max_size=6),
)
def test_both_tiers_read_as_todays_store(
    drawn: list[tuple[str, Level, int, str, str]],
    batch: int,
    per_generation: int,
    compacted: int,
    query_list: list[Query],
) -> None:
    made = [
        NewEntry(
            log_id=secrets.token_bytes(16),
            service_name=service,
            ts_us=BASE_US + ts,
            level=level,
            log_type=log_type,
            message=message,
            metadata=None,
            received_us=BASE_US,
        )
        for service, level, ts, log_type, message in drawn
    ]
    key = secrets.token_bytes(32)
    with tempfile.TemporaryDirectory() as folder:
        store = SQLiteStore(Path(folder) / "today.db", read_threads=1, key=key)
        hot = HotFile(Path(folder) / "hot.db", key, rows_per_generation=per_generation)
        cold = ColdFile(Path(folder) / "cold.db", key)
        tokenizer = Tokenizer()
        try:
            for first in range(0, len(made), batch):
                part = made[first : first + batch]
                asyncio.run(store.append(part))
                hot.append(
                    [
                        (
                            e.log_id,
                            e.ts_us,
                            e.service_name,
                            int(e.level),
                            e.log_type,
                            e.message,
                            None,
                            e.received_us,
                        )
                        for e in part
                    ]
                )
            for generation in hot.sealed()[:compacted]:
                compact(hot, cold, generation)
            for query in query_list:
                assert walk_tiers(hot, cold, query, tokenizer) == walk_store(store, query), query
        finally:
            asyncio.run(store.close())
            hot.close()
            cold.close()
            tokenizer.close()


def test_cursors_are_exact_among_cold_entries_of_one_event_time(tmp_path: Path) -> None:
    key = secrets.token_bytes(32)
    hot = HotFile(tmp_path / "hot.db", key, rows_per_generation=10)
    cold = ColdFile(tmp_path / "cold.db", key)
    tokenizer = Tokenizer()
    try:
        rows = [
            (secrets.token_bytes(16), BASE_US, "api", 9, "application", "same time", None, BASE_US)
            for _ in range(25)
        ]
        hot.append(rows[:10])
        hot.append(rows[10:20])
        hot.append(rows[20:])
        for generation in hot.sealed():
            compact(hot, cold, generation)
        expected = [format_log_id(row[0]) for row in reversed(rows)]  # one time: the newest arrival first
        for limit in (1, 3, 10):
            assert walk_tiers(hot, cold, Query(limit=limit), tokenizer) == expected
    finally:
        hot.close()
        cold.close()
        tokenizer.close()


# ---- every read of the port, against today's store ---------------------------------------------------

POOL = [secrets.token_bytes(16) for _ in range(6)]  # ids some entries share, each in another service

stored = st.lists(
    st.tuples(
        st.sampled_from(["api", "auth", "auth-v2", "db"]),
        st.sampled_from(list(Level)),
        st.integers(0, 40),
        st.sampled_from(["application", "audit"]),
        st.lists(st.sampled_from(WORDS), min_size=1, max_size=5).map(" ".join),
        st.none() | st.sampled_from(['{"a":1}', '{"host":"h\u00e9"}', "{}"]),
        st.none() | st.integers(0, len(POOL) - 1),
    ),
    min_size=1,
    max_size=100,
)


class Both:
    """Today's store and the two files, holding the same entries."""

    def __init__(self, store: SQLiteStore, hot: HotFile, cold: ColdFile, made: list[NewEntry]) -> None:
        self.store, self.hot, self.cold, self.made = store, hot, cold, made

    def run(self, awaitable: object) -> object:
        return asyncio.run(awaitable)  # type: ignore[arg-type]


@contextlib.contextmanager
def both(
    drawn: list[tuple[str, Level, int, str, str, str | None, int | None]],
    batch: int,
    per_generation: int,
    compacted: int,
) -> Iterator[Both]:
    made: list[NewEntry] = []
    pairs: set[tuple[bytes, str]] = set()
    for service, level, ts, log_type, message, metadata, shared in drawn:
        log_id = POOL[shared] if shared is not None else secrets.token_bytes(16)
        if (log_id, service) in pairs:
            continue  # a retry is stored once by both: not what these tests are about
        pairs.add((log_id, service))
        made.append(
            NewEntry(
                log_id=log_id,
                service_name=service,
                ts_us=BASE_US + ts,
                level=level,
                log_type=log_type,
                message=message,
                metadata=metadata,
                received_us=BASE_US + 7,
            )
        )
    key = secrets.token_bytes(32)
    with tempfile.TemporaryDirectory() as folder:
        store = SQLiteStore(Path(folder) / "today.db", read_threads=1, key=key)
        hot = HotFile(Path(folder) / "hot.db", key, rows_per_generation=per_generation)
        cold = ColdFile(Path(folder) / "cold.db", key)
        try:
            for first in range(0, len(made), batch):
                part = made[first : first + batch]
                asyncio.run(store.append(part))
                hot.append(new_rows(part))
            for generation in hot.sealed()[:compacted]:
                compact(hot, cold, generation)
            yield Both(store, hot, cold, made)
        finally:
            asyncio.run(store.close())
            hot.close()
            cold.close()


layouts = {
    "drawn": stored,
    "batch": st.integers(1, 30),
    "per_generation": st.integers(5, 40),
    "compacted": st.integers(0, 10),
}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(**layouts, query_list=st.lists(queries, min_size=1, max_size=5))
def test_recent_gives_todays_pages_and_cursors(
    drawn: list[tuple[str, Level, int, str, str, str | None, int | None]],
    batch: int,
    per_generation: int,
    compacted: int,
    query_list: list[Query],
) -> None:
    tokenizer = Tokenizer()
    try:
        with both(drawn, batch, per_generation, compacted) as stores:
            for query in query_list:
                cursor = None
                for _ in range(MAX_PAGES):
                    asked = Query(**{**_fields(query), "cursor": cursor})
                    expected = asyncio.run(stores.store.recent(asked))
                    assert recent(stores.hot, stores.cold, asked, tokenizer) == expected, asked
                    if expected.next_cursor is None:
                        break
                    cursor = decode_cursor(expected.next_cursor)
                else:
                    raise AssertionError("the cursors do not end")
    finally:
        tokenizer.close()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(**layouts, around=st.lists(st.tuples(st.integers(0, 6), st.integers(0, 6)), min_size=1, max_size=4))
def test_get_and_context_give_todays_entries(
    drawn: list[tuple[str, Level, int, str, str, str | None, int | None]],
    batch: int,
    per_generation: int,
    compacted: int,
    around: list[tuple[int, int]],
) -> None:
    with both(drawn, batch, per_generation, compacted) as stores:
        for log_id in {e.log_id for e in stores.made} | {secrets.token_bytes(16)}:
            assert get(stores.hot, stores.cold, log_id) == asyncio.run(stores.store.get(log_id))
        for index, (before, after) in enumerate(around):
            e = stores.made[index * 7 % len(stores.made)]
            for service in (e.service_name, "web"):
                expected = asyncio.run(stores.store.context(e.log_id, service, before=before, after=after))
                found = context(stores.hot, stores.cold, e.log_id, service, before=before, after=after)
                assert found == expected


searches = st.lists(
    st.sampled_from([("timeout",), ("db",), ("logged in",), ("hello", "user"), ("zeppelin",)]),
    max_size=3,
    unique=True,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(**layouts, limit=st.integers(1, 30), asked=searches)
def test_arrivals_give_todays_commit_order_and_matches(
    drawn: list[tuple[str, Level, int, str, str, str | None, int | None]],
    batch: int,
    per_generation: int,
    compacted: int,
    limit: int,
    asked: list[tuple[str, ...]],
) -> None:
    tokenizer = Tokenizer()
    try:
        with both(drawn, batch, per_generation, compacted) as stores:
            head = asyncio.run(stores.store.arrivals(None, limit=limit))
            assert arrivals(stores.hot, stores.cold, None, limit=limit, tokenizer=tokenizer) == head
            position: tuple[int, str] = (0, "")
            for _ in range(MAX_PAGES):
                expected = asyncio.run(stores.store.arrivals(position, limit=limit, searches=asked))
                found = arrivals(
                    stores.hot, stores.cold, position, limit=limit, searches=asked, tokenizer=tokenizer
                )
                assert found == expected, position
                if not expected.entries:
                    break
                position = (int(expected.position[0]), "")
            else:
                raise AssertionError("the arrivals do not end")
    finally:
        tokenizer.close()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(**layouts)
def test_contains_finds_exactly_the_entries_of_the_cold_tier(
    drawn: list[tuple[str, Level, int, str, str, str | None, int | None]],
    batch: int,
    per_generation: int,
    compacted: int,
) -> None:
    with both(drawn, batch, per_generation, compacted) as stores:
        in_cold = {(row[1], row[3]) for row in stores.cold.rows()}
        keys = [(e.log_id, e.service_name, e.ts_us) for e in stores.made]
        # a retry of an entry dated by its arrival comes with a later time than the entry stored
        keys += [(e.log_id, e.service_name, e.ts_us + 10**9) for e in stores.made[::2]]
        keys += [(e.log_id, "web", e.ts_us) for e in stores.made[:5]]  # another service's id
        keys += [(secrets.token_bytes(16), "api", BASE_US + t) for t in range(0, 42, 3)]
        assert contains(stores.hot, stores.cold, keys) == in_cold


def test_context_is_exact_among_entries_of_one_event_time_in_both_tiers() -> None:
    """Hot rows of the same time fill the newer side first; the cold pages of that time still hold
    nearer entries (smaller arrival numbers), so they are read, not skipped."""
    drawn = [("api", Level.INFO, 5, "application", "same time", None, None)] * 25
    with both(drawn, 10, 10, 2) as stores:
        assert stores.cold.summaries()  # two generations in the cold tier, the third hot
        for e in stores.made:
            expected = asyncio.run(stores.store.context(e.log_id, "api", before=3, after=3))
            assert context(stores.hot, stores.cold, e.log_id, "api", before=3, after=3) == expected


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    **layouts,
    patterns=st.lists(st.sampled_from(["auth*", "a??", "d?", "web*", "*"]), max_size=2).map(tuple),
    after=st.none() | st.sampled_from(["", "api", "auth", "b"]),
    limit=st.none() | st.integers(0, 5),
)
def test_services_give_todays_counts_and_newest_times(
    drawn: list[tuple[str, Level, int, str, str, str | None, int | None]],
    batch: int,
    per_generation: int,
    compacted: int,
    patterns: tuple[str, ...],
    after: str | None,
    limit: int | None,
) -> None:
    with both(drawn, batch, per_generation, compacted) as stores:
        expected = asyncio.run(stores.store.services(patterns, after=after, limit=limit))
        found = services(stores.hot, stores.cold, patterns, after=after, limit=limit)
        assert sorted(found, key=lambda s: s.service_name) == sorted(expected, key=lambda s: s.service_name)


def test_the_bit_sliced_id_filters_find_every_page_of_an_id_past_their_growth_and_forget_pages_gone() -> None:
    from logsvc.storage.tiers_reads import _IdSlices, _Index
    from logsvc.storage.token_filter import IdFilter

    ids = {page_id: [secrets.token_bytes(16) for _ in range(3)] for page_id in range(1, 1_201)}
    pages = [_page(page_id, IdFilter.of(held).to_bytes()) for page_id, held in ids.items()]
    slices = _IdSlices()
    slices.update(_Index(pages[:500]), ids.__getitem__)
    slices.update(_Index(pages), ids.__getitem__)  # grown past the first 512 pages
    for page_id in (1, 499, 500, 513, 1_200):
        for log_id in ids[page_id]:
            assert page_id in {found.page_id for found in slices.candidates(log_id)}
    slices.update(_Index(pages[1:]), ids.__getitem__)  # page 1 deleted
    assert 1 not in {found.page_id for found in slices.candidates(ids[1][0])}
    assert 2 in {found.page_id for found in slices.candidates(ids[2][0])}


def _saying_yes_to_every_id(page_id: int, low_id: bytes = b"", high_id: bytes = b"") -> Any:
    """A page whose id filter says yes to every id: only the ranges can tell the pages apart."""
    from logsvc.storage.token_filter import IdFilter

    return _page(page_id, bytes([0xFF]) * len(IdFilter.of([]).to_bytes()), low_id, high_id)


def _page(page_id: int, id_filter: bytes, low_id: bytes = b"", high_id: bytes = b"") -> Any:
    """A page of 4 entries with this id filter, its summary as stored; without a range of ids, as stored
    before decision 41."""
    from logsvc.storage.pages import PageSummary
    from logsvc.storage.tiers_reads import _Page
    from logsvc.storage.token_filter import TokenFilter

    summary = PageSummary(
        count=4,
        min_ts=0,
        max_ts=0,
        min_seq=page_id,
        max_seq=page_id,
        services=("api",),
        newest=(0,),
        levels=0,
        tokens=TokenFilter().to_bytes(),
        ids=id_filter,
        low_id=low_id,
        high_id=high_id,
    )
    return _Page(page_id, 0, 0, page_id, page_id, 100, PageSummary.from_bytes(summary.to_bytes()))


def test_an_id_is_looked_for_only_in_the_pages_whose_id_range_holds_it() -> None:
    # UUIDv7-like ids in order: each page's range is its own, so a filter's false positive on another
    # page opens nothing (at 0.24 % a page it opened about 2.4 pages an id at 1,000 pages, growing with them).
    from logsvc.storage.tiers_reads import _IdSlices, _Index

    ids = {
        page_id: [(page_id * 4 + n).to_bytes(6, "big") + secrets.token_bytes(10) for n in range(4)]
        for page_id in range(1, 2_001)
    }

    slices = _IdSlices()
    slices.update(_Index([_saying_yes_to_every_id(page_id) for page_id in ids]), ids.__getitem__)
    for page_id in (1, 777, 2_000):
        for log_id in ids[page_id]:
            assert [found.page_id for found in slices.candidates(log_id)] == [page_id]


def test_the_id_range_of_a_summary_stands_for_the_pages_id_column() -> None:
    """A page stored since decision 41 gives its range of ids in its summary: its id column is not read,
    and its folded filter's false positives outside the range open nothing."""
    from logsvc.storage.tiers_reads import _IdSlices, _Index, _Page

    ids = {
        page_id: sorted(page_id.to_bytes(6, "big") + secrets.token_bytes(10) for _ in range(4))
        for page_id in (1, 2)
    }

    def page(page_id: int) -> _Page:
        return _saying_yes_to_every_id(page_id, ids[page_id][0], ids[page_id][-1])

    def unread(page_id: int) -> list[bytes]:
        raise AssertionError(f"page {page_id}'s id column read")

    slices = _IdSlices()
    slices.update(_Index([page(1), page(2)]), unread)
    for page_id, held in ids.items():
        for log_id in held:
            assert [found.page_id for found in slices.candidates(log_id)] == [page_id]
    assert not list(slices.candidates(bytes(16)))
