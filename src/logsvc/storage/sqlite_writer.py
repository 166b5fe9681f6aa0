"""The embedded store's one writer thread, with group commit.

Requests that arrive while a commit is in progress queue up and share the next transaction and fsync (group
commit), which is what makes durable single-entry ingest fast. Other work on the write connection (retention
deletes, writability probes) takes its turn between the ingest groups.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Final, cast

import apsw

from logsvc.errors import LogServiceError, StoreFull, StoreUnavailable
from logsvc.storage.sqlite_rollups import count_new_rows
from logsvc.storage.sqlite_schema import BLOCK_SHIFT, INDEX_NEW_ROWS, INSERT_ENTRY, INSERT_NUMBERED

__all__ = ["Writer"]

log = logging.getLogger("logsvc.storage.sqlite")

_MAX_GROUP_ROWS: Final = 50_000
# A transaction of duplicates only adds no row: its last_seq is the previous commit's, which stands.
_RECORD_COMMIT = "INSERT OR IGNORE INTO commits VALUES ((SELECT max(seq) FROM logs), ?)"
_LAST_COMMITTED = "SELECT coalesce(max(last_seq), 0) FROM commits"
_NEW_BLOCK_MAXIMA = f"SELECT seq >> {BLOCK_SHIFT}, max(ts) FROM logs WHERE seq > ? GROUP BY 1 ORDER BY 1"
_RAISE_WATERMARK = (
    "INSERT INTO ts_watermarks(block, max_ts) VALUES (?, ?) "
    "ON CONFLICT(block) DO UPDATE SET max_ts = max(max_ts, excluded.max_ts)"
)


class _Job:
    """Rows to insert, or other work on the write connection (neither: a writability probe), and the
    future of the request waiting on it."""

    __slots__ = ("future", "loop", "result", "rows", "work")

    def __init__(
        self,
        rows: list[tuple[Any, ...]] | None,
        work: Callable[[apsw.Connection], int] | None,
        future: asyncio.Future[int | None],
        loop: asyncio.AbstractEventLoop,
    ):
        self.rows = rows
        self.work = work
        self.future = future
        self.loop = loop
        self.result: int | None = None


_STOP: Final = object()


class Writer:
    """The thread that owns the write connection; requests wait on a future until their COMMIT returned."""

    def __init__(self, conn: apsw.Connection, on_commit: Callable[[int], None] | None) -> None:
        self._conn = conn
        self._on_commit = on_commit
        # Writers of other processes (uvicorn's workers) on the same file take turns through this lock,
        # woken as soon as it is free, instead of polling SQLite's lock in SQLite's busy handler, whose
        # sleeps (up to 100 ms a step) made the p99 of two workers 0.3-2.8 s. SQLite's own lock still
        # guards the file against every other writer.
        path = conn.filename
        self._turns = (
            os.open(f"{path}-writer.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600) if path else None
        )
        self._jobs: queue.SimpleQueue[_Job | object] = queue.SimpleQueue()
        self._closing = threading.Lock()
        self.closed = False
        self._thread = threading.Thread(target=self._write_loop, name="logsvc-writer", daemon=True)
        self._thread.start()

    async def submit(
        self, rows: list[tuple[Any, ...]] | None, work: Callable[[apsw.Connection], int] | None = None
    ) -> int | None:
        """Rows to insert, or other work on the write connection (neither: a writability probe); waits for
        the COMMIT that holds it and returns what the work returned."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[int | None] = loop.create_future()
        with self._closing:
            if self.closed:
                raise StoreUnavailable("the store is shutting down; nothing from this request was stored")
            self._jobs.put(_Job(rows, work, future, loop))
        return await future

    async def close(self) -> bool:
        """Finish every accepted write and close the connection; False when already closed."""
        with self._closing:
            if self.closed:
                return False
            self.closed = True
            self._jobs.put(_STOP)
        await asyncio.to_thread(self._thread.join)
        return True

    def _write_loop(self) -> None:
        stopping = False
        while not stopping:
            item = self._jobs.get()
            if item is _STOP:
                break
            # The group is gathered only once this writer has its turn: what arrived while another
            # worker's writer committed joins it, so each turn commits (and fsyncs) as much as there is.
            with self._turn():
                group, count, stopping = self._gather(item)
                outcomes = self._commit_group(group)
            _settle(group, outcomes)
            if self._on_commit is not None and count:
                self._on_commit(count)
        self._conn.close()
        if self._turns is not None:
            os.close(self._turns)

    def _gather(self, item: object) -> tuple[list[_Job], int, bool]:
        """The group of ``item`` and every job queued behind it (up to the group's limit); the count of
        rows; whether the stop came with them."""
        group: list[_Job] = []
        count = 0
        while True:
            if item is _STOP:
                return group, count, True
            assert isinstance(item, _Job)
            group.append(item)
            count += len(item.rows or ())
            if count >= _MAX_GROUP_ROWS:
                return group, count, False
            try:
                item = self._jobs.get_nowait()
            except queue.Empty:
                return group, count, False

    @contextlib.contextmanager
    def _turn(self) -> Iterator[None]:
        if self._turns is None:
            yield
            return
        fcntl.flock(self._turns, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._turns, fcntl.LOCK_UN)

    def _commit_group(self, group: list[_Job]) -> list[LogServiceError | None]:
        try:
            self._write(group)
            return [None] * len(group)
        except apsw.Error as exc:
            if len(group) == 1:
                return [self._translate(exc)]
        # One request must not fail the others that happened to share its transaction.
        outcomes: list[LogServiceError | None] = []
        for job in group:
            try:
                self._write([job])
                outcomes.append(None)
            except apsw.Error as single_exc:
                outcomes.append(self._translate(single_exc))
        return outcomes

    def _write(self, group: list[_Job]) -> None:
        conn = self._conn
        rows = [row for job in group if job.rows for row in job.rows]
        try:
            conn.execute("BEGIN IMMEDIATE")
            if rows:
                last_seq = cast(int, conn.execute("SELECT coalesce(max(seq), 0) FROM logs").get)
                committed = cast(int, conn.execute(_LAST_COMMITTED).get)
                if last_seq >= committed:
                    conn.executemany(INSERT_ENTRY, rows)
                else:
                    # The newest rows were deleted (a purge): SQLite would number the next ones as theirs.
                    numbered = [(committed + i, *row) for i, row in enumerate(rows, 1)]
                    conn.executemany(INSERT_NUMBERED, numbered)
                conn.execute(INDEX_NEW_ROWS, (last_seq,))
                count_new_rows(conn, last_seq)  # the rollups, in the entries' own transaction
                self._raise_watermarks(conn, last_seq)
                conn.execute(_RECORD_COMMIT, (time.time_ns() // 1000,))
            for job in group:
                if job.work is not None:
                    job.result = job.work(conn)
            conn.execute("COMMIT")
        except apsw.Error:
            if not conn.getautocommit():
                conn.execute("ROLLBACK")
            raise

    @staticmethod
    def _raise_watermarks(conn: apsw.Connection, last_seq: int) -> None:
        """Keep each touched block's max_ts at least the largest event time of every row up to its end."""
        previous = conn.execute("SELECT max_ts FROM ts_watermarks ORDER BY block DESC LIMIT 1").fetchone()
        running: int = previous[0] if previous else 0
        raised = []
        for block, block_max in cast(
            list[tuple[int, int]], conn.execute(_NEW_BLOCK_MAXIMA, (last_seq,)).fetchall()
        ):
            running = max(running, block_max)
            raised.append((block, running))
        conn.executemany(_RAISE_WATERMARK, raised)

    def _translate(self, exc: apsw.Error) -> LogServiceError:
        log.error("store write failed: %s: %s", type(exc).__name__, exc)
        if isinstance(exc, apsw.FullError):
            return StoreFull("the disk holding the store is full; nothing from this request was stored")
        if isinstance(exc, apsw.BusyError | apsw.LockedError):
            return StoreUnavailable("the store is busy; nothing from this request was stored, retry later")
        return StoreUnavailable("the store could not write; nothing from this request was stored")


def _settle(group: list[_Job], outcomes: list[LogServiceError | None]) -> None:
    """Complete every waiting request, with one wake-up per event loop rather than one per request."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Job, LogServiceError | None]]] = {}
    for job, outcome in zip(group, outcomes, strict=True):
        by_loop.setdefault(job.loop, []).append((job, outcome))
    for loop, pairs in by_loop.items():
        try:
            loop.call_soon_threadsafe(_complete, pairs)
        except RuntimeError:
            log.warning("a request's event loop closed before its write completed")


def _complete(pairs: list[tuple[_Job, LogServiceError | None]]) -> None:
    for job, outcome in pairs:
        if job.future.done():
            continue
        if outcome is None:
            job.future.set_result(job.result)
        else:
            job.future.set_exception(outcome)
