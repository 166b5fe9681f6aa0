"""Storage v2 as a store (decision 33): the two files of ``tiers`` behind the LogStore port.

A tiered store is a directory holding ``hot.db`` (the rows that acknowledged writes go to) and ``cold.db``
(the compressed pages they are compacted into), both encrypted with the store key.

- **One writer thread** (``writer.Writer``, the SQLite store's, with group commit and the durable
  hand-off): a group's entries go to ``HotFile.append``, one durable transaction holding the rows, their
  full-text index, the rollups and the commit record; an id already in either tier for the same service is
  not stored again (the hot tier's by ``HotFile``, the cold tier's by ``tiers_reads.contains`` asked within
  that transaction). Retention (``tiers_ops.delete_older``) takes its turn between the groups.
- **Read threads**, each with its own connections to both files, run the reads of ``tiers_reads`` and
  ``tiers_ops``; the histogram is read from the hot file's rollups (``sqlite_stats``' code).
- **The compactor**, a process of its own (``tiered_compactor``), moves sealed generations to the cold
  file. The writer never waits on it: a generation sealed and not yet compacted stays readable in the hot
  file. What it costs when the compactor falls behind: every append looks its ids up in each hot
  generation (one indexed ``IN`` lookup per generation), so appends slow down in proportion to the
  generations waiting, and reads merge them all, and the hot file grows by the uncompressed rows.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Final, NamedTuple, TypeVar

import apsw
import msgspec

from logsvc.datadir import DataDir
from logsvc.domain.context import Context
from logsvc.domain.cursors import Position
from logsvc.domain.entries import LogEntry, NewEntry
from logsvc.domain.queries import Page, Query
from logsvc.domain.stats import MAX_COUNTED, ServiceTotal, StatsQuery
from logsvc.errors import ConfigError, StoreUnavailable
from logsvc.storage import tiers_ops, tiers_reads
from logsvc.storage.port import Arrivals, Export, OnCommit
from logsvc.storage.sqlite_schema import new_rows
from logsvc.storage.sqlite_stats import KEYS, check_countable_minutes, rollup_histogram, too_many_matches
from logsvc.storage.tiered_compactor import Compactor
from logsvc.storage.tiers import ROWS_PER_GENERATION, ColdFile, HotFile
from logsvc.storage.token_filter import Tokenizer
from logsvc.storage.writer import Job, Writer, plain_rows, turns_lock

__all__ = ["COLD_FILE", "HOT_FILE", "TieredStore"]

log = logging.getLogger(__name__)

HOT_FILE: Final = DataDir.HOT
COLD_FILE: Final = DataDir.COLD
# The page cache of each read thread's connection to the cold file, in KiB (SQLite's default is 2 MiB): a
# page body is about 17 pages of 4 KiB, each decrypted when read, and a rare word at 10M entries reads
# ~105 bodies (7 MiB), which a 2 MiB cache read in turn never keeps. A search read again (a viewer
# refreshing it) then finds them decrypted: ~75 us less a body (decision 42). Allocated as pages are
# read, up to this: at most 4 read threads x 16 MiB.
_READ_CACHE_KIB: Final = 16 * 1024

R = TypeVar("R")


class _Files(NamedTuple):
    """One thread's connections to the two files, and its tokenizer (FTS5's, on a connection of its own)."""

    hot: HotFile
    cold: ColdFile
    tokenizer: Tokenizer

    def close(self) -> None:
        self.tokenizer.close()
        self.cold.close()
        self.hot.close()


class TieredStore:
    """LogStore on the two files of storage v2 in ``path``; also Exportable (continuous archiving)."""

    def __init__(
        self,
        path: Path,
        *,
        read_threads: int = 4,
        on_commit: OnCommit | None = None,
        key: bytes | None = None,
        count_limit: int = MAX_COUNTED,
        rows_per_generation: int | None = None,
        compactor: bool = True,
    ) -> None:
        """``rows_per_generation``: entries per hot generation (``tiers.ROWS_PER_GENERATION`` when None).
        ``compactor``: run the compactor process beside this store (the server does; a store opened only
        to be read or tested alone need not)."""
        self.path = path
        self._key = key
        self._count_limit = count_limit
        try:
            path.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise ConfigError(f"cannot create the store {path}: {exc.strerror}") from None
        hot_path = path / HOT_FILE
        writing = _Files(
            HotFile(hot_path, key, rows_per_generation or ROWS_PER_GENERATION),
            ColdFile(path / COLD_FILE, key),
            Tokenizer(),
        )
        self._files: list[_Files] = []
        self._lock = threading.Lock()
        self._local = threading.local()
        self._read_pool = ThreadPoolExecutor(read_threads, thread_name_prefix="logsvc-read")
        self._writer = Writer(
            writing, _write, lock=turns_lock(hot_path), on_commit=on_commit, close=writing.close
        )
        self._compactor = Compactor(path, key) if compactor else None
        # the cold pages' summaries loaded now, not by the first read (errors: the first read reports them)
        self._read_pool.submit(lambda: tiers_reads.warm(self._reader().cold))

    # ---- writes ------------------------------------------------------------------------------------------

    async def append(self, entries: Sequence[NewEntry]) -> None:
        await self._writer.submit(new_rows(entries))

    async def check_writable(self) -> None:
        await self._writer.submit(None)

    async def delete_older(
        self,
        cutoff_us: int,
        *,
        include: tuple[str, ...] = (),
        exclude: tuple[str, ...] = (),
        limit: int = 500,
    ) -> int:
        """Retention on the writer, between the ingest groups (``tiers_ops.delete_older``)."""

        def delete(files: _Files) -> int:
            return tiers_ops.delete_older(
                files.hot, files.cold, cutoff_us, include=include, exclude=exclude, limit=limit
            )

        return int(await self._writer.submit(None, delete) or 0)

    # ---- reads -------------------------------------------------------------------------------------------

    async def export_after(self, after_seq: int, limit: int = 100_000) -> Export:
        return await self._read(lambda f: tiers_ops.export_after(f.hot, f.cold, after_seq, limit))

    async def oldest(self, *, include: tuple[str, ...] = (), exclude: tuple[str, ...] = ()) -> int | None:
        return await self._read(lambda f: tiers_ops.oldest(f.hot, f.cold, include=include, exclude=exclude))

    async def recent(self, query: Query) -> Page:
        return await self._read(lambda f: tiers_reads.recent(f.hot, f.cold, query, f.tokenizer))

    async def get(self, log_id: bytes) -> list[LogEntry]:
        return await self._read(lambda f: tiers_reads.get(f.hot, f.cold, log_id))

    @property
    def tail_delay(self) -> float:
        return 0.0  # a row is seen by every reader once its transaction committed

    async def arrivals(
        self, after: Position | None, *, limit: int, searches: Sequence[tuple[str, ...]] = ()
    ) -> Arrivals:
        terms = tuple(searches)
        return await self._read(
            lambda f: tiers_reads.arrivals(
                f.hot, f.cold, after, limit=limit, searches=terms, tokenizer=f.tokenizer
            )
        )

    async def histogram(self, query: StatsQuery) -> list[tuple[int, int | str, int]]:
        return await self._read(lambda f: _histogram(f, query, self._count_limit))

    async def services(
        self, patterns: tuple[str, ...], *, after: str | None = None, limit: int | None = None
    ) -> list[ServiceTotal]:
        return await self._read(
            lambda f: tiers_reads.services(f.hot, f.cold, patterns, after=after, limit=limit)
        )

    async def context(self, log_id: bytes, service: str, *, before: int, after: int) -> Context | None:
        return await self._read(
            lambda f: tiers_reads.context(f.hot, f.cold, log_id, service, before=before, after=after)
        )

    async def _read(self, read: Callable[[_Files], R]) -> R:
        """Run a read in the pool, on that thread's own connections to the two files."""
        if self._writer.closed:
            raise StoreUnavailable("the store is shutting down")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._read_pool, lambda: read(self._reader()))
        except apsw.Error as exc:
            log.error("store read failed: %s: %s", type(exc).__name__, exc)
            raise StoreUnavailable("the store could not be read") from None

    def _reader(self) -> _Files:
        files: _Files | None = getattr(self._local, "files", None)
        if files is None:
            files = _Files(
                HotFile(self.path / HOT_FILE, self._key),
                ColdFile(self.path / COLD_FILE, self._key),
                Tokenizer(),
            )
            files.cold.connection.execute(f"PRAGMA cache_size=-{_READ_CACHE_KIB}")
            self._local.files = files
            with self._lock:
                self._files.append(files)
        return files

    # ---- lifecycle ---------------------------------------------------------------------------------------

    async def close(self) -> None:
        if not await self._writer.close():
            return
        self._read_pool.shutdown(wait=True)
        for files in self._files:
            files.close()
        if self._compactor is not None:
            await asyncio.to_thread(self._compactor.stop)


