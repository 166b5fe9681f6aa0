"""The two files of storage v2 (decision 28): appends into generations, compaction into cold pages, and
a compaction interrupted at each of its steps completed correctly at the next open."""

from __future__ import annotations

import secrets
from collections import Counter
from pathlib import Path

import pytest

from logsvc.storage.tiers import ColdFile, HotFile, NewRow, compact, finish
from logsvc.storage.token_filter import Tokenizer

KEY = secrets.token_bytes(32)
PER_GENERATION = 300


def batch(first: int, count: int) -> list[NewRow]:
    return [
        (
            (first + i).to_bytes(16, "big"),
            1_764_460_800_000_000 + (first + i) * 1000 - (i % 7) * 3000,  # not in arrival order
            f"svc-{(first + i) % 3}",
            9,
            "application",
            f"entry {first + i} said hello",
            None if i % 4 else '{"k":1}',
            1_764_460_800_000_000 + (first + i) * 1000,
        )
        for i in range(count)
    ]


def every_row(hot: HotFile, cold: ColdFile) -> Counter[bytes]:
    stored: Counter[bytes] = Counter(row[1] for row in cold.rows())
    for generation in hot.generations(0, 1):
        stored.update(row[1] for row in hot.rows(generation))
    return stored


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    return tmp_path / "hot.db", tmp_path / "cold.db"


def test_generations_fill_seal_and_compact_with_every_entry_once(files: tuple[Path, Path]) -> None:
    hot = HotFile(files[0], KEY, rows_per_generation=PER_GENERATION)
    cold = ColdFile(files[1], KEY)
    try:
        for first in range(0, 1000, 100):
            hot.append(batch(first, 100))
        assert hot.sealed() == [1, 2, 3]
        for generation in hot.sealed():
            compact(hot, cold, generation)
        assert hot.sealed() == []
        stored = every_row(hot, cold)
        assert stored == Counter({i.to_bytes(16, "big"): 1 for i in range(1000)})
        # Arrival numbers go on from the compacted generations, never given twice.
        hot.append(batch(1000, 10))
        numbers = [row[0] for row in cold.rows()] + [
            row[0] for g in hot.generations(0) for row in hot.rows(g)
        ]
        assert sorted(numbers) == list(range(1, 1011))
        # Pages are sorted by event time and summarised.
        summaries = cold.summaries()
        assert sum(s.count for s in summaries) == 900
        assert all(s.min_ts <= s.max_ts for s in summaries)
    finally:
        hot.close()
        cold.close()


def test_a_hot_generation_is_searched_as_the_store_searches(files: tuple[Path, Path]) -> None:
    hot = HotFile(files[0], KEY, rows_per_generation=PER_GENERATION)
    tokenizer = Tokenizer()

    def holds(message: str, term: str) -> bool:  # brute force: the term's tokens, in a row, in the message
        tokens, phrase = tokenizer.document(message), tokenizer.query(term)
        return any(tokens[i : i + len(phrase)] == phrase for i in range(len(tokens) - len(phrase) + 1))

    try:
        hot.append(batch(0, 300))  # fills and seals the first generation
        hot.append(batch(300, 50))  # in the second
        for generation in (1, 2):
            rows = hot.rows(generation)
            for terms in [
                ("hello",),
                ("26",),
                ("Entry 26",),
                ("said HELLO",),
                ("hello said",),
                ("26", "said"),
            ]:
                wanted = [row[0] for row in reversed(rows) if all(holds(row[6], term) for term in terms)]
                assert hot.matching(generation, terms) == wanted, terms
        assert hot.matching(1, ("entry 26",)) == [27]
    finally:
        hot.close()
        tokenizer.close()


def test_a_retried_entry_in_a_hot_generation_is_stored_once(files: tuple[Path, Path]) -> None:
    hot = HotFile(files[0], KEY, rows_per_generation=PER_GENERATION)
    try:
        hot.append(batch(0, 250))
        hot.append(batch(200, 100))  # 50 retried; the generation seals at 300
        hot.append(batch(0, 20))  # retried after the seal
        stored = Counter(row[1] for g in hot.generations(0, 1) for row in hot.rows(g))
        assert len(stored) == 300
        assert set(stored.values()) == {1}
    finally:
        hot.close()


@pytest.mark.parametrize("step", ["sealed", "pages written", "generation dropped"])
def test_a_compaction_interrupted_at_each_step_is_completed_at_the_next_open(
    files: tuple[Path, Path], step: str
) -> None:
    hot = HotFile(files[0], KEY, rows_per_generation=PER_GENERATION)
    cold = ColdFile(files[1], KEY)
    hot.append(batch(0, 300))
    hot.append(batch(300, 50))
    (generation,) = hot.sealed()
    # The compaction's steps, in order, up to the one the "crash" stops after; then both files closed.
    if step in ("pages written", "generation dropped"):
        cold.write(generation, hot.first_seq(generation), hot.rows(generation))
    if step == "generation dropped":
        hot.drop(generation)
    hot.close()
    cold.close()

    hot = HotFile(files[0], KEY, rows_per_generation=PER_GENERATION)
    cold = ColdFile(files[1], KEY)
    try:
        finish(hot, cold)
        assert hot.sealed() == []
        assert every_row(hot, cold) == Counter({i.to_bytes(16, "big"): 1 for i in range(350)})
        finish(hot, cold)  # twice changes nothing
        compact_again = cold.rows()
        assert Counter(row[1] for row in compact_again) == Counter(
            {i.to_bytes(16, "big"): 1 for i in range(300)}
        )
    finally:
        hot.close()
        cold.close()


def test_compacting_a_generation_twice_stores_it_once(files: tuple[Path, Path]) -> None:
    hot = HotFile(files[0], KEY, rows_per_generation=PER_GENERATION)
    cold = ColdFile(files[1], KEY)
    try:
        hot.append(batch(0, 300))
        rows = hot.rows(1)
        cold.write(1, 1, rows)
        cold.write(1, 1, rows)  # a second compactor, or a replay after a crash
        compact(hot, cold, 1)
        assert Counter(row[1] for row in cold.rows()) == Counter(
            {i.to_bytes(16, "big"): 1 for i in range(300)}
        )
    finally:
        hot.close()
        cold.close()


def test_both_files_hold_no_plaintext(files: tuple[Path, Path]) -> None:
    hot = HotFile(files[0], KEY, rows_per_generation=PER_GENERATION)
    cold = ColdFile(files[1], KEY)
    try:
        hot.append(batch(0, 400))
        compact(hot, cold, 1)
    finally:
        hot.close()
        cold.close()
    for path in files[0].parent.iterdir():
        data = path.read_bytes()
        assert b"said hello" not in data, path.name
        assert b"svc-1" not in data, path.name
        assert not data.startswith(b"SQLite format 3"), path.name
