"""The two files of storage v2 and the order of compaction between them (decisions 28 and 33); the engine
over them is ``tiered.TieredStore``, its reads are ``tiers_reads``.

- The **hot file** holds rows in generation tables ``hot_N`` (the columns of ``sqlite_schema.LOGS_TABLE``,
  a unique ``(log_id, service)`` and an event-time index, a full-text index ``hot_N_fts`` written in the
  append's transaction, as the store's), listed in ``hot_generations``, and the tables of today's store
  that a compaction never changes: ``commits`` (decision 1) and the rollups and ``service_counts``
  (decision 24), written in the append's one transaction. Appends go to
  the open generation, numbered on from the last arrival number; a generation of ``rows_per_generation``
  rows or more is sealed in the same transaction, and the next append opens the next one.
- The **cold file** holds the pages (``pages.PageCodec``) of compacted generations and, in
  ``cold_generations``, the record of each generation it holds, written in the same transaction as the
  generation's pages; and in ``cold_dictionaries`` the zstd dictionary of the message text (decision 41),
  trained on the first generation of at least a page of rows and stored in the transaction of the
  first pages written with it.

**The order is the crash-safety argument.** A sealed generation is compacted in two transactions: its
pages and its record are committed in the cold file first (fsync), then its table is dropped from the hot
file. Between the two, a crash leaves the generation in both files; ``finish`` (run by the compactor
before it starts) drops from the hot file every sealed generation the cold file records and compacts any
other. Whatever point a process dies at, each entry is in exactly one place after ``finish``; compacting
a generation the cold file already records changes nothing there, so a repeated or reordered compaction
cannot duplicate or lose rows. tests/crash/test_compaction_sigkill.py kills the writer and the
compactor at random points; tests/integration/test_tiers.py stops a compaction after each step.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Final, TypeAlias, cast

import apsw
import zstandard

from logsvc.crypto.sqlite import connect
from logsvc.domain.queries import Query
from logsvc.errors import ConfigError
from logsvc.storage.pages import PAGE_ENTRIES, PageCodec, PageSummary, PageView, train_dictionary
from logsvc.storage.sqlite_reads import attribute_filters, match_expression
from logsvc.storage.sqlite_rollups import ROLLUP_TABLES_SCHEMA, ROLLUP_VIEWS, count_new_rows, uncount_trigger
from logsvc.storage.sqlite_schema import COLUMNS, FTS_TOKENIZE, Row, make_private
from logsvc.storage.writer import taking_turns

__all__ = [
    "COMPACTED",
    "OPEN",
    "SEALED",
    "ColdFile",
    "HotFile",
    "NewRow",
    "StoredElsewhere",
    "compact",
    "finish",
    "immediate",
]

# An entry as appended: log_id, ts, service, level, log_type, message, metadata, received.
NewRow: TypeAlias = tuple[bytes, int, str, int, str, str, str | None, int]
# Which of these (log_id, service, event time us) are stored outside the hot file (the cold tier).
StoredElsewhere: TypeAlias = Callable[[Sequence[tuple[bytes, str, int]]], set[tuple[bytes, str]]]

ROWS_PER_GENERATION: Final = 8_192
_BUSY_TIMEOUT_MS: Final = 10_000
_IDS_PER_LOOKUP: Final = 1_000  # well under SQLite's 32,766 bound parameters
_WAL_CHECKPOINT_PAGES: Final = 256
_WAL_KEPT_BYTES: Final = 0
_CHECKPOINT_BUSY_MS: Final = 50

# A generation is open (rows go in), sealed (full, waiting for compaction; last_seq is its last arrival
# number) or compacted (its table dropped, its rows in the cold file). The rows of compacted generations
# stay, so that numbers go on from the newest one and are never given twice.
OPEN, SEALED, COMPACTED = 0, 1, 2
_HOT_SCHEMA: Final = (
    """
