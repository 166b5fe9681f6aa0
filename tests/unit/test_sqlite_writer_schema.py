"""The SQLite writer's TEMP table and trigger. SQLite before 3.51 refuses, inside a trigger, a
schema-qualified table as the target of an INSERT or DELETE; the writer's trigger once did that, and no
store opened there. apsw-sqlite3mc's lower bound (3.46) allows such a SQLite, so the schema is also made
on the standard library's (3.40 on Debian 12), which checks a trigger's statements when it is created."""

from __future__ import annotations

import sqlite3

import apsw
import msgspec

from logsvc.storage.sqlite_schema import SCHEMA
from logsvc.storage.sqlite_writer import WRITER_SCHEMA

MINUTE_US = 60_000_000


def test_the_writer_schema_is_accepted_by_an_older_sqlite() -> None:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.executescript(SCHEMA)
    for statement in WRITER_SCHEMA:
        conn.execute(statement)
    assert conn.execute("SELECT name FROM sqlite_temp_master WHERE type = 'trigger'").fetchall() == [
        ("group_written_after_insert",)
    ]


def test_a_group_written_through_the_trigger_is_stored_indexed_counted_and_recorded() -> None:
    conn = apsw.Connection(":memory:")
    conn.execute(SCHEMA)
    for statement in WRITER_SCHEMA:
        conn.execute(statement)
    rows = [
        (bytes([n]) * 16, n * MINUTE_US, "api" if n % 2 else "db", 9, "app", f"word{n} shared", None, n)
        for n in range(1, 6)
    ]
    conn.execute(
        "INSERT INTO group_written VALUES (0, 123, ?, ?)",
        (b"".join(row[0] for row in rows), msgspec.json.encode([row[1:] for row in rows]).decode()),
    )
    assert conn.execute("SELECT seq, log_id, message, metadata FROM logs ORDER BY seq").fetchall() == [
        (n, bytes([n]) * 16, f"word{n} shared", None) for n in range(1, 6)
    ]
    assert conn.execute("SELECT last_seq, committed_at FROM commits").fetchall() == [(5, 123)]
    assert conn.execute("SELECT rowid FROM logs_fts WHERE logs_fts MATCH 'shared'").fetchall() == [
        (n,) for n in range(1, 6)
    ]
    assert dict(conn.execute("SELECT service, n FROM service_counts")) == {"api": 3, "db": 2}
    assert conn.execute("SELECT count(*) FROM group_written").fetchone() == (0,)
    assert conn.execute("SELECT max(max_ts) FROM ts_watermarks").fetchone() == (5 * MINUTE_US,)
