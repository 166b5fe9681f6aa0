"""The SQLite writer's TEMP table and trigger. SQLite before 3.51 refuses, inside a trigger, a
schema-qualified table as the target of an INSERT or DELETE; the writer's trigger once did that, and no
store opened there. apsw-sqlite3mc's lower bound (3.46) allows such a SQLite, so the schema is also made
on the standard library's (3.40 on Debian 12), which checks a trigger's statements when it is created."""

from __future__ import annotations

import sqlite3

import apsw
import msgspec

from logsvc.storage.sqlite_rollups import FOLD_ROWS, ROLLUPS, Rollup
from logsvc.storage.sqlite_schema import SCHEMA
from logsvc.storage.sqlite_writer import WRITER_SCHEMA

MINUTE_US = 60_000_000


def test_the_writer_schema_is_accepted_by_an_older_sqlite() -> None:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.executescript(SCHEMA)
    for statement in WRITER_SCHEMA:
        conn.execute(statement)
    assert conn.execute(
        "SELECT name FROM sqlite_temp_master WHERE type = 'trigger' ORDER BY name"
    ).fetchall() == [("group_written_after_insert",), ("rollups_fold",)]


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
    assert dict(conn.execute("SELECT service, sum(n) FROM service_counts_all GROUP BY 1")) == {
        "api": 3,
        "db": 2,
    }
    assert conn.execute("SELECT count(*) FROM group_written").fetchone() == (0,)
    assert conn.execute("SELECT max(max_ts) FROM ts_watermarks").fetchone() == (5 * MINUTE_US,)


def _write_group(conn: apsw.Connection, first: int, count: int) -> None:
    rows = [
        (n.to_bytes(16, "big"), n * 7_000_000, f"svc-{n % 3}", 9 + 4 * (n % 2), "app", f"m{n}", None, n)
        for n in range(first, first + count)
    ]
    conn.execute(
        "INSERT INTO group_written SELECT (SELECT coalesce(max(seq), 0) FROM logs), 1, ?, ?",
        (b"".join(row[0] for row in rows), msgspec.json.encode([row[1:] for row in rows]).decode()),
    )


def _counted(conn: apsw.Connection, rollup: Rollup, source: str) -> dict[tuple[object, ...], int]:
    """Each key's count as the view ``source`` sums it, or (``source`` "logs") counted from the entries."""
    keys = ", ".join(f"ts / {rollup.grain_us}" if k == "slot" else k for k in rollup.key_columns)
    if source != "logs":
        keys = ", ".join(rollup.key_columns)
    total = "count(*)" if source == "logs" else "sum(n)"
    places = ", ".join(str(i + 1) for i in range(len(rollup.key_columns)))
    found = conn.execute(f"SELECT {keys}, {total} FROM {source} GROUP BY {places}").fetchall()  # noqa: S608
    return {tuple(row[:-1]): row[-1] for row in found}


def _every_rollup_counts_every_entry(conn: apsw.Connection) -> None:
    for rollup in ROLLUPS:
        assert _counted(conn, rollup, rollup.view) == _counted(conn, rollup, "logs"), rollup.table
    services = dict(conn.execute("SELECT service, count(*) FROM logs GROUP BY 1").fetchall())
    assert dict(conn.execute("SELECT service, sum(n) FROM service_counts_all GROUP BY 1")) == services


def test_the_rollups_count_in_bulk_and_their_views_count_every_entry() -> None:
    """The writer adds entries to the rollups FOLD_ROWS arrival numbers at a time (decision 55); the views
    reads use count the entries after those on the spot, and the delete trigger takes off only entries
    that were counted: whatever is written or deleted, and when, the views count every entry stored."""
    conn = apsw.Connection(":memory:")
    conn.execute(SCHEMA)
    for statement in WRITER_SCHEMA:
        conn.execute(statement)
    group = 100
    for first in range(1, FOLD_ROWS, group):
        _write_group(conn, first, min(group, FOLD_ROWS - first))
        _every_rollup_counts_every_entry(conn)
    assert conn.execute("SELECT last_seq FROM rollups_counted").fetchall() == [(0,)]
    assert conn.execute("SELECT count(*) FROM levels_1m").get == 0
    # Deleted before it was counted: nothing to take off.
    conn.execute("DELETE FROM logs WHERE seq = 10")
    _every_rollup_counts_every_entry(conn)

    _write_group(conn, FOLD_ROWS, group)  # its newest number is FOLD_ROWS + 99: the entries are added
    newest = FOLD_ROWS + group - 1
    assert conn.execute("SELECT last_seq FROM rollups_counted").fetchall() == [(newest,)]
    assert conn.execute("SELECT sum(n) FROM service_counts").get == newest - 1
    _every_rollup_counts_every_entry(conn)

    _write_group(conn, newest + 1, 5)
    # Counted ones taken off (the oldest, one of the newest counted), one not counted yet left alone.
    conn.execute("DELETE FROM logs WHERE seq IN (1, 2, ?, ?)", (newest, newest + 3))
    _every_rollup_counts_every_entry(conn)
    assert conn.execute("SELECT sum(n) FROM service_counts").get == newest - 4


def test_the_views_find_the_uncounted_entries_by_their_arrival_numbers() -> None:
    """A read's conditions on a view reach its arm of uncounted entries too: that arm must still find them
    by arrival number (the newest few), never by an index of a column, which would read every entry of a
    service or level of the store, filtered by each key column or by none, grouped or not."""
    conn = apsw.Connection(":memory:")
    conn.execute(SCHEMA)
    conn.execute("ANALYZE")
    by_rowid = "SEARCH logs USING INTEGER PRIMARY KEY (rowid>?)"
    views = [(rollup.view, rollup.key_columns) for rollup in ROLLUPS] + [("service_counts_all", ("service",))]
    for view, columns in views:
        conditions = {
            "slot": "slot >= 1 AND slot < 9",
            "level": "level IN (9, 17)",
            "service": "service > 'svc-1' AND service < 'svc-2'",
            "log_type": "log_type = 'x'",
        }
        wheres = [
            "1",
            *(conditions[column] for column in columns),
            " AND ".join(conditions[c] for c in columns),
        ]
        reads = [f"SELECT sum(n) FROM {view} WHERE {where}" for where in wheres]  # noqa: S608
        reads.append(f"SELECT {columns[0]}, sum(n) FROM {view} GROUP BY 1")  # noqa: S608
        for read in reads:
            plan = [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {read}")]
            assert [step for step in plan if " logs " in f"{step} "] == [by_rowid], (read, plan)