CREATE TABLE IF NOT EXISTS hot_generations (
    generation INTEGER PRIMARY KEY,
    first_seq INTEGER NOT NULL,
    last_seq INTEGER,
    state INTEGER NOT NULL DEFAULT 0
) STRICT;
-- When each append committed, by the last arrival number it holds, as in today's store (decision 1).
CREATE TABLE IF NOT EXISTS commits (last_seq INTEGER PRIMARY KEY, committed_at INTEGER NOT NULL) STRICT;
"""
    + ROLLUP_TABLES_SCHEMA
    + ROLLUP_VIEWS
)
_COLD_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS cold_pages (
    page_id INTEGER PRIMARY KEY,
    generation INTEGER NOT NULL,
    min_ts INTEGER NOT NULL,
    max_ts INTEGER NOT NULL,
    min_seq INTEGER NOT NULL,
    max_seq INTEGER NOT NULL,
    summary BLOB NOT NULL,
    body BLOB NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS cold_pages_max_ts ON cold_pages(max_ts);
CREATE TABLE IF NOT EXISTS cold_generations (
    generation INTEGER PRIMARY KEY,
    first_seq INTEGER NOT NULL,
    last_seq INTEGER NOT NULL,
    entries INTEGER NOT NULL
) STRICT;
"""
# Made by the first write that stores a dictionary, not at open: opening a cold file made before decision
# 41 writes nothing (a full disk refuses a write even to a process that only reads).
_DICTIONARY_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS cold_dictionaries (dictionary_id INTEGER PRIMARY KEY, data BLOB NOT NULL) STRICT;
"""


def _open(path: Path, key: bytes | None, schema: str, *, incremental: bool = False) -> apsw.Connection:
    """A write connection as the store's (WAL, a COMMIT fsyncs, temporary data in memory), schema made.
    ``incremental``: a new file gives its free pages back (``PRAGMA incremental_vacuum``, decision 38)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    make_private(path)
    # The writer and the compactor open both files, also at the same moment after a crash.
    conn = connect(path, key, busy_timeout_ms=_BUSY_TIMEOUT_MS)
    try:
        if incremental and not _one(conn, "PRAGMA page_count")[0]:
            # Only a new file: the setting takes effect before the file's first table (a file made before
            # keeps its free pages for reuse, as all did before decision 38), and setting it on a file
            # that has tables writes its header (which a full disk refuses, also to a reader).
            conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
        conn.execute("PRAGMA journal_mode=WAL").fetchall()
        conn.execute("PRAGMA synchronous=FULL")
        # The WAL is copied into the file once it holds 1 MiB (instead of 4), and a WAL so emptied shrinks
        # back at the next commit, instead of staying as large as it ever grew (decision 38).
        conn.execute(f"PRAGMA wal_autocheckpoint={_WAL_CHECKPOINT_PAGES}")
        conn.execute(f"PRAGMA journal_size_limit={_WAL_KEPT_BYTES}")
        conn.execute("PRAGMA temp_store=MEMORY")
        # IMMEDIATE: a deferred transaction that read and then writes while the other process commits is
        # refused at once (busy, without waiting), which made an opening process fail after a crash.
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(schema)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    except apsw.Error as exc:
        conn.close()
        raise ConfigError(f"cannot open {path}: {exc}") from None
    return conn


