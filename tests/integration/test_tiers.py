"""The two files of storage v2 (decision 28): appends into generations, compaction into cold pages, and
a compaction interrupted at each of its steps completed correctly at the next open."""

from __future__ import annotations

import secrets
import shutil
import struct
import threading
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pytest

from logsvc.crypto.sqlite import connect
from logsvc.domain.entries import format_log_id
from logsvc.errors import ConfigError
from logsvc.storage import tiers_ops
from logsvc.storage.pages import PageCodec, train_dictionary
from logsvc.storage.sqlite_schema import INDEX_NEW_ROWS, INSERT_ENTRY, open_connection
from logsvc.storage.tiers import ColdFile, HotFile, NewRow, compact, finish
from logsvc.storage.token_filter import Tokenizer

from .tiered_reference import counts

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
        # The sealed generation's first and last ids among new ones (its first id for another service,
        # ids above its own), in one append: the ids at the edges of its range are found.
        retried = [row for row in batch(0, 300) if row[0][-2:] in (b"\x00\x00", b"\x01\x2b")]
        new = [(bytes(16), row[1], "other", *row[3:]) for row in batch(900, 1)] + batch(5000, 3)
        assert hot.append(retried + new) == 4
        stored = Counter((row[1], row[3]) for g in hot.generations(0, 1) for row in hot.rows(g))
        assert len(stored) == 304
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


def test_a_generation_held_with_other_arrival_numbers_is_refused_and_kept_hot(
    files: tuple[Path, Path], tmp_path: Path
) -> None:
    """A cold file of another store holding a generation by the same number: the hot rows are not dropped."""
    other_hot = HotFile(tmp_path / "other-hot.db", KEY, rows_per_generation=PER_GENERATION)
    hot = HotFile(files[0], KEY, rows_per_generation=PER_GENERATION)
    cold = ColdFile(files[1], KEY)
    try:
        other_hot.append(batch(0, 100))
        cold.write(1, 1, other_hot.rows(1))
        hot.append(batch(1_000, 300))
        assert hot.sealed() == [1]
        with pytest.raises(ConfigError, match="holds generation 1 with arrival numbers 1 to 100"):
            compact(hot, cold, 1)
        with pytest.raises(ConfigError, match="holds generation 1 with arrival numbers 1 to 100"):
            finish(hot, cold)  # as a restarted compactor does first
        assert len(hot.rows(1)) == 300
        assert hot.sealed() == [1]
    finally:
        other_hot.close()
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


def test_the_hot_file_counts_as_the_store_does_and_a_compaction_keeps_the_counts(
    files: tuple[Path, Path], tmp_path: Path
) -> None:
    """The rollups and service counts mean what they mean in today's store (decision 24): the same
    entries give the counts today's store reads (its views count what its writer has not added yet);
    a compaction moves rows and keeps them; a deleted hot row is taken off, from the counts and from
    the full-text index."""
    entries = batch(0, 400) + batch(100, 50) + batch(380, 60)  # with retries, within and across appends
    reference = open_connection(tmp_path / "logs.db", KEY, write=True)
    reference.execute("BEGIN")
    reference.executemany(INSERT_ENTRY, entries)
    reference.execute(INDEX_NEW_ROWS, (0,))
    reference.execute("COMMIT")
    hot = HotFile(files[0], KEY, rows_per_generation=PER_GENERATION)
    cold = ColdFile(files[1], KEY)
    try:
        assert hot.append(entries[:400]) == 400
        assert hot.append(entries[400:450]) == 0
        assert hot.append(entries[450:]) == 40
        assert counts(hot.connection) == counts(reference)
        compact(hot, cold, 1)
        assert counts(hot.connection) == counts(reference)

        generation = 2
        assert hot.generations(0) == [generation]
        (seq,) = [
            row[0] for row in hot.rows(generation) if row[5:7] == ("application", "entry 420 said hello")
        ]
        hot.connection.execute("DELETE FROM hot_2 WHERE seq = ?", (seq,))
        reference.execute("DELETE FROM logs WHERE log_id = ?", ((420).to_bytes(16, "big"),))
        assert counts(hot.connection) == counts(reference)
        assert hot.matching(generation, ("420",)) == []
        assert hot.check() == []
    finally:
        hot.close()
        cold.close()
        reference.close()


