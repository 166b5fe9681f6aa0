"""The same entries in today's SQLiteStore (the reference) and in the two files of storage v2, for the
tests of the tiered store's data-protection operations (retention, export, stats, snapshots, migration)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import apsw

from logsvc.crypto.sqlite import connect
from logsvc.domain.entries import Level, NewEntry
from logsvc.storage.sqlite import SQLiteStore
from logsvc.storage.sqlite_rollups import ROLLUP_TABLES
from logsvc.storage.sqlite_schema import COLUMNS, Row
from logsvc.storage.tiers import ColdFile, HotFile, NewRow
from logsvc.storage.tiers_ops import change_counts, ensure_counts

BASE_US = 1_764_460_800_000_000
LEVELS = [1, 5, 9, 13, 17, 21]


def batch(first: int, count: int) -> list[NewRow]:
    """Entries of five services, levels and two types, event times out of arrival order over hours."""
    return [
        (
            (first + i).to_bytes(16, "big"),
            BASE_US + ((first + i) * 7919 % 5000) * 1_500_000,
            f"svc-{(first + i) % 5}",
            LEVELS[(first + i) % len(LEVELS)],
            "application" if (first + i) % 3 else "access",
            f"entry {first + i} said hello to the secret-word-{first + i}",
            None if (first + i) % 4 else '{"k":1}',
            BASE_US + (first + i) * 1000,
        )
        for i in range(count)
    ]


def append_tiered(hot: HotFile, rows: Sequence[NewRow]) -> None:
    """HotFile.append with its rollups and commit record in its one transaction, as the contract says the
    append writes them (h-v2write's append; until it is merged here, its steps are taken here)."""
    conn: apsw.Connection = hot._conn
    ensure_counts(hot)
    conn.execute("BEGIN IMMEDIATE")
    try:
        generation, next_seq = hot._open_generation()
        table = f"hot_{generation}"
        known = hot._known(rows)
        fresh = [row for row in rows if (row[0], row[2]) not in known]
        numbered: list[Row] = [(next_seq + i, *row) for i, row in enumerate(fresh)]
        conn.executemany(f"INSERT INTO {table}({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", numbered)  # noqa: S608
        conn.execute(
            f"INSERT INTO {table}_fts(rowid, message) SELECT seq, message FROM {table} WHERE seq >= ?",  # noqa: S608
            (next_seq,),
        )
        if numbered:
            change_counts(conn, numbered, 1)
            conn.execute("INSERT INTO commits VALUES (?, ?)", (numbered[-1][0], time.time_ns() // 1000))
            if numbered[-1][0] - hot.first_seq(generation) + 1 >= hot._limit:
                conn.execute(
                    "UPDATE hot_generations SET state = 1, last_seq = ? WHERE generation = ?",
                    (numbered[-1][0], generation),
                )
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def entries(rows: Sequence[NewRow]) -> list[NewEntry]:
    return [
        NewEntry(log_id, service, ts, Level(level), log_type, message, metadata, received)
        for log_id, ts, service, level, log_type, message, metadata, received in rows
    ]


def append_sqlite(store: SQLiteStore, rows: Sequence[NewRow]) -> None:
    asyncio.run(store.append(entries(rows)))


def sqlite_rows(path: Path, key: bytes | None) -> list[Row]:
    conn = connect(path, key)
    try:
        return [tuple(row) for row in conn.execute(f"SELECT {COLUMNS} FROM logs ORDER BY seq")]  # type: ignore[misc]  # noqa: S608
    finally:
        conn.close()


def tiered_rows(hot: HotFile, cold: ColdFile) -> list[Row]:
    found: dict[int, Row] = {row[0]: row for row in cold.rows()}
    for generation in hot.generations(0, 1):
        found.update((row[0], row) for row in hot.rows(generation))
    return [found[seq] for seq in sorted(found)]


def counts(conn: apsw.Connection) -> dict[str, list[tuple[Any, ...]]]:
    """Every rollup's and service_counts' rows, sorted."""
    return {table: sorted(conn.execute(f"SELECT * FROM {table}").fetchall()) for table in ROLLUP_TABLES}  # noqa: S608


def sqlite_counts(path: Path, key: bytes | None) -> dict[str, list[tuple[Any, ...]]]:
    conn = connect(path, key)
    try:
        return counts(conn)
    finally:
        conn.close()
