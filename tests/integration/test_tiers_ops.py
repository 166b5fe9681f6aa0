"""Retention, the oldest entry and the archive export over the two tiers (decision 35), each against
today's SQLiteStore holding the same entries, with compactions between the steps."""

from __future__ import annotations

import asyncio
import secrets
import threading
from pathlib import Path

import pytest

from logsvc.storage.sqlite import SQLiteStore
from logsvc.storage.tiers import ColdFile, HotFile, compact
from logsvc.storage.tiers_ops import delete_older, export_after, oldest

from .tiered_reference import (
    BASE_US,
    append_sqlite,
    append_tiered,
    batch,
    counts,
    sqlite_counts,
    sqlite_rows,
    tiered_rows,
)

KEY = secrets.token_bytes(32)
PER_GENERATION = 1500  # two pages a generation (1,024 + 476)
TOTAL = 6000


class Both:
    """The same appends into today's store and into the two files."""

    def __init__(self, tmp_path: Path) -> None:
        self.db = tmp_path / "logs.db"
        self.store = SQLiteStore(self.db, key=KEY, read_threads=1)
        self.hot = HotFile(tmp_path / "v2" / "hot.db", KEY, rows_per_generation=PER_GENERATION)
        self.cold = ColdFile(tmp_path / "v2" / "cold.db", KEY)

    def append(self, first: int, count: int) -> None:
        rows = batch(first, count)
        append_sqlite(self.store, rows)
        append_tiered(self.hot, rows)

    def compact_sealed(self) -> None:
        for generation in self.hot.sealed():
            compact(self.hot, self.cold, generation)

    def same_entries_and_counts(self) -> None:
        assert tiered_rows(self.hot, self.cold) == sqlite_rows(self.db, KEY)
        assert counts(self.hot.connection) == sqlite_counts(self.db, KEY)

    def close(self) -> None:
        asyncio.run(self.store.close())
        self.hot.close()
        self.cold.close()


@pytest.fixture
def both(tmp_path: Path) -> Both:
    pair = Both(tmp_path)
    yield pair  # type: ignore[misc]
    pair.close()


def fill(both: Both, *, compact_every: int = 2) -> None:
    for step, first in enumerate(range(0, TOTAL, 400)):
        both.append(first, 400)
        both.append(first, 10)  # retried while still hot: stored once in both
        if step % compact_every == 0:
            both.compact_sealed()


SCOPES = [
    ((), ()),
    (("svc-1",), ()),
    (("svc-1*", "svc-2"), ()),
    ((), ("svc-0", "svc-3")),
    (("svc-*",), ("svc-4",)),
]


@pytest.mark.parametrize(("include", "exclude"), SCOPES)
def test_retention_leaves_the_same_entries_and_counts_as_todays_store(
    both: Both, include: tuple[str, ...], exclude: tuple[str, ...]
) -> None:
    fill(both)
    both.same_entries_and_counts()
    for step, cutoff in enumerate((BASE_US + 1_500 * 1_500_000, BASE_US + 3_000 * 1_500_000)):
        expected = tiered = 0
        while True:
            deleted = asyncio.run(
                both.store.delete_older(cutoff, include=include, exclude=exclude, limit=300)
            )
            expected += deleted
            if deleted < 300:
                break
        while True:
            deleted = delete_older(both.hot, both.cold, cutoff, include=include, exclude=exclude, limit=300)
            tiered += deleted
            if deleted < 300:
                break
            both.compact_sealed()
        assert tiered == expected > 0
        both.same_entries_and_counts()
        assert oldest(both.hot, both.cold, include=include, exclude=exclude) == asyncio.run(
            both.store.oldest(include=include, exclude=exclude)
        )
        both.append(TOTAL + step * 100, 50)  # numbers go on as today's store's after a deletion
        both.same_entries_and_counts()


def test_a_purge_reaches_the_hot_generations_and_numbers_are_never_given_twice(both: Both) -> None:
    fill(both, compact_every=1000)  # most entries still hot, some generations only sealed
    assert both.hot.sealed()
    everything = 2**62
    tiered = expected = 0
    for _ in range(100):
        deleted = delete_older(both.hot, both.cold, everything, include=("svc-2",), limit=500)
        tiered += deleted
        if deleted < 500:
            break
    for _ in range(100):
        deleted = asyncio.run(both.store.delete_older(everything, include=("svc-2",), limit=500))
        expected += deleted
        if deleted < 500:
            break
    assert tiered == expected == TOTAL // 5
    both.same_entries_and_counts()
    # The newest entry was svc-4's; a purge of svc-4 takes the newest arrival number's row away.
    while delete_older(both.hot, both.cold, everything, include=("svc-4",)) >= 500:
        pass
    while asyncio.run(both.store.delete_older(everything, include=("svc-4",))) >= 500:
        pass
    both.append(TOTAL, 20)
    both.same_entries_and_counts()


def test_oldest_of_an_empty_scope_is_none(both: Both) -> None:
    fill(both)
    assert oldest(both.hot, both.cold, include=("nothing",)) is None
    assert oldest(both.hot, both.cold) == asyncio.run(both.store.oldest())


@pytest.mark.parametrize("limit", [1, 333, 2000, 100_000])
def test_export_gives_the_rows_and_commit_records_of_todays_store(both: Both, limit: int) -> None:
    fill(both, compact_every=3)
    asyncio.run(both.store.delete_older(BASE_US + 800 * 1_500_000, include=("svc-3",)))
    while delete_older(both.hot, both.cold, BASE_US + 800 * 1_500_000, include=("svc-3",)) >= 500:
        pass
    after = 0
    exported = []
    while True:
        tiered = export_after(both.hot, both.cold, after, limit)
        reference = asyncio.run(both.store.export_after(after, limit))
        assert tiered.rows == [tuple(row) for row in reference.rows]
        assert tiered.last_seq == reference.last_seq
        # The commit records differ in time (two stores), not in which transactions they cover.
        assert [c[0] for c in tiered.commits] == [c[0] for c in reference.commits]
        if not tiered.rows:
            break
        exported += tiered.rows
        after = tiered.last_seq
        both.compact_sealed()  # compactions between exports move rows between the tiers
    assert exported == tiered_rows(both.hot, both.cold)


def test_exports_while_a_compactor_moves_generations_give_each_row_once(both: Both, tmp_path: Path) -> None:
    fill(both, compact_every=1000)
    expected = [tuple(row) for row in sqlite_rows(both.db, KEY)]
    assert len(both.hot.sealed()) >= 3
    done = threading.Event()

    def compactor() -> None:
        hot = HotFile(both.hot.path, KEY, rows_per_generation=PER_GENERATION)
        cold = ColdFile(both.cold.path, KEY)
        try:
            for generation in hot.sealed():
                compact(hot, cold, generation)
        finally:
            hot.close()
            cold.close()
            done.set()

    thread = threading.Thread(target=compactor)
    thread.start()
    exports = 0
    while not done.is_set() or exports < 3:
        assert export_after(both.hot, both.cold, 0, 100_000).rows == expected
        exports += 1
    thread.join()
    assert both.hot.sealed() == []
    assert export_after(both.hot, both.cold, 0, 100_000).rows == expected
