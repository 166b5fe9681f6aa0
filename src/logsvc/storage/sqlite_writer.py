"""The SQLite store's write transaction, run by the one writer thread with group commit (``writer``).

A group's entries are numbered on in arrival order, indexed for full-text search, counted in the rollups,
their watermarks raised and the commit recorded, all in one transaction; a request is acknowledged only
after its COMMIT returned.

apsw gives up the GIL around every call into SQLite, and the writer thread then waits to get it back from
the event loop, up to the interpreter's switch interval (5 ms) when the loop is busy. So a group is written
in few calls (decision 36): its rows in multi-row INSERTs, and everything that follows them (the full-text
index, the rollups, the watermarks, the commit record) in one statement, the insert of the group's row into
a scratch table whose trigger runs the rest inside SQLite. The trigger and the table are TEMP: this
connection's own, never in the file.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final, cast

import apsw

from logsvc.storage.sqlite_rollups import FRESH_COUNTS, counting
from logsvc.storage.sqlite_schema import BLOCK_SHIFT, INDEX_NEW_ROWS, INSERT_ENTRY, INSERT_NUMBERED
from logsvc.storage.writer import Job, Writer, turns_lock

__all__ = ["WRITER_SCHEMA", "sqlite_writer"]

_LAST_NUMBERS = (
    "SELECT (SELECT coalesce(max(seq), 0) FROM logs), (SELECT coalesce(max(last_seq), 0) FROM commits)"
)
# Rows per INSERT at most (9 values each); a group's rows go in chunks of powers of two, so that a few
# statements, prepared once each, serve every group size.
_CHUNK_ROWS: Final = 128
_GROUP_TABLE = (
    "CREATE TEMP TABLE IF NOT EXISTS group_written (last_seq INTEGER NOT NULL, at INTEGER NOT NULL)"
)
# Each touched block's max_ts is raised to at least the largest event time of every row up to its end: the
# running maximum of the new blocks' maxima, from the newest block's watermark before them.
_RAISE_WATERMARKS = (
    "INSERT INTO ts_watermarks(block, max_ts) "
    "SELECT block, max(coalesce((SELECT max_ts FROM ts_watermarks ORDER BY block DESC LIMIT 1), 0), "
    "max(block_max) OVER (ORDER BY block ROWS UNBOUNDED PRECEDING)) "
    f"FROM (SELECT seq >> {BLOCK_SHIFT} AS block, max(ts) AS block_max FROM logs "
    "WHERE seq > new.last_seq GROUP BY 1) WHERE true ORDER BY block "
    "ON CONFLICT(block) DO UPDATE SET max_ts = max(max_ts, excluded.max_ts)"
)
# A transaction of duplicates only adds no row: its last_seq is the previous commit's, which stands.
_RECORD_COMMIT = "INSERT OR IGNORE INTO commits VALUES ((SELECT max(seq) FROM logs), new.at)"
_AFTER_GROUP = (
    "CREATE TEMP TRIGGER IF NOT EXISTS group_written_after_insert AFTER INSERT ON group_written BEGIN\n"
    + "".join(
        f"    {statement};\n"
        for statement in (
            INDEX_NEW_ROWS.replace("?", "new.last_seq"),
            *counting("logs", "new.last_seq"),
            _RAISE_WATERMARKS,
            _RECORD_COMMIT,
            "DELETE FROM group_written",
        )
    )
    + "END"
)
_GROUP_WRITTEN = "INSERT INTO group_written VALUES (?, ?)"
# The write connection's own (TEMP) tables and trigger. Inside a trigger, SQLite before 3.51 refuses a
# schema-qualified table as the target of an INSERT or DELETE: the temp tables are named bare, and found
# in the temp schema first.
WRITER_SCHEMA: Final = (FRESH_COUNTS, _GROUP_TABLE, _AFTER_GROUP)


def sqlite_writer(conn: apsw.Connection, on_commit: Callable[[int], None] | None) -> Writer[apsw.Connection]:
    """The writer thread of the store whose write connection is ``conn`` (it owns and closes it)."""
    path = conn.filename
    for statement in WRITER_SCHEMA:
        conn.execute(statement)
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
            last_seq, committed = cast(tuple[int, int], conn.execute(_LAST_NUMBERS).fetchone())
            if last_seq >= committed:
                _insert(conn, INSERT_ENTRY, rows)
            else:
                # The newest rows were deleted (a purge): SQLite would number the next ones as theirs.
                _insert(conn, INSERT_NUMBERED, [(committed + i, *row) for i, row in enumerate(rows, 1)])
            conn.execute(_GROUP_WRITTEN, (last_seq, time.time_ns() // 1000))
        for job in group:
            if job.work is not None:
                job.result = job.work(conn)
        conn.execute("COMMIT")
    except Exception:
        if not conn.getautocommit():
            conn.execute("ROLLBACK")
        raise


def _insert(conn: apsw.Connection, statement: str, rows: Sequence[tuple[Any, ...]]) -> None:
    """``rows`` by ``statement`` (one row's INSERT), many rows a statement."""
    done = 0
    while done < len(rows):
        size = min(_CHUNK_ROWS, 1 << ((len(rows) - done).bit_length() - 1))
        chunk = rows[done : done + size]
        conn.execute(_rows_of(statement, size), [value for row in chunk for value in row])
        done += size


@functools.cache
def _rows_of(statement: str, count: int) -> str:
    """``statement``, an INSERT of one row's ``VALUES (?, ...)``, for ``count`` rows at once."""
    head, _, rest = statement.partition(" VALUES (")
    values, _, tail = rest.partition(")")
    return f"{head} VALUES {', '.join([f'({values})'] * count)}{tail}"
