"""The same entries in today's SQLiteStore (the reference) and in the two files of storage v2, for the
tests of the tiered store's data-protection operations (retention, export, stats, snapshots, migration)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import apsw

from logsvc.crypto.sqlite import connect
from logsvc.domain.entries import Level, NewEntry
from logsvc.storage.sqlite import SQLiteStore
from logsvc.storage.sqlite_rollups import ROLLUPS
from logsvc.storage.sqlite_schema import COLUMNS, Row
from logsvc.storage.tiers import ColdFile, HotFile, NewRow

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
    """The append of the hot file, which writes the rollups and the commit record in its transaction."""
    hot.append(rows)


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
    """Every rollup's and service_counts' counts as reads find them (their views, decision 55): a row
    per key, sorted."""
    keys = {rollup.table: rollup.key_columns for rollup in ROLLUPS} | {"service_counts": ("service",)}
    return {
        table: sorted(
            conn.execute(
                f"SELECT {', '.join(columns)}, sum(n) FROM {table}_all GROUP BY {', '.join(columns)}"  # noqa: S608
            ).fetchall()
        )
        for table, columns in keys.items()
    }


def sqlite_counts(path: Path, key: bytes | None) -> dict[str, list[tuple[Any, ...]]]:
    conn = connect(path, key)
    try:
        return counts(conn)
    finally:
        conn.close()