@contextlib.contextmanager
def immediate(conn: apsw.Connection) -> Iterator[None]:
    """A write transaction that takes the write lock first: a transaction that read before writing could
    not be upgraded once another process committed (the compactor and the writer share both files)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _one(conn: apsw.Connection, sql: str) -> tuple[Any, ...]:
    """The row of an aggregate query, which always has one."""
    row = conn.execute(sql).fetchone()
    if row is None:
        raise apsw.InternalError(f"no row: {sql}")
    return tuple(row)


def _version(conn: apsw.Connection) -> tuple[int, int]:
    (data_version,) = _one(conn, "PRAGMA data_version")
    return int(data_version), conn.total_changes()


def _truncate_wal(conn: apsw.Connection) -> bool:
    """``wal_checkpoint(TRUNCATE)`` waiting at most a moment for readers and writers (the caller tries
    again later): every committed frame is copied into the file and the file synced before the WAL is cut,
    so nothing committed depends on it."""
    conn.set_busy_timeout(_CHECKPOINT_BUSY_MS)
    try:
        busy, _log, _done = _one(conn, "PRAGMA wal_checkpoint(TRUNCATE)")
    except apsw.BusyError:
        return False
    finally:
        conn.set_busy_timeout(_BUSY_TIMEOUT_MS)
    return not busy


def _table(generation: int) -> str:
    return f"hot_{int(generation)}"


class HotFile:
    """The hot tier's file: appends into generation tables, sealed when full."""

    def __init__(
        self,
        path: Path,
        key: bytes | None,
        rows_per_generation: int = ROWS_PER_GENERATION,
        *,
        turns: Path | None = None,
    ) -> None:
        """``turns``: the lock through which the file's writers take turns (``writer.turns_lock``), taken
        by ``drop`` so that a compactor's drop does not send the appending writer into SQLite's busy
        handler and its sleeps."""
        self.path = path
        self._conn = _open(path, key, _HOT_SCHEMA, incremental=True)
        # 2: INCREMENTAL, a file made since decision 38; an older file's free pages stay for reuse.
        self._releases = _one(self._conn, "PRAGMA auto_vacuum")[0] == 2
        self._limit = rows_per_generation
        self._ranges: dict[int, tuple[bytes, bytes] | None] = {}
        self._turns = os.open(turns, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600) if turns else None

    def append(self, rows: Sequence[NewRow], stored_elsewhere: StoredElsewhere | None = None) -> int:
        """Store ``(log_id, ts, service, level, log_type, message, metadata, received)`` rows in one durable
        transaction, numbered on in arrival order, with the rollups' counts and the commit's record; how
        many were stored. An id already in a hot generation for the same service is not stored again, nor
        one that ``stored_elsewhere`` names (the cold tier's). That is asked within this transaction, which
        holds the hot file's write lock: a generation cannot be dropped meanwhile, and one dropped before
        had its pages committed in the cold file first, so a compaction cannot slip an id past both.

        A generation takes ``rows_per_generation`` arrival numbers: the rows past them go on in the next
        generation, in the same transaction (decision 41), so that a generation is whole pages (its last
        page used to be part-full, with a full summary, after an append overshot it)."""
        conn = self._conn
        stored = 0
        with immediate(conn):
            known = self._known(rows)
            if stored_elsewhere is not None:
                unknown = [(row[0], row[2], row[1]) for row in rows if (row[0], row[2]) not in known]
                known |= stored_elsewhere(unknown)
            fresh = [row for row in rows if (row[0], row[2]) not in known]
            last_seq = 0
            while fresh:
                generation, next_seq = self._open_generation()
                table = _table(generation)
                first_seq = self.first_seq(generation)
                room = self._limit - (next_seq - first_seq)
                part, fresh = (fresh[:room], fresh[room:]) if room > 0 else (fresh, [])
                before = conn.total_changes()
                # Numbered here, so that a number is never given twice, also after the newest rows were
                # deleted; a row already in the open generation (a retry) is skipped by its unique index
                # and leaves its number unused.
                conn.executemany(
                    f"INSERT OR IGNORE INTO {table}({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [(next_seq + i, *row) for i, row in enumerate(part)],
                )
                if conn.total_changes() == before:
                    continue  # every one already in the open generation
                stored += conn.total_changes() - before
                conn.execute(
                    f"INSERT INTO {table}_fts(rowid, message) "
                    f"SELECT seq, message FROM {table} WHERE seq >= ?",
                    (next_seq,),
                )
                count_new_rows(conn, next_seq - 1, table)  # the rollups, in the entries' own transaction
                # Sealed by the span of its arrival numbers (at least the row count: a retry leaves a gap),
                # which needs no count of the table.
                (last_seq,) = _one(conn, f"SELECT max(seq) FROM {table}")
                if last_seq - first_seq + 1 >= self._limit:
                    conn.execute(
                        "UPDATE hot_generations SET state = ?, last_seq = ? WHERE generation = ?",
                        (SEALED, last_seq, generation),
                    )
                    if fresh:  # a retry of a row of the generation just sealed, or twice in this append
                        fresh = self._not_in(generation, fresh)
            if not stored:
                return 0
            conn.execute("INSERT OR IGNORE INTO commits VALUES (?, ?)", (last_seq, time.time_ns() // 1000))
        return stored

    def _not_in(self, generation: int, rows: list[NewRow]) -> list[NewRow]:
        """The rows whose ``(log_id, service)`` the generation does not hold."""
        held: set[tuple[bytes, str]] = set()
        ids = list({row[0] for row in rows})
        for first in range(0, len(ids), _IDS_PER_LOOKUP):
            chunk = ids[first : first + _IDS_PER_LOOKUP]
            marks = ", ".join("?" for _ in chunk)
            lookup = f"SELECT log_id, service FROM {_table(generation)} WHERE log_id IN ({marks})"
            held.update(map(tuple, self._conn.execute(lookup, chunk)))
        return [row for row in rows if (row[0], row[2]) not in held]

    def _open_generation(self) -> tuple[int, int]:
        """The open generation and the next arrival number; a new generation when none is open."""
        conn = self._conn
        last = conn.execute(
            "SELECT generation, first_seq, last_seq, state FROM hot_generations "
            "ORDER BY generation DESC LIMIT 1"
        ).fetchone()
        if last is not None and last[3] == OPEN:
            generation, first_seq = int(last[0]), int(last[1])
            return generation, max(first_seq, self._last_given(generation) + 1)
        generation, first_seq = (int(last[0]) + 1, int(last[2]) + 1) if last is not None else (1, 1)
        conn.execute(
            "INSERT INTO hot_generations(generation, first_seq) VALUES (?, ?)", (generation, first_seq)
        )
        table = _table(generation)
        conn.execute(
            f"CREATE TABLE {table} (seq INTEGER PRIMARY KEY, log_id BLOB NOT NULL, ts INTEGER NOT NULL, "
            "service TEXT NOT NULL, level INTEGER NOT NULL, log_type TEXT NOT NULL, message TEXT NOT NULL, "
            "metadata TEXT, received INTEGER NOT NULL) STRICT"
        )
        conn.execute(f"CREATE UNIQUE INDEX {table}_id ON {table}(log_id, service)")
        conn.execute(f"CREATE INDEX {table}_ts ON {table}(ts)")
        conn.execute(
            f"CREATE VIRTUAL TABLE {table}_fts USING fts5(message, content='{table}', content_rowid='seq', "
            f"tokenize='{FTS_TOKENIZE}')"
        )
        # As the store's index: fewer, larger merges, for a write-heavy table searched in few segments.
        conn.execute(f"INSERT INTO {table}_fts({table}_fts, rank) VALUES ('automerge', 16)")
        # A deleted row (retention, purge) leaves the full-text index and the counts, as in the store; a
        # compaction drops the table, which fires no trigger: the counts keep its rows, now in the cold file.
        conn.execute(
            f"CREATE TRIGGER {table}_after_delete AFTER DELETE ON {table} BEGIN INSERT INTO {table}_fts"
            f"({table}_fts, rowid, message) VALUES ('delete', old.seq, old.message); END"
        )
        conn.execute(uncount_trigger(table))
        return generation, first_seq

    def _last_given(self, generation: int) -> int:
        """The last arrival number given in the open generation, also after its newest rows were deleted
        (a purge): numbers are never given twice (decision 23), and every append that stored rows recorded
        its last in ``commits``."""
        (top,) = _one(self._conn, f"SELECT max(seq) FROM {_table(generation)}")
        (committed,) = _one(self._conn, "SELECT max(last_seq) FROM commits")
        return max(int(top or 0), int(committed or 0))

    def seal(self, generation: int) -> None:
        """Seal the generation, if still open, at the last number given: the next one numbers on after it.
        Run inside the caller's write transaction."""
        state = self._conn.execute("SELECT state FROM hot_generations WHERE generation = ?", (generation,))
        if state.get == OPEN:  # else sealed already, and maybe compacted and its table dropped
            self._conn.execute(
                "UPDATE hot_generations SET state = ?, last_seq = ? WHERE generation = ?",
                (SEALED, self._last_given(generation), generation),
            )

    def _known(self, rows: Sequence[NewRow]) -> set[tuple[bytes, str]]:
        """The ``(log_id, service)`` pairs of ``rows`` already in a sealed hot generation. The open one
        needs no lookup: its unique index makes the INSERT OR IGNORE skip them (a lookup of every id cost
        about a fifth of an append's CPU time). Nor are ids looked up outside a sealed generation's range
        of ids (decision 38): a new UUIDv7 (the server's, the SDK's) is newer than every id sealed before
        it, and the lookup of every id in each sealed generation was 7 % of the server's time over HTTP."""
        ids = list({row[0] for row in rows})
        known: set[tuple[bytes, str]] = set()
        ranges = {generation: self._id_range(generation) for generation in self.generations(SEALED)}
        self._ranges = ranges
        for generation, id_range in ranges.items():
            if id_range is None:
                continue
            low, high = id_range
            inside = [log_id for log_id in ids if low <= log_id <= high]
            for first in range(0, len(inside), _IDS_PER_LOOKUP):
                chunk = inside[first : first + _IDS_PER_LOOKUP]
                marks = ", ".join("?" for _ in chunk)
                lookup = f"SELECT log_id, service FROM {_table(generation)} WHERE log_id IN ({marks})"
                known.update(map(tuple, self._conn.execute(lookup, chunk)))
        return known & {(row[0], row[2]) for row in rows} if known else known

    def _id_range(self, generation: int) -> tuple[bytes, bytes] | None:
        """The smallest and largest log_id of a sealed generation (None: it holds none). Sealed, it takes
        no more rows, so its range is kept while it stays sealed (a row deleted from it leaves the range
        wider than needed, never narrower)."""
        kept = self._ranges.get(generation)
        if kept is not None:
            return kept
        table = _table(generation)
        # Two queries: SQLite reads a lone min() or max() of an indexed column from the index's end.
        (low,) = _one(self._conn, f"SELECT min(log_id) FROM {table}")
        (high,) = _one(self._conn, f"SELECT max(log_id) FROM {table}")
        return None if low is None else (bytes(low), bytes(high))

    def generations(self, *states: int) -> list[int]:
        """The generations in these states, oldest first."""
        marks = ", ".join("?" for _ in states)
        return [
            int(row[0])
            for row in self._conn.execute(
                f"SELECT generation FROM hot_generations WHERE state IN ({marks}) ORDER BY generation",
                states,
            )
        ]

    def sealed(self) -> list[int]:
        return self.generations(SEALED)

    def rows(self, generation: int) -> list[Row]:
        table = _table(generation)
        return cast(list[Row], self._conn.execute(f"SELECT {COLUMNS} FROM {table} ORDER BY seq").fetchall())

    def matching(self, generation: int, terms: tuple[str, ...]) -> list[int]:
        """The arrival numbers of the generation's entries holding every term (the store's rule of a
        search: ``match_expression``), newest arrival first."""
        table = _table(generation)
        return [
            int(row[0])
            for row in self._conn.execute(
                f"SELECT rowid FROM {table}_fts WHERE {table}_fts MATCH ? ORDER BY rowid DESC",
                (match_expression(terms),),
            )
        ]

    def newest(self, query: Query, want: int) -> list[Row]:
        """Up to ``want`` rows of every hot generation matching ``query`` (its cursor excluding), newest
        first by (event time, arrival); read in one snapshot, so that a generation dropped by a compaction
        is either read here or already in the cold file."""
        rows: list[Row] = []
        with self._conn:
            for generation in self.generations(OPEN, SEALED):
                sql, args = _select_newest(_table(generation), query, want)
                rows += cast(list[Row], self._conn.execute(sql, args).fetchall())
        return sorted(rows, key=_newest_first)[:want]

    def first_seq(self, generation: int) -> int:
        row = self._conn.execute(
            "SELECT first_seq FROM hot_generations WHERE generation = ?", (generation,)
        ).fetchone()
        if row is None:
            raise KeyError(generation)
        return int(row[0])

    def drop(self, generation: int) -> None:
        """Forget the rows of a sealed generation that the cold file holds (one durable transaction). Its
        pages stay free in the file for the next generation; free pages left from an earlier drop that
        were not reused since (the compactor was behind) are cut off the file (decision 38)."""
        conn = self._conn
        with taking_turns(self._turns), immediate(conn):
            (left,) = _one(conn, "PRAGMA freelist_count")
            # The dropped rows are not deleted, only moved (the cold file holds them): their pages are not
            # overwritten with zeros one by one, which wrote about a generation's size to the WAL at each
            # drop (decision 38); ``release`` cuts free pages off the file.
            (secure,) = _one(conn, "PRAGMA secure_delete")
            conn.execute("PRAGMA secure_delete=FAST")
            try:
                conn.execute(f"DROP TABLE IF EXISTS {_table(generation)}_fts")
                conn.execute(f"DROP TABLE IF EXISTS {_table(generation)}")
            finally:
                conn.execute(f"PRAGMA secure_delete={int(secure)}")
            conn.execute(
                "UPDATE hot_generations SET state = ? WHERE generation = ? AND state = ?",
                (COMPACTED, generation, SEALED),
            )
            if left:
                conn.execute(f"PRAGMA incremental_vacuum({int(left)})").fetchall()

    def release(self) -> int:
        """Cut the file's free pages off it (``PRAGMA incremental_vacuum``, one durable transaction,
        taking turns with the writers); how many there were. Nothing in a file made before decision 38,
        whose free pages stay for reuse. Run by the idle compactor: run at each drop, it took a quarter
        of the compactor's time (pages of the open generation moved into the freed ones), while the next
        generation reuses free pages anyway."""
        conn = self._conn
        (free,) = _one(conn, "PRAGMA freelist_count") if self._releases else (0,)
        if free:
            with taking_turns(self._turns), immediate(conn):
                conn.execute("PRAGMA incremental_vacuum").fetchall()
        return int(free)

    def version(self) -> tuple[int, int]:
        """Changes when the file changed (as ``ColdFile.version``)."""
        return _version(self._conn)

    def checkpoint(self) -> bool:
        """Copy the WAL into the file and empty it (``wal_checkpoint(TRUNCATE)``), taking turns with the
        writers; False when a reader kept it from completing (try again later)."""
        with taking_turns(self._turns):
            return _truncate_wal(self._conn)

    @property
    def connection(self) -> apsw.Connection:
        """The file's connection, for reads of its other tables (the counts, the commit records) by the
        store's own code; used from one thread at a time, as the HotFile itself."""
        return self._conn

    def check(self) -> list[str]:
        """What SQLite's integrity checks find wrong in the file and in each full-text index (none: [])."""
        problems = [str(row[0]) for row in self._conn.execute("PRAGMA integrity_check") if row[0] != "ok"]
        for generation in self.generations(OPEN, SEALED):
            table = _table(generation)
            try:
                self._conn.execute(
                    f"INSERT INTO {table}_fts({table}_fts, rank) VALUES ('integrity-check', 1)"
                )
            except apsw.CorruptError as exc:
                problems.append(f"{table}_fts: {exc}")
        return problems

    def close(self) -> None:
        self._conn.close()
        if self._turns is not None:
            os.close(self._turns)
            self._turns = None

    # ---- read-only access for tiers_reads (decision 34) ------------------------------------------------

    @contextlib.contextmanager
    def reading(self) -> Iterator[list[tuple[int, str, bool]]]:
        """One read snapshot, and in it the live generations (open and sealed), oldest first: each one's
        number, table and whether it is sealed (its rows never change again but for a deletion)."""
        with self._conn:
            yield [
                (int(generation), _table(generation), state == SEALED)
                for generation, state in self._conn.execute(
                    "SELECT generation, state FROM hot_generations WHERE state IN (?, ?) ORDER BY generation",
                    (OPEN, SEALED),
                )
            ]

    def select(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """The rows of a read-only query on the hot file."""
        return [tuple(row) for row in self._conn.execute(sql, args)]


def _encoded(codec: PageCodec, ordered: Sequence[Row]) -> list[tuple[bytes, PageSummary]]:
    """Rows sorted by (event time, arrival) as pages of ``PAGE_ENTRIES``."""
    return [
        codec.encode(ordered[start : start + PAGE_ENTRIES]) for start in range(0, len(ordered), PAGE_ENTRIES)
    ]


class ColdFile:
    """The cold tier's file: the pages of compacted generations, and which generations it holds."""

    def __init__(self, path: Path, key: bytes | None) -> None:
        self.path = path
        self._conn = _open(path, key, _COLD_SCHEMA)
        self._codec = PageCodec(self._first_dictionary(), self._dictionary)

    def write(self, generation: int, first_seq: int, rows: Sequence[Row]) -> None:
        """The generation's rows as pages sorted by (event time, arrival), and its record, in one durable
        transaction; nothing when the cold file already holds the generation (a compaction done again),
        and ConfigError when it holds another generation by that number: the hot file would then drop rows
        the cold file does not hold."""
        last_seq = max((row[0] for row in rows), default=first_seq - 1)
        if self._held(generation, first_seq, last_seq):
            return  # a compaction done again after a crash: nothing to encode
        ordered = sorted(rows, key=lambda row: (row[2], row[0]))
        trained = self._trained(rows)
        written = False
        try:
            encoded = _encoded(trained or self._codec, ordered)
            with immediate(self._conn):
                if self._held(generation, first_seq, last_seq):
                    return  # written meanwhile by another compaction of it
                if trained is not None:
                    stored = self._first_dictionary()
                    if stored is None:
                        self._conn.execute(_DICTIONARY_SCHEMA)
                        self._conn.execute(
                            "INSERT INTO cold_dictionaries(dictionary_id, data) VALUES (?, ?)",
                            (trained.dictionary_id, trained.dictionary),
                        )
                    elif stored != trained.dictionary:
                        # another process stored the file's dictionary since this one was trained: one
                        # dictionary a file (zstd's ids are 31-bit hashes, so two could share an id)
                        trained.close()
                        trained = PageCodec(stored, self._dictionary)
                        encoded = _encoded(trained, ordered)
                self._insert(generation, first_seq, last_seq, len(rows), encoded)
            written = True
        finally:
            if trained is not None:
                # the dictionary serves the next pages once stored, never before
                (self._codec if written else trained).close()
                if written:
                    self._codec = trained

    def _insert(
        self,
        generation: int,
        first_seq: int,
        last_seq: int,
        count: int,
        encoded: list[tuple[bytes, PageSummary]],
    ) -> None:
        """The generation's pages and record, in the caller's transaction."""
        self._conn.executemany(
            "INSERT INTO cold_pages(generation, min_ts, max_ts, min_seq, max_seq, summary, body) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (generation, s.min_ts, s.max_ts, s.min_seq, s.max_seq, s.to_bytes(), body)
                for body, s in encoded
            ],
        )
        self._conn.execute(
            "INSERT INTO cold_generations(generation, first_seq, last_seq, entries) VALUES (?, ?, ?, ?)",
            (generation, first_seq, last_seq, count),
        )

    def _trained(self, rows: Sequence[Row]) -> PageCodec | None:
        """A codec with a dictionary for these rows' pages when the file's pages have none yet: the one
        another process stored since this file was opened, or one trained on these rows (at least a page
        of them); None to go on with the codec held."""
        if self._codec.dictionary is not None or len(rows) < PAGE_ENTRIES:
            return None
        stored = self._first_dictionary()
        if stored is None:
            try:
                stored = train_dictionary(rows)
            except zstandard.ZstdError:
                return None  # too few or too alike messages: the pages go without one
        return PageCodec(stored, self._dictionary)

    def _first_dictionary(self) -> bytes | None:
        """The dictionary the file's pages are written with from now on (the first stored), if any."""
        if not self._has_dictionaries():
            return None
        row = self._conn.execute(
            "SELECT data FROM cold_dictionaries ORDER BY dictionary_id LIMIT 1"
        ).fetchone()
        return bytes(row[0]) if row is not None else None

    def _dictionary(self, dictionary_id: int) -> bytes | None:
        """A stored dictionary, for the pages that name it (``PageCodec`` asks for one it does not hold)."""
        if not self._has_dictionaries():
            return None
        row = self._conn.execute(
            "SELECT data FROM cold_dictionaries WHERE dictionary_id = ?", (dictionary_id,)
        ).fetchone()
        return bytes(row[0]) if row is not None else None

    def _has_dictionaries(self) -> bool:
        found = self._conn.execute("SELECT 1 FROM sqlite_schema WHERE name = 'cold_dictionaries'").fetchone()
        return found is not None

    def _held(self, generation: int, first_seq: int, last_seq: int) -> bool:
        """Whether the generation with these arrival numbers is held; ConfigError when one by that number
        with other arrival numbers is (retention takes entries out of a held generation, never changes
        its range)."""
        held = self._conn.execute(
            "SELECT first_seq, last_seq FROM cold_generations WHERE generation = ?", (generation,)
        ).fetchone()
        if held is not None and tuple(held) != (first_seq, last_seq):
            raise ConfigError(
                f"{self.path} holds generation {generation} with arrival numbers {held[0]} to {held[1]}, "
                f"the hot file's has {first_seq} to {last_seq}: the two files are not of the same store "
                "(restore both from one backup)"
            )
        return held is not None

    def newest_pages(self) -> Iterator[tuple[int, int, PageSummary]]:
        """Every page's id, largest event time and summary, the newest pages first (without their bodies:
        most pages are pruned by their summary, and a body is read and decrypted only when needed)."""
        for page_id, max_ts, summary in self._conn.execute(
            "SELECT page_id, max_ts, summary FROM cold_pages ORDER BY max_ts DESC"
        ):
            yield int(page_id), int(max_ts), PageSummary.from_bytes(summary)

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        """One read transaction: the pages listed and the pages read within it are of the same moment."""
        with self._conn:
            yield

    def page(self, page_id: int) -> list[Row]:
        """The rows of a page (KeyError for no such page)."""
        row = self._conn.execute("SELECT body FROM cold_pages WHERE page_id = ?", (page_id,)).fetchone()
        if row is None:
            raise KeyError(page_id)
        return self._codec.decode(row[0])

    def summaries(self) -> list[PageSummary]:
        return [
            PageSummary.from_bytes(row[0]) for row in self._conn.execute("SELECT summary FROM cold_pages")
        ]

    @property
    def connection(self) -> apsw.Connection:
        """The file's connection, for the store's own work on its pages (retention rewrites them, a
        migration records generations); used from one thread at a time, as the ColdFile itself."""
        return self._conn

    @property
    def codec(self) -> PageCodec:
        """The codec the file's pages are written with: with the file's dictionary once one is stored,
        also when another process (the compactor) stored it after this file was opened."""
        if self._codec.dictionary is None:
            stored = self._first_dictionary()
            if stored is not None:
                self._codec.close()
                self._codec = PageCodec(stored, self._dictionary)
        return self._codec

    def rows(self) -> Iterator[Row]:
        """Every row of every page (in page order), for checks and tests: reads prune pages by summary
        (``tiers_reads``)."""
        for (body,) in self._conn.execute("SELECT body FROM cold_pages ORDER BY page_id"):
            yield from self._codec.decode(body)

    def checkpoint(self) -> bool:
        """As ``HotFile.checkpoint``: the cold file's only writers (the compactor, retention) commit
        seldom, and SQLite's own lock is enough to take turns with them."""
        return _truncate_wal(self._conn)

    def close(self) -> None:
        self._codec.close()
        self._conn.close()

    # ---- read-only access for tiers_reads (decision 34) ------------------------------------------------

    def version(self) -> tuple[int, int]:
        """Changes when the file changed: by another connection (SQLite's data_version) or by this one."""
        return _version(self._conn)

    def listing(self) -> list[tuple[int, int, int, int, int, int]]:
        """Every page's id, event time and arrival ranges and body size, without summaries or bodies."""
        return [
            (int(a), int(b), int(c), int(d), int(e), int(f))
            for a, b, c, d, e, f in self._conn.execute(
                "SELECT page_id, min_ts, max_ts, min_seq, max_seq, length(body) FROM cold_pages"
            )
        ]

    def summaries_of(self, page_ids: Sequence[int]) -> dict[int, PageSummary]:
        found: dict[int, PageSummary] = {}
        for first in range(0, len(page_ids), _IDS_PER_LOOKUP):
            chunk = list(page_ids[first : first + _IDS_PER_LOOKUP])
            marks = ", ".join("?" for _ in chunk)
            for page_id, summary in self._conn.execute(
                f"SELECT page_id, summary FROM cold_pages WHERE page_id IN ({marks})", chunk
            ):
                found[int(page_id)] = PageSummary.from_bytes(summary)
        return found

    def view(self, page_id: int) -> PageView | None:
        """The page's columns, decoded as they are read; None when the page is gone (retention)."""
        row = self._conn.execute("SELECT body FROM cold_pages WHERE page_id = ?", (page_id,)).fetchone()
        return self._codec.view(row[0]) if row is not None else None


def compact(hot: HotFile, cold: ColdFile, generation: int) -> None:
    """Move a sealed generation to the cold file: its pages committed there first, then dropped here. Its
    rows are read in the snapshot that finds it still sealed: the compactor and a retention sweep (on the
    writer) may compact the same generation at once, and both orders of their steps leave it once in the
    cold file; a generation compacted meanwhile is left alone."""
    conn = hot.connection
    with conn:
        found = conn.execute(
            "SELECT first_seq FROM hot_generations WHERE generation = ? AND state = ?", (generation, SEALED)
        ).fetchall()
        if not found:
            return
        rows = hot.rows(generation)
    cold.write(generation, cast(int, found[0][0]), rows)
    hot.drop(generation)


def finish(hot: HotFile, cold: ColdFile) -> None:
    """Complete what a crash interrupted: every sealed generation is compacted, which for one the cold
    file already holds only checks that it holds the same arrival numbers, then drops it from the hot
    file. Run by the compactor (one per data directory, as the background jobs are) before it compacts
    anything; a writer needs none of it, as it only appends to the open generation."""
    for generation in hot.sealed():
        compact(hot, cold, generation)


def _newest_first(row: Row) -> tuple[int, int]:
    return -row[2], -row[0]


def _select_newest(table: str, query: Query, want: int) -> tuple[str, list[Any]]:
    """The SQL of a generation's newest matching rows: the store's filters, on this generation's table."""
    where, args = attribute_filters(query, "")
    if query.since_us is not None:
        where += " AND ts >= ?"
        args.append(query.since_us)
    if query.until_us is not None:
        where += " AND ts < ?"
        args.append(query.until_us)
    if query.cursor is not None:
        where += " AND (ts, seq) < (?, ?)"
        args += list(query.cursor)
    if query.levels is not None:
        where += f" AND level IN ({', '.join('?' for _ in query.levels)})"
        args += [int(level) for level in query.levels]
    if query.terms:
        where += f" AND seq IN (SELECT rowid FROM {table}_fts WHERE {table}_fts MATCH ?)"
        args.append(match_expression(query.terms))
    return f"SELECT {COLUMNS} FROM {table} WHERE 1{where} ORDER BY ts DESC, seq DESC LIMIT ?", [*args, want]
