"""A store's one writer thread, with group commit; shared by the embedded engines (``sqlite_writer`` for
the SQLite store, ``tiered`` for storage v2), which give it the transaction that writes a group.

Requests that arrive while a commit is in progress queue up and share the next transaction and fsync (group
commit), which is what makes durable single-entry ingest fast. Other work on the write target (retention
deletes, writability probes) takes its turn between the ingest groups. A request is answered only once the
transaction holding it returned: that is the durable hand-off of every acknowledgement.
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
from pathlib import Path
from typing import Any, Final, Generic, TypeVar

import apsw
import msgspec

from logsvc.errors import LogServiceError, StoreFull, StoreUnavailable
from logsvc.storage.port import OnCommit

__all__ = [
    "Encoded",
    "Frame",
    "Job",
    "LoopBatches",
    "Rows",
    "Transaction",
    "Writer",
    "plain_rows",
    "taking_turns",
    "translate",
    "turns_lock",
]

log = logging.getLogger("logsvc.storage.sqlite")

_MAX_GROUP_ROWS: Final = 50_000
# A loop's batch is handed over as soon as it holds this many jobs, not only at the end of the loop's turn:
# the writer commits the first requests of a busy turn while the loop still reads the others. With one
# hand-over a turn, the loop and the writer took turns instead (the loop idle while a group committed, the
# writer idle while the loop read the next): 5% more single POSTs a second at 64 connections on a quiet
# machine, at some writer CPU (smaller groups; decision 44).
_HAND_OVER_AT: Final = 16
T = TypeVar("T")


def turns_lock(database: Path) -> Path:
    """The lock file through which the processes writing ``database`` take turns."""
    return database.with_name(f"{database.name}-writer.lock")


@contextlib.contextmanager
def taking_turns(fd: int | None) -> Iterator[None]:
    """Hold the turns lock open at ``fd`` (nothing when None) while the body writes."""
    if fd is None:
        yield
        return
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)


Rows = list[tuple[Any, ...]]


class Encoded(msgspec.Struct, array_like=True, gc=False):
    """Rows their sender encoded already (a worker of a shared writer, whose CPU is not the writer's): how
    many, their log_ids end to end, and their other values as JSON arrays separated by commas."""

    count: int
    ids: bytes
    values: bytes

    def __len__(self) -> int:
        return self.count


def plain_rows(group: list[Job[T]]) -> Rows:
    """The rows of ``group``, for an engine that takes no ``Encoded`` rows."""
    rows: Rows = []
    for job in group:
        if isinstance(job.rows, Encoded):
            raise TypeError("this engine takes rows, not encoded rows")
        if job.rows:
            rows += job.rows
    return rows


class Job(Generic[T]):
    """Rows to insert, or other work on the write target (neither: a writability probe), and who waits
    for it: the future of a request and its event loop, or the ``Frame`` of another process's requests;
    ``result`` is what the work returned."""

    __slots__ = ("future", "result", "rows", "waiter", "work")

    def __init__(
        self,
        rows: Rows | Encoded | None,
        work: Callable[[T], int] | None,
        future: asyncio.Future[int | None] | None,
        waiter: asyncio.AbstractEventLoop | Frame,
    ):
        self.rows = rows
        self.work = work
        self.future = future
        self.waiter = waiter
        self.result: int | None = None


class Frame:
    """Requests of another process (the workers of a shared writer), settled together: ``settle`` gets
    their outcomes in order once the transaction holding them returned."""

    __slots__ = ("jobs", "settle")

    def __init__(
        self,
        rows_of_requests: list[Encoded],
        settle: Callable[[list[LogServiceError | None]], None],
    ) -> None:
        self.jobs: list[Job[Any]] = [Job(rows, None, None, self) for rows in rows_of_requests]
        self.settle = settle


# Writes a group's rows and runs its work in one transaction (all or nothing: rolled back when it raises);
# returns how many of the rows it stored (not those whose log_id their service holds already: retries).
Transaction = Callable[[T, list[Job[T]]], int]
X = TypeVar("X")


class LoopBatches(Generic[X]):
    """What each event loop adds in one turn, handed over as one list: one hand-over (a lock, a queue put
    or a socket write, maybe a thread's wake-up) for the requests of a turn, not one per request. At the
    turn's end, or as soon as it holds ``_HAND_OVER_AT``."""

    def __init__(self, hand_over: Callable[[list[X]], None]) -> None:
        self._hand_over = hand_over
        self._batches: dict[asyncio.AbstractEventLoop, list[X]] = {}

    def add(self, loop: asyncio.AbstractEventLoop, item: X) -> None:
        batch = self._batches.get(loop)
        if batch is None:
            batch = self._batches[loop] = []
            loop.call_soon(self.flush, loop)
        batch.append(item)
        if len(batch) >= _HAND_OVER_AT:
            self.flush(loop)

    def flush(self, loop: asyncio.AbstractEventLoop) -> None:
        batch = self._batches.pop(loop, None)
        if batch is not None:  # else handed over already: full, or taken
            self._hand_over(batch)

    def take(self, loop: asyncio.AbstractEventLoop) -> list[X] | None:
        """The loop's batch, not to be handed over."""
        return self._batches.pop(loop, None)


_STOP: Final = object()
_SHUTTING_DOWN: Final = "the store is shutting down; nothing from this request was stored"


class Writer(Generic[T]):
    """The thread that owns the write target (a connection, or the files of one); requests wait on a
    future until the transaction holding them returned."""

    def __init__(
        self,
        target: T,
        transaction: Transaction[T],
        *,
        lock: Path | None,
        on_commit: OnCommit | None,
        close: Callable[[], None],
    ) -> None:
        self._target = target
        self._transaction_of = transaction
        self._close_target = close
        self._on_commit = on_commit
        # Writers of other processes (uvicorn's workers, a compactor) on the same file take turns through
        # this lock, woken as soon as it is free, instead of polling SQLite's lock in SQLite's busy
        # handler, whose sleeps (up to 100 ms a step) made the p99 of two workers 0.3-2.8 s. SQLite's own
        # lock still guards the file against every other writer.
        self._turns = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600) if lock else None
        self._jobs: queue.SimpleQueue[list[Job[T]] | object] = queue.SimpleQueue()
        self._batches = LoopBatches(self._hand_over)
        self._closing = threading.Lock()
        self.closed = False
        self._thread = threading.Thread(target=self._write_loop, name="logsvc-writer", daemon=True)
        self._thread.start()

    async def submit(
        self, rows: list[tuple[Any, ...]] | None, work: Callable[[T], int] | None = None
    ) -> int | None:
        """Rows to insert, or other work on the write target (neither: a writability probe); waits for the
        transaction that holds it and returns what the work returned."""
        if self.closed:
            raise StoreUnavailable(_SHUTTING_DOWN)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[int | None] = loop.create_future()
        self._batches.add(loop, Job(rows, work, future, loop))
        return await future

    def put(self, frame: Frame) -> None:
        """Another process's requests, in one group (as one loop's batch); settled at once when closed."""
        with self._closing:
            if not self.closed:
                self._jobs.put(frame.jobs)
                return
        frame.settle([StoreUnavailable(_SHUTTING_DOWN)] * len(frame.jobs))

    def _hand_over(self, batch: list[Job[T]]) -> None:
        with self._closing:
            if not self.closed:
                self._jobs.put(batch)
                return
        for job in batch:
            if job.future is not None and not job.future.done():
                job.future.set_exception(StoreUnavailable(_SHUTTING_DOWN))

    async def close(self) -> bool:
        """Finish every accepted write and close the target; False when already closed."""
        with self._closing:
            if self.closed:
                return False
            self.closed = True
            batch = self._batches.take(asyncio.get_running_loop())
            if batch is not None:
                self._jobs.put(batch)  # accepted before the close: written before the stop
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
            with taking_turns(self._turns):
                group, stopping = self._gather(item)
                outcomes, commits = self._commit_group(group)
            # Counted before the requests are answered, so that a client's next scrape counts its own.
            if self._on_commit is not None:
                for stored, seconds in commits:
                    try:
                        self._on_commit(stored, seconds)
                    except Exception:  # the writer thread must outlive it
                        log.exception("the store's commit could not be counted")
            _settle(group, outcomes)
        self._close_target()
        if self._turns is not None:
            os.close(self._turns)

    def _gather(self, item: object) -> tuple[list[Job[T]], bool]:
        """The group of ``item`` and every job queued behind it (up to the group's limit); whether the stop
        came with them."""
        group: list[Job[T]] = []
        count = 0
        while True:
            if item is _STOP:
                return group, True
            assert isinstance(item, list)
            group.extend(item)
            count += _rows_in(item)
            if count >= _MAX_GROUP_ROWS:
                return group, False
            try:
                item = self._jobs.get_nowait()
            except queue.Empty:
                return group, False

    def _commit_group(
        self, group: list[Job[T]]
    ) -> tuple[list[LogServiceError | None], list[tuple[int, float]]]:
        """Each job's outcome, and the rows stored and seconds of each transaction of rows that committed
        (not retention's or a probe's alone): the group's, or, when it failed, those of its jobs written one
        by one (each a commit of its own)."""
        started = time.perf_counter()
        try:
            stored = self._transaction_of(self._target, group)
            seconds = time.perf_counter() - started
            return [None] * len(group), [(stored, seconds)] if _rows_in(group) else []
        except Exception as exc:  # the thread must outlive any failure, or every later write would hang
            if len(group) == 1:
                return [translate(exc)], []
        # One request must not fail the others that happened to share its transaction.
        outcomes: list[LogServiceError | None] = []
        commits: list[tuple[int, float]] = []
        for job in group:
            started = time.perf_counter()
            try:
                stored = self._transaction_of(self._target, [job])
                if _rows_in([job]):
                    commits.append((stored, time.perf_counter() - started))
                outcomes.append(None)
            except Exception as single_exc:
                outcomes.append(translate(single_exc))
        return outcomes, commits


def _rows_in(jobs: list[Job[T]]) -> int:
    return sum(len(job.rows or ()) for job in jobs)


def translate(exc: Exception) -> LogServiceError:
    """A write's failure in the service's terms (logged: the client sees no details)."""
    if isinstance(exc, LogServiceError):
        return exc  # a rule the work applied, already in the service's terms
    if not isinstance(exc, apsw.Error):
        log.exception("store write failed")
        return StoreUnavailable("the store could not write; nothing from this request was stored")
    log.error("store write failed: %s: %s", type(exc).__name__, exc)
    if isinstance(exc, apsw.FullError):
        return StoreFull("the disk holding the store is full; nothing from this request was stored")
    if isinstance(exc, apsw.BusyError | apsw.LockedError):
        return StoreUnavailable("the store is busy; nothing from this request was stored, retry later")
    return StoreUnavailable("the store could not write; nothing from this request was stored")


def _settle(group: list[Job[T]], outcomes: list[LogServiceError | None]) -> None:
    """Complete every waiting request, with one wake-up per event loop rather than one per request, and
    one settle per frame (a frame's jobs are one item of the queue: always in the same group)."""
    by_waiter: dict[asyncio.AbstractEventLoop | Frame, list[tuple[Job[T], LogServiceError | None]]] = {}
    for job, outcome in zip(group, outcomes, strict=True):
        by_waiter.setdefault(job.waiter, []).append((job, outcome))
    for waiter, pairs in by_waiter.items():
        if isinstance(waiter, Frame):
            try:
                waiter.settle([outcome for _, outcome in pairs])
            except Exception:  # the writer thread must outlive it
                log.exception("a frame's outcomes could not be sent")
            continue
        try:
            waiter.call_soon_threadsafe(_complete, pairs)
        except RuntimeError:
            log.warning("a request's event loop closed before its write completed")


def _complete(pairs: list[tuple[Job[T], LogServiceError | None]]) -> None:
    for job, outcome in pairs:
        if job.future is None or job.future.done():
            continue
        if outcome is None:
            job.future.set_result(job.result)
        else:
            job.future.set_exception(outcome)
