"""The SQLite store's write transaction, run by the one writer thread with group commit (``writer``).

A group's entries are numbered on in arrival order, indexed for full-text search, their watermarks raised
and the commit recorded, all in one transaction (and every FOLD_ROWS arrival numbers, counted in the
rollups: ``sqlite_rollups``); a request is acknowledged only after its COMMIT returned.

apsw gives up the GIL around every call into SQLite, and the writer thread must then win it back from the
event loop, which (under uvloop) gives it up and takes it again between every two callbacks, so the writer
mostly gets it only when the loop idles. So a group of rows is written in ONE call (decisions 36 and 44):
the insert of the group's row into a scratch table, its rows bound as two values (their ids as one blob,
the rest as one JSON array), whose trigger inserts the rows and does everything that follows them (the
full-text index, the watermarks, the commit record, the rollups when due) inside SQLite. Without other
work in the group the statement runs in autocommit mode: it is its own transaction, committed before it
returns. The trigger and the table are TEMP: this connection's own, never in the file. The trigger also
keeps how many rows the group stored (a re-sent log_id is skipped), which one more small read returns for
the metrics.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Final

import apsw
import msgspec

from logsvc.storage.port import OnCommit
from logsvc.storage.sqlite_rollups import FOLD, FOLD_TRIGGER, FRESH_COUNTS
from logsvc.storage.sqlite_schema import BLOCK_SHIFT, INDEX_NEW_ROWS
from logsvc.storage.writer import Encoded, Job, Rows, Writer, turns_lock

__all__ = ["WRITER_SCHEMA", "encode_rows", "sqlite_writer"]

_ID_BYTES: Final = 16
# A group: the newest number before it, the commit time, its rows' log_ids end to end (16 bytes each) and
# the rest of each row as a JSON array (``new_rows``'s values after the id, in that order).
_GROUP_TABLE = (
    "CREATE TEMP TABLE IF NOT EXISTS group_written "
    "(last_seq INTEGER NOT NULL, at INTEGER NOT NULL, ids BLOB NOT NULL, rows TEXT NOT NULL)"
)
# The rows, numbered by SQLite (the next after the newest) unless the newest were deleted (a purge): then
# after the last committed number, as numbers are never reused (decision 23). A log_id already stored for
# the service is skipped (idempotent retries).
_INSERT_ROWS = (
    "INSERT INTO logs(seq, log_id, ts, service, level, log_type, message, metadata, received) "
    "SELECT CASE WHEN new.last_seq >= c.committed THEN NULL ELSE c.committed + 1 + r.key END, "
    f"substr(new.ids, r.key * {_ID_BYTES} + 1, {_ID_BYTES}), "
    "r.value ->> 0, r.value ->> 1, r.value ->> 2, r.value ->> 3, r.value ->> 4, r.value ->> 5, r.value ->> 6 "
    "FROM jsonb_each(new.rows) AS r, (SELECT coalesce(max(last_seq), 0) AS committed FROM commits) AS c "
    "WHERE true ORDER BY r.key ON CONFLICT(log_id, service) DO NOTHING"
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
            _INSERT_ROWS,
            "UPDATE group_stored SET entries = changes()",  # the rows that insert stored, retries skipped
            INDEX_NEW_ROWS.replace("?", "new.last_seq"),
            FOLD,
            _RAISE_WATERMARKS,
            _RECORD_COMMIT,
            "DELETE FROM group_written",
        )
    )
    + "END"
)
# How many of its rows the last group stored, set by its trigger: one row.
_STORED_TABLE = "CREATE TEMP TABLE IF NOT EXISTS group_stored AS SELECT 0 AS entries"
_GROUP_WRITTEN = "INSERT INTO group_written SELECT (SELECT coalesce(max(seq), 0) FROM logs), ?, ?, ?"
# The write connection's own (TEMP) tables and trigger. Inside a trigger, SQLite before 3.51 refuses a
# schema-qualified table as the target of an INSERT or DELETE: the temp tables are named bare, and found
# in the temp schema first.
WRITER_SCHEMA: Final = (FRESH_COUNTS, FOLD_TRIGGER, _GROUP_TABLE, _STORED_TABLE, _AFTER_GROUP)


def sqlite_writer(conn: apsw.Connection, on_commit: OnCommit | None) -> Writer[apsw.Connection]:
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


def encode_rows(rows: Rows) -> Encoded:
    """``rows`` (``new_rows``'s tuples) as the group's statement takes them (their JSON arrays without the
    enclosing brackets, so that those of several jobs join with commas)."""
    values = msgspec.json.encode([row[1:] for row in rows])[1:-1]
    return Encoded(len(rows), b"".join([row[0] for row in rows]), values)


def _write(conn: apsw.Connection, group: list[Job[apsw.Connection]]) -> int:
    if all(job.work is None for job in group):
        return _write_rows(conn, group)
    try:
        conn.execute("BEGIN IMMEDIATE")
        stored = _write_rows(conn, group)
        for job in group:
            if job.work is not None:
                job.result = job.work(conn)
        conn.execute("COMMIT")
        return stored
    except Exception:
        if not conn.getautocommit():
            conn.execute("ROLLBACK")
        raise


def _write_rows(conn: apsw.Connection, group: list[Job[apsw.Connection]]) -> int:
    """The group's rows (``new_rows``'s tuples, or ``Encoded`` by the workers of a shared writer) in one
    statement: its own transaction in autocommit mode. Nothing without rows. How many it stored."""
    plain: Rows = []
    encoded: list[Encoded] = []
    for job in group:
        if isinstance(job.rows, Encoded):
            encoded.append(job.rows)
        elif job.rows:
            plain += job.rows
    if plain:
        encoded.append(encode_rows(plain))
    ids: list[bytes] = []
    values: list[bytes] = []
    for rows in encoded:
        if not rows.count:
            continue  # an empty append, as the store's writer takes it
        # An id of another length would shift every id after it.
        if len(rows.ids) != _ID_BYTES * rows.count:
            raise ValueError(f"{rows.count} rows whose log_ids are not {_ID_BYTES} bytes each")
        ids.append(rows.ids)
        values.append(rows.values)
    if ids:
        rest = b"[" + b",".join(values) + b"]"
        conn.execute(_GROUP_WRITTEN, (time.time_ns() // 1000, b"".join(ids), rest.decode()))
        # A second call into SQLite, so the writer thread takes the GIL back once more: about 10 µs a
        # commit with the event loop busy (decision 52), against the commit's few hundred.
        stored: int = conn.execute("SELECT entries FROM group_stored").get
        return stored
    return 0
