"""The newest-first read over both files of storage v2 (decision 28) gives what today's store gives for
the same entries: the same entries in the same order, for every filter, search and cursor, whichever of
them were compacted into cold pages."""

from __future__ import annotations

import asyncio
import secrets
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from logsvc.domain.cursors import decode_cursor
from logsvc.domain.entries import Level, NewEntry, format_log_id
from logsvc.domain.queries import Query
from logsvc.storage.sqlite import SQLiteStore
from logsvc.storage.tiers import ColdFile, HotFile, compact
from logsvc.storage.tiers_reads import newest
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