def _write(files: _Files, group: list[Job[_Files]]) -> int:
    """A group's rows in one durable append, then its other work (retention, which runs its own
    transactions), or a writability probe when it has neither; how many rows it stored."""
    hot, cold = files.hot, files.cold
    rows = plain_rows(group)
    stored = hot.append(rows, lambda keys: tiers_reads.contains(hot, cold, keys)) if rows else 0
    works = [job for job in group if job.work is not None]
    for job in works:
        assert job.work is not None
        job.result = job.work(files)
    if not rows and not works:
        conn = hot.connection
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("COMMIT")
    return stored


def _histogram(files: _Files, query: StatsQuery, limit: int) -> list[tuple[int, int | str, int]]:
    """From the hot file's rollups, which count the entries of both tiers; else the entries counted one by
    one from both tiers, within the bounds of the SQLite store (``sqlite_stats``)."""
    filters = query.filters
    if filters.levels == ():
        return []
    if not filters.terms:
        counted = rollup_histogram(files.hot.connection, query)
        if counted is not None:
            return counted
        check_countable_minutes(files.hot.connection, query, limit)
    window = msgspec.structs.replace(filters, since_us=query.since_us, until_us=query.until_us, cursor=None)
    rows = tiers_reads.newest(files.hot, files.cold, window, limit + 1, files.tokenizer)
    if len(rows) > limit:
        raise too_many_matches(limit)
    by_level = KEYS[query.by] == "level"
    buckets: Counter[tuple[int, int | str]] = Counter(
        ((row[2] - query.since_us) // query.step_us, row[4] if by_level else row[3]) for row in rows
    )
    return [(bucket, key, n) for (bucket, key), n in buckets.items()]