def test_each_append_records_its_commit_and_numbers_are_not_given_twice_after_a_purge(
    files: tuple[Path, Path],
) -> None:
    hot = HotFile(files[0], KEY, rows_per_generation=PER_GENERATION)
    try:
        assert hot.append(batch(0, 10)) == 10
        assert hot.append(batch(5, 10)) == 5  # 5 retried: their numbers (11-15) are left unused
        assert hot.append(batch(0, 10)) == 0  # only retries: no commit record
        records = hot.connection.execute("SELECT last_seq, committed_at FROM commits").fetchall()
        assert [last for last, _ in records] == [10, 20]
        assert all(abs(at - time.time_ns() // 1000) < 60_000_000 for _, at in records)
        hot.connection.execute("DELETE FROM hot_1 WHERE seq > 17")  # the newest rows purged
        hot.append(batch(100, 2))
        assert [row[0] for row in hot.rows(1)][-2:] == [21, 22]
    finally:
        hot.close()


def test_an_id_stored_elsewhere_is_not_stored_again(files: tuple[Path, Path]) -> None:
    hot = HotFile(files[0], KEY, rows_per_generation=PER_GENERATION)
    asked: list[tuple[bytes, str, int]] = []

    def in_cold(keys: Sequence[tuple[bytes, str, int]]) -> set[tuple[bytes, str]]:
        asked.extend(keys)
        return {(log_id, service) for log_id, service, _ in keys if int.from_bytes(log_id, "big") < 5}

    try:
        hot.append(batch(8, 2))
        assert hot.append(batch(0, 10), in_cold) == 3  # 0-4 in the cold tier, 8-9 in the hot one
        assert sorted(int.from_bytes(row[1], "big") for row in hot.rows(1)) == [5, 6, 7, 8, 9]
        # The cold tier is asked with the event times, about ids that no sealed hot generation holds (the
        # open one's unique index skips its own).
        assert sorted(int.from_bytes(log_id, "big") for log_id, _, _ in asked) == list(range(10))
        asked.clear()
        hot.append(batch(10, 300))  # seals the first generation, which holds 5-9
        assert hot.append(batch(5, 3), in_cold) == 0
        assert asked == []
        assert {(log_id, ts) for log_id, _, ts in asked} <= {(row[0], row[1]) for row in batch(0, 10)}
    finally:
        hot.close()


def test_the_pages_of_dropped_generations_are_given_back_and_their_rows_are_in_the_cold_file(
    files: tuple[Path, Path],
) -> None:
    hot = HotFile(files[0], KEY, rows_per_generation=PER_GENERATION)
    cold = ColdFile(files[1], KEY)
    try:
        for first in range(0, 900, 100):
            hot.append(batch(first, 100))
        conn = hot.connection
        (grown,) = conn.execute("PRAGMA page_count").fetchone()
        for generation in hot.sealed():
            compact(hot, cold, generation)
        (free,) = conn.execute("PRAGMA freelist_count").fetchone()
        assert 0 < free < grown / 2  # the last one's kept for the next generation, earlier ones cut off
        assert hot.release() == free
        (pages,) = conn.execute("PRAGMA page_count").fetchone()
        assert conn.execute("PRAGMA freelist_count").fetchone() == (0,)
        assert pages < grown / 2
        assert hot.release() == 0
        assert conn.execute("PRAGMA secure_delete").fetchone() == (1,)  # as it was, for every other delete
        assert every_row(hot, cold) == Counter({i.to_bytes(16, "big"): 1 for i in range(900)})
        assert hot.check() == []
    finally:
        hot.close()
        cold.close()


def test_a_hot_file_made_before_it_gave_pages_back_keeps_them_for_reuse(files: tuple[Path, Path]) -> None:
    """A file made before decision 38 cannot give pages back (its auto_vacuum is fixed at creation): the
    idle compactor's release finds nothing to do, rather than taking the writers' turn every 0.2 s."""
    made_before = connect(files[0], KEY)
    made_before.execute("CREATE TABLE made_before (x)")  # a file with a table keeps auto_vacuum NONE
    made_before.close()
    hot = HotFile(files[0], KEY, rows_per_generation=PER_GENERATION)
    cold = ColdFile(files[1], KEY)
    try:
        for first in range(0, 900, 100):
            hot.append(batch(first, 100))
        for generation in hot.sealed():
            compact(hot, cold, generation)
        conn = hot.connection
        assert conn.execute("PRAGMA auto_vacuum").fetchone() == (0,)
        (free,) = conn.execute("PRAGMA freelist_count").fetchone()
        assert free > 0
        assert hot.release() == 0
        assert conn.execute("PRAGMA freelist_count").fetchone() == (free,)
        assert every_row(hot, cold) == Counter({i.to_bytes(16, "big"): 1 for i in range(900)})
    finally:
        hot.close()
        cold.close()


def test_a_checkpoint_empties_the_wal_and_waits_for_no_reader(files: tuple[Path, Path]) -> None:
    hot = HotFile(files[0], KEY, rows_per_generation=PER_GENERATION)
    reader = HotFile(files[0], KEY)
    wal = files[0].with_name("hot.db-wal")
    try:
        hot.append(batch(0, 100))
        assert wal.stat().st_size > 0
        with reader.reading():  # a read snapshot holds the WAL's frames
            hot.append(batch(100, 100))
            started = time.monotonic()
            assert not hot.checkpoint()
            assert time.monotonic() - started < 5  # a moment, not the 10 s busy timeout of writes
        assert hot.checkpoint()
        assert wal.stat().st_size == 0
        hot.append(batch(200, 10))  # and the file goes on from there
        assert sum(len(hot.rows(g)) for g in hot.generations(0, 1)) == 210
    finally:
        reader.close()
        hot.close()


def varied(first: int, count: int) -> list[NewRow]:
    """Entries with UUIDv7 ids and messages of a few templates (a dictionary needs some variety)."""
    words = [
        "GET /orders",
        "user logged in from",
        "db timeout after",
        "cache miss for key",
        "job enqueued on",
    ]
    return [
        (
            (1_764_460_800_000 + n).to_bytes(6, "big")
            + bytes([0x70 | n % 16, n % 251, 0x80 | n % 61])
            + (n * 7919).to_bytes(7, "big"),
            1_764_460_800_000_000 + n * 1000,
            f"svc-{n % 3}",
            9,
            "application",
            f"{words[n % 5]} {n * 7919 % 100_003} took {n % 97}ms said hello",
            None if n % 4 else f'{{"host":"ip-{n % 13}","took":{n % 300}}}',
            1_764_460_800_000_000 + n * 1000 + 700,
        )
        for n in range(first, first + count)
    ]


def _dictionaries(cold: ColdFile) -> list[tuple[int, bytes]]:
    return [(int(i), bytes(d)) for i, d in cold.connection.execute("SELECT * FROM cold_dictionaries")]


def test_the_first_generation_of_a_page_or_more_trains_the_dictionary_of_the_messages(
    files: tuple[Path, Path],
) -> None:
    """Stored once, encrypted with the file, named by every page written after it, and read by a
    process that opened the file before it was made."""
    hot = HotFile(files[0], KEY, rows_per_generation=1100)
    cold = ColdFile(files[1], KEY)
    reader = ColdFile(files[1], KEY)  # opened before: the dictionary is asked of the file
    try:
        hot.append(varied(0, 1100))
        compact(hot, cold, 1)
        hot.append(varied(1100, 1100))
        compact(hot, cold, 2)
        stored = _dictionaries(cold)
        assert len(stored) == 1
        dictionary_id, dictionary = stored[0]
        bodies = [bytes(body) for (body,) in cold.connection.execute("SELECT body FROM cold_pages")]
        assert {(body[:4], struct.unpack_from("<I", body, 8)[0]) for body in bodies} == {
            (b"LSP2", dictionary_id)
        }
        assert every_row(hot, reader) == Counter({row[0]: 1 for row in varied(0, 2200)})
        again = ColdFile(files[1], KEY)  # opened after: writes with the stored one
        assert again.codec.dictionary_id == dictionary_id
        again.close()
    finally:
        hot.close()
        cold.close()
        reader.close()
    for path in files[0].parent.iterdir():
        data = path.read_bytes()
        assert b"said hello" not in data, path.name
        assert dictionary[-64:] not in data, path.name


def _dictionaries_named(cold: ColdFile) -> set[int]:
    bodies = [bytes(body) for (body,) in cold.connection.execute("SELECT body FROM cold_pages")]
    return {struct.unpack_from("<I", body, 8)[0] for body in bodies}


def test_retention_on_a_file_opened_before_the_dictionary_rewrites_pages_with_it(
    files: tuple[Path, Path],
) -> None:
    """The writer's cold file is opened before the compactor process trains the dictionary: the pages
    retention rewrites through it name the file's dictionary too."""
    hot = HotFile(files[0], KEY, rows_per_generation=2048)
    writer_cold = ColdFile(files[1], KEY)
    compactor_cold = ColdFile(files[1], KEY)
    try:
        hot.append(varied(0, 2048))
        compact(hot, compactor_cold, 1)
        [(dictionary_id, _)] = _dictionaries(compactor_cold)
        cutoff = varied(0, 1)[0][1] + 1  # the oldest entry only: its page is rewritten, not deleted
        assert tiers_ops.delete_older(hot, writer_cold, cutoff, limit=1) >= 1
        assert _dictionaries_named(compactor_cold) == {dictionary_id}
        assert every_row(hot, writer_cold) == Counter({row[0]: 1 for row in varied(1, 2047)})
    finally:
        hot.close()
        writer_cold.close()
        compactor_cold.close()


def test_a_dictionary_stored_by_another_process_meanwhile_is_the_one_used(files: tuple[Path, Path]) -> None:
    """Two processes train a dictionary each for the file's first pages: the one stored first serves
    both, so a file holds one dictionary (zstd's ids are 31-bit hashes: two could share one)."""
    hot = HotFile(files[0], KEY, rows_per_generation=1100)
    cold = ColdFile(files[1], KEY)
    other = connect(files[1], KEY)
    try:
        hot.append(varied(0, 1100))
        hot.seal(1)
        theirs = train_dictionary([(n, *row) for n, row in enumerate(varied(50_000, 1100))])
        blocked = threading.Event()

        def wait(_tries: int) -> bool:
            blocked.set()  # trained its own, now waits for the write lock the other process holds
            time.sleep(0.001)
            return True

        cold.connection.set_busy_handler(wait)
        other.execute("BEGIN IMMEDIATE")
        other.execute(
            "CREATE TABLE IF NOT EXISTS cold_dictionaries "
            "(dictionary_id INTEGER PRIMARY KEY, data BLOB NOT NULL) STRICT"
        )
        their_codec = PageCodec(theirs)
        their_id = their_codec.dictionary_id
        their_codec.close()
        other.execute("INSERT INTO cold_dictionaries(dictionary_id, data) VALUES (?, ?)", (their_id, theirs))
        compacting = threading.Thread(target=compact, args=(hot, cold, 1))
        compacting.start()
        assert blocked.wait(30)
        other.execute("COMMIT")
        compacting.join(30)
        assert _dictionaries(cold) == [(their_id, theirs)]
        assert _dictionaries_named(cold) == {their_id}
        assert cold.codec.dictionary == theirs
        assert every_row(hot, cold) == Counter({row[0]: 1 for row in varied(0, 1100)})
    finally:
        other.close()
        hot.close()
        cold.close()


def test_a_generation_too_small_or_too_empty_for_a_dictionary_goes_without(files: tuple[Path, Path]) -> None:
    hot = HotFile(files[0], KEY, rows_per_generation=1100)
    cold = ColdFile(files[1], KEY)
    try:
        hot.append(batch(0, 300))
        hot.seal(1)
        compact(hot, cold, 1)
        hot.append([(*row[:5], "", *row[6:]) for row in batch(300, 1100)])  # zstd cannot train on nothing
        compact(hot, cold, 2)
        assert cold.codec.dictionary is None
        assert every_row(hot, cold) == Counter({row[0]: 1 for row in batch(0, 1400)})
    finally:
        hot.close()
        cold.close()


FIXTURE = Path(__file__).parents[1] / "fixtures" / "tiered_lsp1"
FIXTURE_KEY = bytes(range(32))


def test_a_store_of_the_first_page_format_reads_takes_new_pages_and_keeps_its_ids(tmp_path: Path) -> None:
    """A store written before decision 41 (LSP1 pages, summaries with full filters and no id range)
    opens without a migration: its entries read, its ids stay idempotent, new generations are written
    in the new format beside its pages, and retention rewrites an old page in the new format."""
    from logsvc.storage.tiers_ops import _take_out
    from logsvc.storage.tiers_reads import contains, get

    shutil.copytree(FIXTURE / "store", tmp_path / "store")
    hot = HotFile(tmp_path / "store" / "hot.db", FIXTURE_KEY, rows_per_generation=1100)
    cold = ColdFile(tmp_path / "store" / "cold.db", FIXTURE_KEY)
    try:
        old = every_row(hot, cold)
        assert len(old) == 320
        assert set(old.values()) == {1}
        old_ids = sorted(old)
        keys = [(row[1], row[3], row[2]) for row in cold.rows()]
        assert contains(hot, cold, keys) == {(log_id, service) for log_id, service, _ts in keys}
        assert hot.append(varied(0, 1100)) == 1100
        compact(hot, cold, hot.sealed()[0])
        assert (
            hot.append(
                [(row[1], row[2], row[3], *row[4:]) for row in cold.rows()][:50],
                lambda k: contains(hot, cold, k),
            )
            == 0
        )
        assert every_row(hot, cold) == Counter({**old, **{row[0]: 1 for row in varied(0, 1100)}})
        formats = Counter(
            bytes(body[:4]) for (body,) in cold.connection.execute("SELECT body FROM cold_pages")
        )
        assert formats == {b"LSP1": 3, b"LSP2": 2}
        for log_id in (old_ids[0], old_ids[-1], varied(5, 1)[0][0]):
            assert [entry.log_id for entry in get(hot, cold, log_id)] == [format_log_id(log_id)]
        page_id, body = cold.connection.execute(
            "SELECT page_id, body FROM cold_pages ORDER BY page_id"
        ).fetchone()
        assert bytes(body[:4]) == b"LSP1"
        rows = cold.page(page_id)
        _take_out(cold, [(page_id, {rows[0][0]})])
        assert cold.page(page_id) == rows[1:]
        (body,) = cold.connection.execute(
            "SELECT body FROM cold_pages WHERE page_id = ?", (page_id,)
        ).fetchone()
        assert bytes(body[:4]) == b"LSP2"
    finally:
        hot.close()
        cold.close()


def test_an_append_past_the_generation_goes_on_in_the_next_so_generations_are_whole_pages(
    files: tuple[Path, Path],
) -> None:
    """A generation takes exactly its arrival numbers; the rest of the append is in the next one, in the
    same transaction. A retry of a row of the generation just sealed, and a row twice in the append on
    both sides of the cut, are stored once."""
    hot = HotFile(files[0], KEY, rows_per_generation=1024)
    cold = ColdFile(files[1], KEY)
    try:
        assert hot.append(batch(0, 1000)) == 1000
        assert hot.append(batch(1000, 100)) == 100
        compact(hot, cold, 1)
        assert [summary.count for summary in cold.summaries()] == [1024]
        # generation 2 holds 76; of this append, 10 retries in it, 1,000 new, one twice, one of the 938
        # that fill generation 2 again at the end (past the cut)
        again = [*batch(1090, 10), *batch(1100, 1000), *batch(1100, 1), *batch(1500, 1)]
        assert hot.append(again) == 1000
        spans = hot.select("SELECT first_seq, last_seq, state FROM hot_generations ORDER BY generation")
        assert spans == [(1, 1024, 2), (1025, 2048, 1), (2049, None, 0)]
        assert every_row(hot, cold) == Counter({row[0]: 1 for row in batch(0, 2100)})
        numbers = [row[0] for row in cold.rows()] + [row[0] for g in (2, 3) for row in hot.rows(g)]
        assert len(numbers) == len(set(numbers)) == 2100
    finally:
        hot.close()
        cold.close()
