"""The tiered store's files as the operator's commands see them (decision 35): stats against today's
store on the same entries, snapshots taken while a writer, a compactor and a deleter go on, destroy."""

from __future__ import annotations

import asyncio
import os
import secrets
import threading
from collections import Counter
from pathlib import Path

import pytest

from logsvc.crypto.sqlite import snapshot
from logsvc.errors import ConfigError
from logsvc.storage.open import store_files
from logsvc.storage.sqlite import SQLiteStore
from logsvc.storage.sqlite_files import SQLiteFiles
from logsvc.storage.tiered_files import COLD, HOT, TieredFiles
from logsvc.storage.tiers import ColdFile, HotFile, compact, finish
from logsvc.storage.tiers_ops import delete_older, forget_newer
from logsvc.storage.writer import taking_turns, turns_lock
from logsvc.store_url import tiered_url

from .tiered_reference import (
    BASE_US,
    append_sqlite,
    append_tiered,
    batch,
    counts,
    tiered_rows,
)

KEY = secrets.token_bytes(32)
PER_GENERATION = 700
CUTOFF = BASE_US + 2500 * 1_500_000


def test_stats_are_todays_stores_on_the_same_entries(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "logs.db", key=KEY, read_threads=1)
    directory = tmp_path / "v2"
    hot = HotFile(directory / HOT, KEY, rows_per_generation=PER_GENERATION)
    cold = ColdFile(directory / COLD, KEY)
    try:
        for first in range(0, 4000, 250):
            rows = batch(first, 250)
            append_sqlite(store, rows)
            append_tiered(hot, rows)
            if first % 1000 == 0:
                for generation in hot.sealed():
                    compact(hot, cold, generation)
        cutoff = BASE_US + 1000 * 1_500_000
        asyncio.run(store.delete_older(cutoff, include=("svc-2",), limit=10_000))
        while delete_older(hot, cold, cutoff, include=("svc-2",)) >= 500:
            pass
        rows = batch(4000, 300)  # after the deletion, which compacted every hot generation it reached
        append_sqlite(store, rows)
        append_tiered(hot, rows)
        assert hot.generations(0, 1)  # both tiers hold entries
        assert cold.summaries()
    finally:
        asyncio.run(store.close())
        hot.close()
        cold.close()
    tiered = store_files(tiered_url(directory)).stats(KEY)
    reference = SQLiteFiles(tmp_path / "logs.db").stats(KEY)
    assert isinstance(store_files(tiered_url(directory)), TieredFiles)
    assert tiered.services == reference.services
    assert tiered.entries == reference.entries > 3000
    assert tiered.path == str(directory)
    assert tiered.file_bytes > 0


def test_a_snapshot_while_writing_compacting_and_deleting_holds_each_entry_once(tmp_path: Path) -> None:
    directory = tmp_path / "v2"
    hot = HotFile(directory / HOT, KEY, rows_per_generation=PER_GENERATION)
    cold = ColdFile(directory / COLD, KEY)
    append_tiered(hot, batch(0, 100))
    stop = threading.Event()
    written = [100]

    turns = turns_lock(directory / HOT)

    def writer() -> None:
        """As the store's writer: appends, and retention between them, each in its turn."""
        hot = HotFile(directory / HOT, KEY, rows_per_generation=PER_GENERATION)
        cold = ColdFile(directory / COLD, KEY)
        fd = os.open(turns, os.O_RDWR | os.O_CREAT)
        try:
            while not stop.is_set():
                with taking_turns(fd):
                    append_tiered(hot, batch(written[0], 50))
                written[0] += 50
                with taking_turns(fd):
                    delete_older(hot, cold, CUTOFF, include=("svc-1",), limit=50)
        finally:
            os.close(fd)
            hot.close()
            cold.close()

    def compactor() -> None:
        """As the compactor process: its drops take their turn."""
        hot = HotFile(directory / HOT, KEY, rows_per_generation=PER_GENERATION, turns=turns)
        cold = ColdFile(directory / COLD, KEY)
        try:
            while not stop.is_set():
                for generation in hot.sealed():
                    # Retention compacts too: the compaction that tolerates another of the same generation.
                    compact(hot, cold, generation)
        finally:
            hot.close()
            cold.close()

    threads = [threading.Thread(target=work) for work in (writer, compactor)]
    for thread in threads:
        thread.start()
    try:
        snapshots = []
        for number in range(3):
            while written[0] < 1500 * (number + 1):
                stop.wait(0.01)
            target = tmp_path / f"snapshot-{number}"
            TieredFiles(directory).snapshot(KEY, target)
            snapshots.append(target)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        hot.close()
        cold.close()
    for target in snapshots:
        copy_hot, copy_cold = HotFile(target / HOT, KEY), ColdFile(target / COLD, KEY)
        try:
            rows = tiered_rows(copy_hot, copy_cold)
            ids = Counter(row[1] for row in rows)
            assert max(ids.values()) == 1  # nothing doubled across a compaction
            newest = max(int.from_bytes(log_id, "big") for log_id in ids)
            written_then = batch(0, newest + 1)
            expired = {i for i, row in enumerate(written_then) if row[2] == "svc-1" and row[1] < CUTOFF}
            have = {int.from_bytes(log_id, "big") for log_id in ids}
            # Every entry up to the newest copied is there, but some the deleter took (svc-1, expired).
            assert set(range(newest + 1)) - expired <= have
            # The copy's counts are its entries' counts: no deletion half in it.
            recount_hot = HotFile(tmp_path / "recount" / target.name / HOT, KEY)
            try:
                append_tiered(recount_hot, [(r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8]) for r in rows])
                assert counts(copy_hot.connection) == counts(recount_hot.connection)
            finally:
                recount_hot.close()
        finally:
            copy_hot.close()
            copy_cold.close()
        for path in target.iterdir():
            assert b"secret-word" not in path.read_bytes(), path.name


