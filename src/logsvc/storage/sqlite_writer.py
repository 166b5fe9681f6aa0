"""The SQLite store's write transaction, run by the one writer thread with group commit (``writer``).

A group's entries are numbered on in arrival order, indexed for full-text search, counted in the rollups,
their watermarks raised and the commit recorded, all in one transaction; a request is acknowledged only
after its COMMIT returned.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import cast

import apsw

from logsvc.storage.sqlite_rollups import count_new_rows
from logsvc.storage.sqlite_schema import BLOCK_SHIFT, INDEX_NEW_ROWS, INSERT_ENTRY, INSERT_NUMBERED
from logsvc.storage.writer import Job, Writer, turns_lock

__all__ = ["sqlite_writer"]

# A transaction of duplicates only adds no row: its last_seq is the previous commit's, which stands.
_RECORD_COMMIT = "INSERT OR IGNORE INTO commits VALUES ((SELECT max(seq) FROM logs), ?)"
_LAST_COMMITTED = "SELECT coalesce(max(last_seq), 0) FROM commits"
_NEW_BLOCK_MAXIMA = f"SELECT seq >> {BLOCK_SHIFT}, max(ts) FROM logs WHERE seq > ? GROUP BY 1 ORDER BY 1"
_RAISE_WATERMARK = (
    "INSERT INTO ts_watermarks(block, max_ts) VALUES (?, ?) "
    "ON CONFLICT(block) DO UPDATE SET max_ts = max(max_ts, excluded.max_ts)"
)


def sqlite_writer(conn: apsw.Connection, on_commit: Callable[[int], None] | None) -> Writer[apsw.Connection]:
    """The writer thread of the store whose write connection is ``conn`` (it owns and closes it)."""
    path = conn.filename
    return Writer(
        conn,
        _write,
        lock=turns_lock(Path(path)) if path else None,
        on_commit=on_commit,
        close=conn.close,
    )


def _write(conn: apsw.Connection, group: list[Job[apsw.Connection]]) -> None:
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
            _raise_watermarks(conn, last_seq)
            conn.execute(_RECORD_COMMIT, (time.time_ns() // 1000,))
        for job in group:
            if job.work is not None:
                job.result = job.work(conn)
        conn.execute("COMMIT")
    except Exception:
        if not conn.getautocommit():
            conn.execute("ROLLBACK")
        raise


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
