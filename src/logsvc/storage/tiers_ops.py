"""Retention, the oldest entry and the archive export over the two files of storage v2 (decision 35).

**Retention deletes from cold pages only.** A hot generation holding an expired entry in scope is sealed
(when open) and compacted first, so that every deletion is of rows in pages, and a compaction can never
copy a row back after it was deleted (a compactor that read a generation before this compaction finds the
cold file holding it and writes nothing). Sealing the open generation also keeps arrival numbers from
being given twice: the next append opens a generation after the sealed one's last number, as today's store
numbers on after a purge (decision 23). Hot generations hold the newest arrivals, so retention seldom
meets one; a purge does.

**The counts and the pages are in two files**, so a deletion is three durable steps that a crash may
interrupt anywhere: (A) in the hot file, the rollups and ``service_counts`` are decremented exactly as
today's delete trigger decrements them, and the arrival numbers to delete are recorded per page in
``retention_pending``; (B) in the cold file, those rows are taken out of their pages (a page left empty
is deleted, another rewritten); (C) the record is removed. B and C are idempotent (taking out rows that
are gone changes nothing), so any call first completes the records it finds, and a count is never taken
off twice: the planning of A skips the rows a record already names, within A's write transaction.

A snapshot of the two files (``tiered_files``) holds the deleters off with ``ops.lock``; a deleter that
finds a snapshot under way deletes nothing this time (the next sweep does), so neither waits on the other.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Final, cast

import apsw
import msgspec

from logsvc.scopes import covers
from logsvc.storage.pages import PageSummary
from logsvc.storage.port import Export
from logsvc.storage.sqlite_rollups import count_new_rows, uncount_trigger
from logsvc.storage.sqlite_schema import COLUMNS, Row
from logsvc.storage.tiers import OPEN, SEALED, ColdFile, HotFile, compact, immediate

__all__ = [
    "OPS_LOCK",
    "change_counts",
    "cold_rows",
    "delete_older",
    "export_after",
    "forget_newer",
    "hot_service_stats",
    "oldest",
    "settle",
]

# Held shared by a deletion, exclusively by a snapshot of the two files.
OPS_LOCK: Final = "ops.lock"
_PENDING: Final = (
    "CREATE TABLE IF NOT EXISTS retention_pending "
    "(id INTEGER PRIMARY KEY, page_id INTEGER NOT NULL, seqs BLOB NOT NULL) STRICT"
)
# The rows a call adds to the counts or takes off them, in tables of the connection's own (in memory: the
# files keep temp_store=MEMORY), so that today's rules count them: ``count_new_rows`` and the delete trigger.
_ROWS: Final = (
    "CREATE TEMP TABLE IF NOT EXISTS {name} (seq INTEGER PRIMARY KEY, ts INTEGER NOT NULL, "
    "service TEXT NOT NULL, level INTEGER NOT NULL, log_type TEXT NOT NULL)"
)
_COUNTED, _UNCOUNTED = "counted_rows", "uncounted_rows"


def _hot(hot: HotFile) -> apsw.Connection:
    return hot.connection


def _cold(cold: ColdFile) -> apsw.Connection:
    return cold.connection


def change_counts(conn: apsw.Connection, rows: Iterable[Row], sign: int) -> None:
    """Add (sign 1) or take off (sign -1) rows in every rollup and ``service_counts``, in the caller's
    transaction, by today's rules: ``count_new_rows`` adds them, the delete trigger of today's ``logs``
    (``uncount_trigger``, on a table of the connection's own) takes them off."""
    name = _COUNTED if sign > 0 else _UNCOUNTED
    conn.execute(_ROWS.format(name=name))
    if sign < 0:
        conn.execute(uncount_trigger(name))
    conn.execute(f"DELETE FROM temp.{name}")
    conn.executemany(
        f"INSERT INTO temp.{name} VALUES (?, ?, ?, ?, ?)", [(r[0], r[2], r[3], r[4], r[5]) for r in rows]
    )
    if sign > 0:
        count_new_rows(conn, 0, f"temp.{name}")
    conn.execute(f"DELETE FROM temp.{name}")  # the trigger takes each row off


def _in_scope(service: str, include: tuple[str, ...], exclude: tuple[str, ...]) -> bool:
    """The rule of ``sqlite_reads.service_scope``: a pattern of ``include`` (any when empty), none of
    ``exclude``."""
    return covers(include, service) and not (exclude and covers(exclude, service))


def _hot_generations(conn: apsw.Connection) -> list[tuple[int, int]]:
    return [
        (int(g), int(s))
        for g, s in conn.execute(
            "SELECT generation, state FROM hot_generations WHERE state IN (?, ?) ORDER BY generation",
            (OPEN, SEALED),
        )
    ]


@contextlib.contextmanager
def _deleting(directory: Path) -> Iterator[bool]:
    """The shared hold of ``ops.lock``: False (and nothing held) while a snapshot holds it."""
    fd = os.open(directory / OPS_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


def delete_older(
    hot: HotFile,
    cold: ColdFile,
    cutoff_us: int,
    *,
    include: tuple[str, ...] = (),
    exclude: tuple[str, ...] = (),
    limit: int = 500,
) -> int:
    """Delete the entries older than ``cutoff_us`` in the service scope, the oldest pages first, about
    ``limit`` of them (whole pages: a call may delete a page's worth more; callers go on while a call
    deletes ``limit`` or more); how many. 0 while a snapshot of the files is under way."""
    with _deleting(hot.path.parent) as allowed:
        if not allowed:
            return 0
        settle(hot, cold)
        _compact_expired(hot, cold, cutoff_us, include, exclude)
        conn = _hot(hot)
        with immediate(conn):
            pending = {
                seq for (seqs,) in conn.execute("SELECT seqs FROM retention_pending") for seq in _seqs(seqs)
            }
            plan = _plan(cold, cutoff_us, include, exclude, limit, pending)
            if not plan:
                return 0
            change_counts(conn, (row for _, rows in plan for row in rows), -1)
            conn.executemany(
                "INSERT INTO retention_pending(page_id, seqs) VALUES (?, ?)",
                [(page_id, msgspec.msgpack.encode([row[0] for row in rows])) for page_id, rows in plan],
            )
        settle(hot, cold)
        return sum(len(rows) for _, rows in plan)


def _seqs(data: bytes) -> list[int]:
    return msgspec.msgpack.decode(data, type=list[int])


def _compact_expired(
    hot: HotFile, cold: ColdFile, cutoff_us: int, include: tuple[str, ...], exclude: tuple[str, ...]
) -> None:
    """Seal and compact each hot generation holding an expired entry in scope."""
    conn = _hot(hot)
    due: list[tuple[int, int]] = []
    with conn:  # one snapshot: the compactor may drop a generation meanwhile
        for generation, state in _hot_generations(conn):
            services = conn.execute(
                f"SELECT DISTINCT service FROM hot_{generation} WHERE ts < ?", (cutoff_us,)
            ).fetchall()  # read to the end: a statement left open would keep the table from being dropped
            if any(_in_scope(str(service), include, exclude) for (service,) in services):
                due.append((generation, state))
    for generation, state in due:
        if state == OPEN:
            with immediate(conn):
                hot.seal(generation)  # unless an append sealed it meanwhile
        compact(hot, cold, generation)


def _plan(
    cold: ColdFile,
    cutoff_us: int,
    include: tuple[str, ...],
    exclude: tuple[str, ...],
    limit: int,
    pending: set[int],
) -> list[tuple[int, list[Row]]]:
    """The pages holding expired entries in scope, oldest first, and those entries, up to ``limit`` (or
    the page that reaches it)."""
    plan: list[tuple[int, list[Row]]] = []
    found = 0
    with cold.snapshot():
        pages = _cold(cold).execute(
            "SELECT page_id, summary FROM cold_pages WHERE min_ts < ? ORDER BY min_ts", (cutoff_us,)
        )
        for page_id, summary in cast(list[tuple[int, bytes]], pages.fetchall()):
            if not any(_in_scope(s, include, exclude) for s in PageSummary.from_bytes(summary).services):
                continue
            gone = [
                row
                for row in cold.page(page_id)
                if row[2] < cutoff_us and _in_scope(row[3], include, exclude) and row[0] not in pending
            ]
            if gone:
                plan.append((int(page_id), gone))
                found += len(gone)
                if found >= limit:
                    break
    return plan


def settle(hot: HotFile, cold: ColdFile) -> None:
    """Complete the deletions recorded in ``retention_pending`` (steps B and C; both idempotent)."""
    conn = _hot(hot)
    conn.execute(_PENDING)
    records = [
        (int(i), int(p), _seqs(s))
        for i, p, s in conn.execute("SELECT id, page_id, seqs FROM retention_pending")
    ]
    if not records:
        return
    _take_out(cold, [(page_id, set(seqs)) for _, page_id, seqs in records])
    with immediate(conn):
        conn.executemany("DELETE FROM retention_pending WHERE id = ?", [(i,) for i, _, _ in records])


def _take_out(cold: ColdFile, pages: Sequence[tuple[int, set[int]]]) -> None:
    """Take these arrival numbers out of these pages, in one durable transaction: a page left empty is
    deleted, another rewritten with the rows it keeps (a page id since given to another page holds none
    of them: arrival numbers are never given twice)."""
    conn = _cold(cold)
    codec = cold.codec
    with immediate(conn):
        for page_id, seqs in pages:
            found = conn.execute(
                "SELECT generation, body FROM cold_pages WHERE page_id = ?", (page_id,)
            ).fetchone()
            if found is None:
                continue
            rows = codec.decode(found[1])
            kept = [row for row in rows if row[0] not in seqs]
            if len(kept) == len(rows):
                continue
            if kept:
                body, s = codec.encode(kept)
                conn.execute(
                    "UPDATE cold_pages SET min_ts = ?, max_ts = ?, min_seq = ?, max_seq = ?, summary = ?, "
                    "body = ? WHERE page_id = ?",
                    (s.min_ts, s.max_ts, s.min_seq, s.max_seq, s.to_bytes(), body, page_id),
                )
            else:
                conn.execute("DELETE FROM cold_pages WHERE page_id = ?", (page_id,))
            conn.execute(
                "UPDATE cold_generations SET entries = entries - ? WHERE generation = ?",
                (len(rows) - len(kept), found[0]),
            )


def oldest(
    hot: HotFile, cold: ColdFile, *, include: tuple[str, ...] = (), exclude: tuple[str, ...] = ()
) -> int | None:
    """The event time of the oldest entry in the service scope. The hot file is read first: a
    generation compacted before the cold read is then read twice, which changes no minimum."""
    conn = _hot(hot)
    best: int | None = None
    with conn:
        for generation, _ in _hot_generations(conn):
            for service, first in conn.execute(
                f"SELECT service, min(ts) FROM hot_{generation} GROUP BY service"
            ):
                if _in_scope(service, include, exclude) and (best is None or first < best):
                    best = int(first)
    with cold.snapshot():
        pages = _cold(cold).execute("SELECT page_id, min_ts, summary FROM cold_pages ORDER BY min_ts")
        for page_id, min_ts, summary in cast(list[tuple[int, int, bytes]], pages.fetchall()):
            if best is not None and min_ts >= best:
                break  # every page from here on starts later
            if not any(_in_scope(s, include, exclude) for s in PageSummary.from_bytes(summary).services):
                continue
            for row in cold.page(page_id):
                if _in_scope(row[3], include, exclude) and (best is None or row[2] < best):
                    best = row[2]
    return best


def export_after(hot: HotFile, cold: ColdFile, after_seq: int, limit: int = 100_000) -> Export:
    """Rows of both files that arrived after ``after_seq`` (at most ``limit``, in arrival order), with the
    commit records covering them: what ``SQLiteStore.export_after`` gives on the same entries.

    The hot file is read in one snapshot first (its rows and ``commits``, written together), then the
    cold file in one: a generation compacted in between is read from the hot snapshot and skipped in the
    cold one; rows that arrived after the hot snapshot (its newest commit) are left for the next export,
    as their commit records are not in this one.
    """
    conn = _hot(hot)
    found: dict[int, Row] = {}
    with conn:
        commits = cast(
            list[tuple[int, int]],
            conn.execute(
                "SELECT last_seq, committed_at FROM commits WHERE last_seq > ? ORDER BY last_seq",
                (after_seq,),
            ).fetchall(),
        )
        cap = cast(int, conn.execute("SELECT coalesce(max(last_seq), 0) FROM commits").get)
        in_hot = set()
        for generation, _ in _hot_generations(conn):
            in_hot.add(generation)
            for row in conn.execute(
                f"SELECT {COLUMNS} FROM hot_{generation} WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?",
                (after_seq, cap, limit),
            ):
                found[row[0]] = cast(Row, tuple(row))
    cold_rows = 0
    with cold.snapshot():
        cconn = _cold(cold)
        generations = cast(
            list[tuple[int]],
            cconn.execute(
                "SELECT generation FROM cold_generations WHERE last_seq > ? ORDER BY first_seq", (after_seq,)
            ).fetchall(),
        )
        for (generation,) in generations:
            if cold_rows >= limit:
                break  # generations hold disjoint, rising arrival numbers: the rest come later
            if generation in in_hot:
                continue
            pages = cconn.execute(
                "SELECT page_id FROM cold_pages WHERE generation = ? AND max_seq > ?", (generation, after_seq)
            )
            for (page_id,) in cast(list[tuple[int]], pages.fetchall()):
                for row in cold.page(page_id):
                    if after_seq < row[0] <= cap:
                        found[row[0]] = row
                        cold_rows += 1
    rows = [found[seq] for seq in sorted(found)[:limit]]
    last = rows[-1][0] if rows else after_seq
    covering = []
    for commit in commits:  # up to the commit of the last row, which may hold later rows too
        covering.append(commit)
        if commit[0] >= last:
            break
    return Export(rows=list(rows), commits=covering if rows else [], last_seq=last)


def hot_service_stats(hot: HotFile) -> tuple[set[int], list[tuple[str, int, int, int, int]]]:
    """The hot generations read and, per service and generation, entries, bytes (message and metadata,
    UTF-8, as ``SQLiteFiles.stats`` counts them), oldest and newest event time, from one snapshot."""
    conn = _hot(hot)
    found: list[tuple[str, int, int, int, int]] = []
    generations: set[int] = set()
    with conn:
        for generation, _ in _hot_generations(conn):
            generations.add(generation)
            found += cast(
                list[tuple[str, int, int, int, int]],
                conn.execute(
                    "SELECT service, count(*), sum(length(CAST(message AS BLOB)) + "
                    "coalesce(length(CAST(metadata AS BLOB)), 0)), min(ts), max(ts) "
                    f"FROM hot_{generation} GROUP BY service"
                ).fetchall(),
            )
    return generations, found


def cold_rows(cold: ColdFile, *, skip: set[int]) -> Iterator[Row]:
    """Every row of the cold file's pages but those of the ``skip`` generations, from one snapshot."""
    with cold.snapshot():
        pages = _cold(cold).execute("SELECT page_id, generation FROM cold_pages ORDER BY page_id")
        for page_id, generation in cast(list[tuple[int, int]], pages.fetchall()):
            if generation not in skip:
                yield from cold.page(page_id)


def forget_newer(hot: HotFile, cold: ColdFile) -> None:
    """Delete from the cold file the generations the hot file does not record as sealed or compacted: in a
    copy of the hot file taken before the cold one, the generations appended and compacted in between
    (their counts and commit records are not in the hot copy), and one that was still open in the hot copy
    and compacted before the cold copy (its rows up to the hot copy's moment are in the hot copy, which
    goes on filling it), so that the copy is the store as it was when the hot file was copied."""
    known = [
        int(g) for (g,) in hot.select("SELECT generation FROM hot_generations WHERE state <> ?", (OPEN,))
    ]
    conn = _cold(cold)
    with immediate(conn):
        conn.execute("CREATE TEMP TABLE IF NOT EXISTS known_generations (generation INTEGER PRIMARY KEY)")
        conn.execute("DELETE FROM temp.known_generations")
        conn.executemany("INSERT INTO temp.known_generations VALUES (?)", [(g,) for g in known])
        for table in ("cold_pages", "cold_generations"):
            conn.execute(
                f"DELETE FROM {table} WHERE generation NOT IN (SELECT generation FROM temp.known_generations)"
            )