def test_destroy_is_refused_while_the_store_is_open_then_deletes_its_files(tmp_path: Path) -> None:
    directory = tmp_path / "v2"
    hot = HotFile(directory / HOT, KEY)
    cold = ColdFile(directory / COLD, KEY)
    append_tiered(hot, batch(0, 10))
    files = TieredFiles(directory)
    with pytest.raises(ConfigError, match="in use"):
        files.destroy(KEY)
    hot.close()
    with pytest.raises(ConfigError, match="in use"):
        files.destroy(KEY)  # the compactor's cold file still open
    cold.close()
    files.destroy(KEY)
    assert not directory.exists()
    with pytest.raises(ConfigError, match="no store"):
        store_files(tiered_url(directory))


def test_a_directory_without_the_two_files_is_not_a_tiered_store(tmp_path: Path) -> None:
    (tmp_path / "v2").mkdir()
    with pytest.raises(ConfigError, match="not a tiered logsvc store"):
        TieredFiles(tmp_path / "v2").stats(KEY)
    with pytest.raises(ConfigError, match="sqlite, tiered, dynamodb"):
        store_files("postgres://x")


def test_a_generation_appended_and_compacted_between_the_two_copies_is_left_out(tmp_path: Path) -> None:
    """The moment ``snapshot`` guards against, made to happen: the hot file copied, then a generation
    filled and compacted, then the cold file copied; the copy is the store at the hot copy's moment."""
    directory, target = tmp_path / "v2", tmp_path / "copy"
    hot = HotFile(directory / HOT, KEY, rows_per_generation=PER_GENERATION)
    cold = ColdFile(directory / COLD, KEY)
    try:
        append_tiered(hot, batch(0, 1000))
        for generation in hot.sealed():
            compact(hot, cold, generation)
        target.mkdir()
        snapshot(directory / HOT, KEY, target / HOT)
        append_tiered(hot, batch(1000, 1000))  # seals the open generation
        for generation in hot.sealed():
            compact(hot, cold, generation)
        snapshot(directory / COLD, KEY, target / COLD)
    finally:
        hot.close()
        cold.close()
    copy_hot, copy_cold = HotFile(target / HOT, KEY), ColdFile(target / COLD, KEY)
    try:
        forget_newer(copy_hot, copy_cold)
        finish(copy_hot, copy_cold)
        rows = tiered_rows(copy_hot, copy_cold)
        assert [int.from_bytes(row[1], "big") for row in rows] == list(range(1000))
        recount = HotFile(tmp_path / "recount" / HOT, KEY)
        try:
            append_tiered(recount, [row[1:] for row in rows])  # type: ignore[misc]
            assert counts(copy_hot.connection) == counts(recount.connection)
        finally:
            recount.close()
    finally:
        copy_hot.close()
        copy_cold.close()


def test_a_generation_open_in_the_hot_copy_and_compacted_before_the_cold_copy_is_kept_once(
    tmp_path: Path,
) -> None:
    """The hot file copied while a generation is open (10 rows), then that generation filled, sealed and
    compacted, then the cold file copied: the copy holds those 10 rows once, in the hot tier, and goes on
    from there (it once kept the cold copy's whole generation too, and a later compaction of the copy's
    generation was then skipped as done, dropping what was written to it)."""
    directory, target = tmp_path / "v2", tmp_path / "copy"
    hot = HotFile(directory / HOT, KEY, rows_per_generation=64)
    cold = ColdFile(directory / COLD, KEY)
    try:
        append_tiered(hot, batch(0, 10))
        target.mkdir()
        snapshot(directory / HOT, KEY, target / HOT)
        append_tiered(hot, batch(10, 54))  # fills and seals the generation
        for generation in hot.sealed():
            compact(hot, cold, generation)
        snapshot(directory / COLD, KEY, target / COLD)
    finally:
        hot.close()
        cold.close()
    copy_hot = HotFile(target / HOT, KEY, rows_per_generation=64)
    copy_cold = ColdFile(target / COLD, KEY)
    try:
        forget_newer(copy_hot, copy_cold)
        finish(copy_hot, copy_cold)
        assert [int.from_bytes(row[1], "big") for row in tiered_rows(copy_hot, copy_cold)] == list(range(10))
        append_tiered(copy_hot, batch(100, 60))  # written to the restored copy: seals its generation
        for generation in copy_hot.sealed():
            compact(copy_hot, copy_cold, generation)
        stored = sorted(int.from_bytes(row[1], "big") for row in tiered_rows(copy_hot, copy_cold))
        assert stored == [*range(10), *range(100, 160)]
    finally:
        copy_hot.close()
        copy_cold.close()
