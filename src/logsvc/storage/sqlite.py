"""The embedded store: one SQLite file in WAL mode, one writer thread with group commit, reads in a pool.

Durability: ``synchronous=FULL`` makes every COMMIT fsync the WAL, and a request is acknowledged only after
the COMMIT that holds its entries returned. Requests that arrive while a commit is in progress queue up
and share the next transaction and fsync (group commit), which is what makes durable single-entry
ingest fast.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Final, TypeAlias, TypeVar, cast

import apsw
import msgspec

from logsvc.crypto.sqlite import connect
from logsvc.domain.cursors import encode_cursor
from logsvc.domain.entries import Level, LogEntry, NewEntry, entry_bytes, format_log_id
from logsvc.domain.queries import MAX_PAGE_BYTES, Page, Query
from logsvc.domain.timestamps import format_timestamp
from logsvc.errors import (
    ConfigError,
    FieldError,
    LogServiceError,
    StoreFull,
    StoreUnavailable,
    ValidationFailed,
)
from logsvc.scopes import sql_glob
from logsvc.storage import Export

__all__ = ["SQLiteStore", "ServiceStats", "StoreStats", "destroy_sqlite", "snapshot_sqlite", "store_stats"]

log = logging.getLogger(__name__)

SCHEMA_VERSION: Final = 3
# Rows are grouped in blocks of 2**12 arrival numbers for the full-text search watermarks (see _search).
BLOCK_SHIFT: Final = 12
_MAX_GROUP_ROWS: Final = 50_000
_BUSY_TIMEOUT_MS: Final = 5_000
_INLINE_BUDGET_SECONDS: Final = 0.005
_PROGRESS_STEPS: Final = 1_000

LOGS_TABLE = """
CREATE TABLE IF NOT EXISTS logs (
    seq INTEGER PRIMARY KEY,
    log_id BLOB NOT NULL,
    ts INTEGER NOT NULL,
    service TEXT NOT NULL,
    level INTEGER NOT NULL,
    log_type TEXT NOT NULL,
    message TEXT NOT NULL,
    metadata TEXT,
    received INTEGER NOT NULL
) STRICT;
"""
_SCHEMA = (
    LOGS_TABLE
    + f"""
-- A log_id is unique within its service (decision 15): a writer cannot make another service's entry vanish.
CREATE UNIQUE INDEX IF NOT EXISTS logs_log_id_service ON logs(log_id, service);
CREATE INDEX IF NOT EXISTS logs_ts ON logs(ts);
CREATE INDEX IF NOT EXISTS logs_service_ts ON logs(service, ts);
CREATE INDEX IF NOT EXISTS logs_level_ts ON logs(level, ts);
CREATE INDEX IF NOT EXISTS logs_service_level_ts ON logs(service, level, ts);
CREATE VIRTUAL TABLE IF NOT EXISTS logs_fts USING fts5(
    message, content='logs', content_rowid='seq', tokenize='unicode61 remove_diacritics 2'
);
-- max_ts of block b is the largest event time of any row whose seq is below (b + 1) << {BLOCK_SHIFT}.
CREATE TABLE IF NOT EXISTS ts_watermarks (block INTEGER PRIMARY KEY, max_ts INTEGER NOT NULL) STRICT;
-- When each transaction committed, by the last arrival number it holds: point-in-time restore needs it.
CREATE TABLE IF NOT EXISTS commits (last_seq INTEGER PRIMARY KEY, committed_at INTEGER NOT NULL) STRICT;
-- Fewer, larger merges of the index's segments: ingest is write-heavy and searches read few segments.
INSERT INTO logs_fts(logs_fts, rank) VALUES ('automerge', 16);
CREATE TRIGGER IF NOT EXISTS logs_after_delete AFTER DELETE ON logs BEGIN
    INSERT INTO logs_fts(logs_fts, rowid, message) VALUES ('delete', old.seq, old.message);
