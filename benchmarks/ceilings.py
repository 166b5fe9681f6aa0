"""Ceiling B: how fast SQLite itself stores batches of 1,000 entries durably, with no HTTP or Python service.

Run in this process on the same file system as the server's store, with the same pragmas (WAL,
synchronous=FULL, the store's cache size) and one transaction per 1,000 rows. Two tables: the one logsvc
creates (its indexes and full-text index) and a plain table with the same columns and no secondary index,
so that the cost of indexing is visible on its own.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import apsw
import msgspec
import uuid_utils

from logsvc.domain.entries import Level
from logsvc.storage import sqlite_schema as sqlite_store
from logsvc.storage.sqlite import SQLiteStore

# The store's own statements: the same insert (a known log_id is skipped) and the same one-statement feed
# of the full-text index with the transaction's new rows.
_PLAIN_SCHEMA = sqlite_store.LOGS_TABLE
# A plain table has no unique index for the conflict clause to name.
_INSERT_PLAIN = sqlite_store.INSERT_ENTRY.partition(" ON CONFLICT")[0]
_LAST_SEQ = "SELECT coalesce(max(seq), 0) FROM logs"

Template = list[tuple[str, int, str, str]]


def template_rows(entries: list[dict[str, Any]]) -> Template:
    """(service, level number, message, metadata JSON) of the batch the HTTP scenario posts."""
    return [
        (
            entry["service_name"],
            int(Level[entry["level"]]),
            entry["message"],
            msgspec.json.encode(entry["metadata"]).decode(),
        )
        for entry in entries
    ]


def insert_rates(
    path: Path, template: Template, *, logsvc_schema: bool, warmup_s: float, duration_s: float, runs: int
) -> list[float]:
    """Rows per second of each run, after one warm-up, all into one database as the server's grows."""
    if logsvc_schema:
        asyncio.run(SQLiteStore(path, read_threads=1).close())
    conn = apsw.Connection(str(path))
    try:
        conn.execute("PRAGMA journal_mode=WAL").fetchall()
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA cache_size=-32000")
        if not logsvc_schema:
            conn.execute(_PLAIN_SCHEMA)

        def insert(rows: list[tuple[Any, ...]]) -> None:
            conn.execute("BEGIN IMMEDIATE")
            last_seq = conn.execute(_LAST_SEQ).get if logsvc_schema else 0
            conn.executemany(sqlite_store.INSERT_ENTRY if logsvc_schema else _INSERT_PLAIN, rows)
            if logsvc_schema:
                conn.execute(sqlite_store.INDEX_NEW_ROWS, (last_seq,))
            conn.execute("COMMIT")

        _rate(insert, template, warmup_s)
        return [_rate(insert, template, duration_s) for _ in range(runs)]
    finally:
        conn.close()


def _rate(insert: Callable[[list[tuple[Any, ...]]], None], template: Template, seconds: float) -> float:
    """Only the transactions are timed: making the rows is the service's work, not the database's."""
    busy = 0.0
    rows = 0
    while busy < seconds:
        now_us = time.time_ns() // 1000
        batch = [
            (uuid_utils.uuid7().bytes, now_us, service, level, "application", message, metadata, now_us)
            for service, level, message, metadata in template
        ]
        started = time.perf_counter()
        insert(batch)
        busy += time.perf_counter() - started
        rows += len(batch)
    return rows / busy
