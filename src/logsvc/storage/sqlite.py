"""The embedded store: one SQLite file in WAL mode, one writer thread with group commit, reads in a pool.

The schema and connections are in ``sqlite_schema``, the writer in ``sqlite_writer``, the read paths in
``sqlite_reads``; this module holds the store that composes them and decides where each read runs.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Final, TypeVar, cast

import apsw

from logsvc.domain.context import Context
from logsvc.domain.cursors import Position
from logsvc.domain.entries import LogEntry, NewEntry
from logsvc.domain.queries import Page, Query
from logsvc.domain.stats import MAX_COUNTED, ServiceTotal, StatsQuery
from logsvc.errors import ConfigError, StoreUnavailable
from logsvc.storage.encoded import DEFAULT_ENCODED_BYTES, EncodedEntries
from logsvc.storage.port import Arrivals, Export, OnCommit
from logsvc.storage.shared_writer import WriterClient
from logsvc.storage.sqlite_reads import (
    NEWEST_FIRST,
    arrivals,
    entry,
    own_cursor,
    own_position,
    recent,
    recent_json,
    service_scope,
)
from logsvc.storage.sqlite_schema import COLUMNS, Row, make_private, new_rows, open_connection
from logsvc.storage.sqlite_stats import context, histogram, services
from logsvc.storage.sqlite_writer import sqlite_writer

__all__ = ["SQLiteStore"]

log = logging.getLogger(__name__)

_INLINE_BUDGET_SECONDS: Final = 0.005
_PROGRESS_STEPS: Final = 1_000

A = TypeVar("A")
R = TypeVar("R")


class SQLiteStore:
    """LogStore on one SQLite database file; also Exportable (continuous archiving) and EncodedReads (the
    JSON of its entries kept for the reads that come again: ``encoded_bytes`` of it)."""

    def __init__(
        self,
        path: Path,
        *,
        read_threads: int = 4,
        on_commit: OnCommit | None = None,
        inline_read_budget: float = _INLINE_BUDGET_SECONDS,
        key: bytes | None = None,
        count_limit: int = MAX_COUNTED,
        encoded_bytes: int = DEFAULT_ENCODED_BYTES,
        shared_writer: str | None = None,
    ) -> None:
        self.path = path
        self._key = key
        self._count_limit = count_limit
        self._inline_budget = inline_read_budget
        self._encoded = EncodedEntries(encoded_bytes)
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            make_private(path)
        except OSError as exc:
            raise ConfigError(f"cannot create the store {path}: {exc.strerror}") from None
        writer_conn = open_connection(path, key, write=True)
        self._readers: list[apsw.Connection] = []
        self._inline: apsw.Connection | None = None
        self._inline_deadline = 0.0
        self._local = threading.local()
        self._read_pool = ThreadPoolExecutor(read_threads, thread_name_prefix="logsvc-read")
        self._writer = sqlite_writer(writer_conn, on_commit)
        # Several worker processes: their rows go to the supervisor's one writer (decision 46); this
        # writer does the rest (deletions, probes), and the rows too when that one cannot be reached.
        self._client = WriterClient(shared_writer, self._writer) if shared_writer else None
        self._append = self._client.submit if self._client else self._writer.submit

    def _reader(self) -> apsw.Connection:
        conn: apsw.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = open_connection(self.path, self._key, write=False)
            self._local.conn = conn
            self._readers.append(conn)
        return conn

    # ---- writes ------------------------------------------------------------------------------------------

    async def append(self, entries: Sequence[NewEntry]) -> None:
        await self._append(new_rows(entries))

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
        """Delete up to ``limit`` of the oldest entries before ``cutoff_us`` whose service matches one of
        ``include`` (all when empty) and none of ``exclude``; the number deleted. One small transaction on
        the writer, between the ingest groups, so a large deletion never holds ingest up for long."""
        where, args = service_scope("", include, exclude)
        sql = f"DELETE FROM logs WHERE seq IN (SELECT seq FROM logs WHERE ts < ?{where} ORDER BY ts LIMIT ?)"

        def delete(conn: apsw.Connection) -> int:
            conn.execute(sql, [cutoff_us, *args, limit])
            return conn.changes()

        return cast(int, await self._writer.submit(None, delete))

    # ---- reads -------------------------------------------------------------------------------------------

    async def export_after(self, after_seq: int, limit: int = 100_000) -> Export:
        """Rows that arrived after ``after_seq`` (at most ``limit``), with the commit records covering them,
        from one snapshot: a row and its commit record are written by the same transaction."""

        def export(conn: apsw.Connection, _: None) -> Export:
            with conn:  # one read transaction for both queries
                rows = cast(
                    list[Row],
                    conn.execute(
                        f"SELECT {COLUMNS} FROM logs WHERE seq > ? ORDER BY seq LIMIT ?", (after_seq, limit)
                    ).fetchall(),
                )
                last = rows[-1][0] if rows else after_seq
                commits = cast(
                    list[tuple[int, int]],
                    conn.execute(
                        "SELECT last_seq, committed_at FROM commits WHERE last_seq > ? ORDER BY last_seq",
                        (after_seq,),
                    ).fetchall(),
                )
            covering = []
            for commit in commits:  # up to the commit of the last row, which may hold later rows too
                covering.append(commit)
                if commit[0] >= last:
                    break
            return Export(rows=list(rows), commits=covering if rows else [], last_seq=last)

        return await self._read(export, None)

    async def oldest(self, *, include: tuple[str, ...] = (), exclude: tuple[str, ...] = ()) -> int | None:
        """The event time of the oldest entry in scope, if any."""
        where, args = service_scope("", include, exclude)
        sql = f"SELECT ts FROM logs WHERE 1{where} ORDER BY ts LIMIT 1"

        def first(conn: apsw.Connection, _: None) -> int | None:
            row = conn.execute(sql, args).fetchone()
            return cast(int, row[0]) if row else None

        return await self._read(first, None)

    async def recent(self, query: Query) -> Page:
        return await self._read(recent, own_cursor(query))

    async def recent_json(self, query: Query) -> bytes:
        encoded = self._encoded
        return await self._read(lambda conn, q: recent_json(conn, q, encoded), own_cursor(query))

    async def get(self, log_id: bytes) -> list[LogEntry]:
        return await self._read(_get, log_id)

    @property
    def tail_delay(self) -> float:
        return 0.0  # a row is seen by every reader once its transaction committed

    async def arrivals(
        self, after: Position | None, *, limit: int, searches: Sequence[tuple[str, ...]] = ()
    ) -> Arrivals:
        own_position(after)
        terms = tuple(searches)
        return await self._read(lambda conn, _: arrivals(conn, after, limit, terms), None)

    async def histogram(self, query: StatsQuery) -> list[tuple[int, int | str, int]]:
        return await self._read(histogram, (query, self._count_limit))

    async def services(
        self, patterns: tuple[str, ...], *, after: str | None = None, limit: int | None = None
    ) -> list[ServiceTotal]:
        return await self._read(services, (patterns, after, limit))

    async def context(self, log_id: bytes, service: str, *, before: int, after: int) -> Context | None:
        return await self._read(context, (log_id, service, before, after))

    async def _read(self, function: Callable[[apsw.Connection, A], R], argument: A) -> R:
        """Run a read on the event loop's own connection within a small time budget, else in the pool.

        Most reads take a fraction of a millisecond, and their cost is Python building rows, which holds
        the GIL: handing them to reader threads only adds a GIL hand-over per row (threads slow each other
        down). A read that overruns the budget is interrupted and run again in the pool, so a slow query
        never stalls the loop for long.
        """
        if self._writer.closed:
            raise StoreUnavailable("the store is shutting down")
        try:
            self._inline_deadline = time.perf_counter() + self._inline_budget
            try:
                return function(self._inline_reader(), argument)
            except apsw.InterruptError:
                pass
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._read_pool, lambda: function(self._reader(), argument))
        except apsw.Error as exc:
            log.error("store read failed: %s: %s", type(exc).__name__, exc)
            raise StoreUnavailable("the store could not be read") from None

    def _inline_reader(self) -> apsw.Connection:
        if self._inline is None:
            self._inline = open_connection(self.path, self._key, write=False)
            self._inline.set_progress_handler(self._over_budget, _PROGRESS_STEPS)
        return self._inline

    def _over_budget(self) -> bool:
        return time.perf_counter() > self._inline_deadline

    # ---- lifecycle ---------------------------------------------------------------------------------------

    async def close(self) -> None:
        if self._client is not None:
            self._client.close()
        if not await self._writer.close():
            return
        self._read_pool.shutdown(wait=True)
        for conn in [*self._readers, *([self._inline] if self._inline else [])]:
            conn.close()


def _get(conn: apsw.Connection, log_id: bytes) -> list[LogEntry]:
    rows = conn.execute(f"SELECT {COLUMNS} FROM logs WHERE log_id = ? {NEWEST_FIRST}", (log_id,))
    return [entry(cast(Row, row)) for row in rows]