END;
"""
)

INSERT_ENTRY = (
    "INSERT INTO logs(log_id, ts, service, level, log_type, message, metadata, received) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(log_id, service) DO NOTHING"
)
_NEWEST_FIRST = "ORDER BY ts DESC, seq DESC"
# A transaction of duplicates only adds no row: its last_seq is the previous commit's, which stands.
_RECORD_COMMIT = "INSERT OR IGNORE INTO commits VALUES ((SELECT max(seq) FROM logs), ?)"
# The full-text index and the watermarks are written by explicit statements over the rows a transaction
# added, not by an AFTER INSERT trigger: FTS5 fed row by row from a trigger ingests about 4x slower.
INDEX_NEW_ROWS = "INSERT INTO logs_fts(rowid, message) SELECT seq, message FROM logs WHERE seq > ?"
_NEW_BLOCK_MAXIMA = f"SELECT seq >> {BLOCK_SHIFT}, max(ts) FROM logs WHERE seq > ? GROUP BY 1 ORDER BY 1"
_RAISE_WATERMARK = (
    "INSERT INTO ts_watermarks(block, max_ts) VALUES (?, ?) "
    "ON CONFLICT(block) DO UPDATE SET max_ts = max(max_ts, excluded.max_ts)"
)
_COLUMNS = "seq, log_id, ts, service, level, log_type, message, metadata, received"
_LEVEL_NAMES: Final = {int(level): level.name for level in Level}

Row: TypeAlias = tuple[int, bytes, int, str, int, str, str, str | None, int]
A = TypeVar("A")
R = TypeVar("R")


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


class SQLiteStore:
    """LogStore on one SQLite database file."""

    def __init__(
        self,
        path: Path,
        *,
        read_threads: int = 4,
        on_commit: Callable[[int], None] | None = None,
        inline_read_budget: float = _INLINE_BUDGET_SECONDS,
        key: bytes | None = None,
    ) -> None:
        self.path = path
        self._key = key
        self._inline_budget = inline_read_budget
        self._on_commit = on_commit
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            _make_private(path)
        except OSError as exc:
            raise ConfigError(f"cannot create the store {path}: {exc.strerror}") from None
        self._writer_conn = self._connect(write=True)
        self._jobs: queue.SimpleQueue[_Job | object] = queue.SimpleQueue()
        self._closing = threading.Lock()
        self._closed = False
        self._readers: list[apsw.Connection] = []
        self._inline: apsw.Connection | None = None
        self._inline_deadline = 0.0
        self._local = threading.local()
        self._read_pool = ThreadPoolExecutor(read_threads, thread_name_prefix="logsvc-read")
        self._writer = threading.Thread(target=self._write_loop, name="logsvc-writer", daemon=True)
        self._writer.start()

    # ---- connections -------------------------------------------------------------------------------------

    def _connect(self, *, write: bool) -> apsw.Connection:
        conn = connect(self.path, self._key)
        try:
            conn.set_busy_timeout(_BUSY_TIMEOUT_MS)
            if write:
                conn.execute("PRAGMA journal_mode=WAL").fetchall()
                conn.execute("PRAGMA synchronous=FULL")
                conn.execute("PRAGMA journal_size_limit=67108864")
                self._migrate(conn)
            else:
                conn.execute("PRAGMA query_only=ON")
            conn.execute("PRAGMA cache_size=-32000")
        except apsw.Error as exc:
            raise ConfigError(f"cannot open the store at {self.path}: {exc}") from None
        return conn

    @staticmethod
    def _migrate(conn: apsw.Connection) -> None:
        (version,) = conn.execute("PRAGMA user_version").fetchone() or (0,)
        if version > SCHEMA_VERSION:
            raise ConfigError(
                f"the store has schema version {version}; this logsvc knows only up to {SCHEMA_VERSION}"
            )
        if version < SCHEMA_VERSION:
            with conn:
                conn.execute("DROP INDEX IF EXISTS logs_log_id")  # version 2: log_id unique store-wide
                conn.execute(_SCHEMA)
                conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def _reader(self) -> apsw.Connection:
        conn: apsw.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect(write=False)
            self._local.conn = conn
            self._readers.append(conn)
        return conn

    # ---- writes ------------------------------------------------------------------------------------------

    async def append(self, entries: Sequence[NewEntry]) -> None:
        rows = [
            (
                e.log_id,
                e.ts_us,
                e.service_name,
                int(e.level),
                e.log_type,
                e.message,
                e.metadata,
                e.received_us,
            )
            for e in entries
        ]
        await self._submit(rows)

    async def check_writable(self) -> None:
        await self._submit(None)

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
        where, args = _service_scope("", include, exclude)
        sql = f"DELETE FROM logs WHERE seq IN (SELECT seq FROM logs WHERE ts < ?{where} ORDER BY ts LIMIT ?)"

        def delete(conn: apsw.Connection) -> int:
            conn.execute(sql, [cutoff_us, *args, limit])
            return conn.changes()

        return cast(int, await self._submit(None, delete))

    async def export_after(self, after_seq: int, limit: int = 100_000) -> Export:
        """Rows that arrived after ``after_seq`` (at most ``limit``), with the commit records covering them,
        from one snapshot: a row and its commit record are written by the same transaction."""

        def export(conn: apsw.Connection, _: None) -> Export:
            with conn:  # one read transaction for both queries
                rows = cast(
                    list[Row],
                    conn.execute(
                        f"SELECT {_COLUMNS} FROM logs WHERE seq > ? ORDER BY seq LIMIT ?", (after_seq, limit)
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
        where, args = _service_scope("", include, exclude)
        sql = f"SELECT ts FROM logs WHERE 1{where} ORDER BY ts LIMIT 1"

        def first(conn: apsw.Connection, _: None) -> int | None:
            row = conn.execute(sql, args).fetchone()
            return cast(int, row[0]) if row else None

        return await self._read(first, None)

    async def _submit(
        self, rows: list[tuple[Any, ...]] | None, work: Callable[[apsw.Connection], int] | None = None
    ) -> int | None:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[int | None] = loop.create_future()
        with self._closing:
            if self._closed:
                raise StoreUnavailable("the store is shutting down; nothing from this request was stored")
            self._jobs.put(_Job(rows, work, future, loop))
        return await future

    def _write_loop(self) -> None:
        stopping = False
        while not stopping:
            group: list[_Job] = []
            count = 0
            item = self._jobs.get()
            while True:
                if item is _STOP:
                    stopping = True
                else:
                    assert isinstance(item, _Job)
                    group.append(item)
                    count += len(item.rows or ())
                if count >= _MAX_GROUP_ROWS:
                    break
                try:
                    item = self._jobs.get_nowait()
                except queue.Empty:
                    break
            if group:
                self._commit_group(group, count)
        self._writer_conn.close()

    def _commit_group(self, group: list[_Job], count: int) -> None:
        try:
            self._transaction(group)
            outcomes: list[LogServiceError | None] = [None] * len(group)
        except apsw.Error as exc:
            if len(group) == 1:
                outcomes = [self._translate(exc)]
            else:
                # One request must not fail the others that happened to share its transaction.
                outcomes = []
                for job in group:
                    try:
                        self._transaction([job])
                        outcomes.append(None)
                    except apsw.Error as single_exc:
                        outcomes.append(self._translate(single_exc))
        _settle(group, outcomes)
        if self._on_commit is not None and count:
            self._on_commit(count)

    def _transaction(self, group: list[_Job]) -> None:
        conn = self._writer_conn
        rows = [row for job in group if job.rows for row in job.rows]
        try:
            conn.execute("BEGIN IMMEDIATE")
            if rows:
                last_seq = cast(int, conn.execute("SELECT coalesce(max(seq), 0) FROM logs").get)
                conn.executemany(INSERT_ENTRY, rows)
                conn.execute(INDEX_NEW_ROWS, (last_seq,))
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

    # ---- reads -------------------------------------------------------------------------------------------

    async def recent(self, query: Query) -> Page:
        if query.cursor is not None and not isinstance(query.cursor[1], int):
            raise ValidationFailed([FieldError("cursor", "belongs to another store")])
        return await self._read(self._recent, query)

    async def get(self, log_id: bytes) -> list[LogEntry]:
        return await self._read(self._get, log_id)

    async def _read(self, function: Callable[[apsw.Connection, A], R], argument: A) -> R:
        """Run a read on the event loop's own connection within a small time budget, else in the pool.

        Most reads take a fraction of a millisecond, and their cost is Python building rows, which holds
        the GIL: handing them to reader threads only adds a GIL hand-over per row (threads slow each other
        down). A read that overruns the budget is interrupted and run again in the pool, so a slow query
        never stalls the loop for long.
        """
        if self._closed:
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
            self._inline = self._connect(write=False)
            self._inline.set_progress_handler(self._over_budget, _PROGRESS_STEPS)
        return self._inline

    def _over_budget(self) -> bool:
        return time.perf_counter() > self._inline_deadline

    def _get(self, conn: apsw.Connection, log_id: bytes) -> list[LogEntry]:
        rows = conn.execute(f"SELECT {_COLUMNS} FROM logs WHERE log_id = ? {_NEWEST_FIRST}", (log_id,))
        return [_entry(cast(Row, row)) for row in rows]

    def _recent(self, conn: apsw.Connection, query: Query) -> Page:
        want = query.limit + 1
        if query.levels == ():
            return Page(count=0, logs=[], next_cursor=None)
        if query.terms:
            rows = self._search(conn, query, want)
        else:
            sql, args = select_newest(query, want)
            rows = conn.execute(sql, args)
        try:
            return _page(cast(Iterator[Row], rows), query.limit)
        finally:
            rows.close()  # a page cut short by size leaves rows unread

    def _search(self, conn: apsw.Connection, query: Query, want: int) -> apsw.Cursor:
        """Full-text matches, newest first by event time, without sorting the whole match set.

        Matches are read in descending arrival order (FTS5's rowid order) in growing chunks. Arrival order
        is not event-time order, but ts_watermarks bounds the event time of every row that arrived earlier
        than a given one: once ``want`` candidates are at least that new, no older row can displace them.
        """
        match = " ".join('"' + term.replace('"', '""') + '"' for term in query.terms)
        where, args = _filters(query, "l.")
        if query.levels:
            where += f" AND l.level IN ({', '.join('?' * len(query.levels))})"
            args += [int(level) for level in query.levels]
        sql = (
            "SELECT l.ts, l.seq FROM logs_fts f CROSS JOIN logs l ON l.seq = f.rowid "
            f"WHERE logs_fts MATCH ? AND f.rowid < ?{where} ORDER BY f.rowid DESC LIMIT ?"
        )
        candidates: list[tuple[int, int]] = []
        below = (1 << 63) - 1
        chunk = want
        while True:
            found = cast(list[tuple[int, int]], conn.execute(sql, [match, below, *args, chunk]).fetchall())
            candidates = sorted(candidates + found, reverse=True)[:want]
            if len(found) < chunk:
                break
            below = found[-1][1]
            watermark = conn.execute(
                "SELECT max_ts FROM ts_watermarks WHERE block <= ? ORDER BY block DESC LIMIT 1",
                (below >> BLOCK_SHIFT,),
            ).fetchone()
            if watermark is None:
                break
            watermark_ts = cast(int, watermark[0])
            if len(candidates) == want and candidates[-1][0] >= watermark_ts:
                break
            if query.since_us is not None and watermark_ts < query.since_us:
                break
            chunk = min(chunk * 2, 10_000)
        seqs = [seq for _, seq in candidates]
        sql = f"SELECT {_COLUMNS} FROM logs WHERE seq IN ({', '.join('?' * len(seqs))}) {_NEWEST_FIRST}"
        return conn.execute(sql, seqs)

    # ---- lifecycle ---------------------------------------------------------------------------------------

    async def close(self) -> None:
        with self._closing:
            if self._closed:
                return
            self._closed = True
            self._jobs.put(_STOP)
        await asyncio.to_thread(self._writer.join)
        self._read_pool.shutdown(wait=True)
        for conn in [*self._readers, *([self._inline] if self._inline else [])]:
            conn.close()


def _make_private(path: Path) -> None:
    """The database file exists with mode 0600 before SQLite opens it: SQLite makes its -wal and -shm
    files with the database's mode. Files of an older store are made private too."""
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.chmod(path.with_name(path.name + suffix), 0o600)


def select_newest(query: Query, want: int) -> tuple[str, list[Any]]:
    """The SQL for a read without full-text search: always an index range walked newest first."""
    where, args = _filters(query, "")
    if query.levels is None or len(query.levels) == 1:
        if query.levels:
            where += " AND level = ?"
            args.append(int(query.levels[0]))
        return f"SELECT {_COLUMNS} FROM logs WHERE 1{where} {_NEWEST_FIRST} LIMIT ?", [*args, want]
    # One index range per level, each already newest first; only their heads are merged and sorted.
    part = f"SELECT * FROM (SELECT {_COLUMNS} FROM logs WHERE level = ?{where} {_NEWEST_FIRST} LIMIT ?)"
    union_args: list[Any] = []
    for level in query.levels:
        union_args += [int(level), *args, want]
    sql = " UNION ALL ".join([part] * len(query.levels)) + f" {_NEWEST_FIRST} LIMIT ?"
    return sql, [*union_args, want]


def _service_scope(prefix: str, include: tuple[str, ...], exclude: tuple[str, ...]) -> tuple[str, list[Any]]:
    where = ""
    if include:
        where += " AND (" + " OR ".join(f"{prefix}service GLOB ?" for _ in include) + ")"
    if exclude:
        where += " AND NOT (" + " OR ".join(f"{prefix}service GLOB ?" for _ in exclude) + ")"
    return where, [sql_glob(pattern) for pattern in (*include, *exclude)]


def _filters(query: Query, prefix: str) -> tuple[str, list[Any]]:
    """The WHERE conditions (each starting with AND) shared by every read path, and their arguments."""
    where = ""
    args: list[Any] = []
    if query.service_name is not None:
        where += f" AND {prefix}service = ?"
        args.append(query.service_name)
    if query.service_patterns:
        scope, scope_args = _service_scope(prefix, query.service_patterns, ())
        where += scope
        args += scope_args
    if query.log_type is not None:
        where += f" AND {prefix}log_type = ?"
        args.append(query.log_type)
    if query.since_us is not None:
        where += f" AND {prefix}ts >= ?"
        args.append(query.since_us)
    if query.until_us is not None:
        where += f" AND {prefix}ts < ?"
        args.append(query.until_us)
    if query.cursor is not None:
        where += f" AND ({prefix}ts, {prefix}seq) < (?, ?)"
        args += list(query.cursor)
    return where, args


def _page(rows: Iterator[Row], limit: int) -> Page:
    """Rows newest first (at most ``limit`` + 1) as a page of up to ``limit`` entries and MAX_PAGE_BYTES
    (with one entry at least), read no further than needed; the cursor is set when rows are left."""
    logs: list[LogEntry] = []
    size = 0
    last: Row | None = None
    for row in rows:
        if last is not None and (len(logs) == limit or size > MAX_PAGE_BYTES):
            return Page(count=len(logs), logs=logs, next_cursor=encode_cursor(last[2], last[0]))
        logs.append(_entry(row))
        size += entry_bytes(row[6], row[7])
        last = row
    return Page(count=len(logs), logs=logs, next_cursor=None)


def _entry(row: Row) -> LogEntry:
    _seq, log_id, ts, service, level, log_type, message, metadata, received = row
    return LogEntry(
        log_id=format_log_id(log_id),
        service_name=service,
        timestamp=format_timestamp(ts),
        level=_LEVEL_NAMES[level],
        log_type=log_type,
        message=message,
        metadata=msgspec.Raw(metadata) if metadata is not None else None,
        received_at=format_timestamp(received),
    )


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


class ServiceStats(msgspec.Struct, frozen=True):
    service_name: str
    entries: int
    bytes: int  # message and metadata text, UTF-8
    oldest: str
    newest: str


class StoreStats(msgspec.Struct, frozen=True):
    path: str
    file_bytes: int  # the database and its WAL on disk
    entries: int
    services: list[ServiceStats]


def store_stats(path: Path, key: bytes | None) -> StoreStats:
    """Entries, bytes and time range per service, read from the file (a full scan: an operator's command)."""
    conn = connect(path, key)
    try:
        rows = cast(
            list[tuple[str, int, int, int, int]],
            conn.execute(
                "SELECT service, count(*), sum(length(CAST(message AS BLOB)) + "
                "coalesce(length(CAST(metadata AS BLOB)), 0)), min(ts), max(ts) FROM logs GROUP BY service "
                "ORDER BY service"
            ).fetchall(),
        )
    except apsw.SQLError as exc:
        raise ConfigError(f"{path} is not a logsvc store: {exc}") from None
    finally:
        conn.close()
    services = [
        ServiceStats(service, count, size, format_timestamp(oldest), format_timestamp(newest))
        for service, count, size, oldest, newest in rows
    ]
    on_disk = sum(p.stat().st_size for p in (path, path.with_name(path.name + "-wal")) if p.exists())
    return StoreStats(str(path), on_disk, sum(s.entries for s in services), services)


def destroy_sqlite(path: Path, key: bytes | None) -> None:
    """Delete the store's files; refused while any other connection (a running server) has it open."""
    conn = connect(path, key)
    try:
        in_use = conn.execute("PRAGMA journal_mode=DELETE").get != "delete"
    except apsw.BusyError:
        in_use = True
    finally:
        conn.close()
    if in_use:
        raise ConfigError(f"{path} is in use (a server is running?); stop it before destroying the store")
    for suffix in ("", "-wal", "-shm", "-journal"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)


def snapshot_sqlite(path: Path, key: bytes | None, target: Path) -> None:
    """A consistent copy of the database, encrypted with the same key, taken while writers go on:
    ``VACUUM INTO`` reads one snapshot of the WAL-mode database and writes a compact file."""
    conn = connect(path, key)
    try:
        conn.execute("VACUUM INTO ?", (str(target),))
    except apsw.Error as exc:
        raise StoreUnavailable(f"the snapshot of {path} failed: {exc}") from None
    finally:
        conn.close()
