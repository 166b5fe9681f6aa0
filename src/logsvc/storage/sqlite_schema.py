"""The embedded store's schema, its migration, and how its connections are opened.

Durability: ``synchronous=FULL`` makes every COMMIT fsync the WAL, and a request is acknowledged only after
the COMMIT that holds its entries returned (see ``sqlite_writer``).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Final, TypeAlias

import apsw

from logsvc.crypto.sqlite import connect
from logsvc.errors import ConfigError

__all__ = [
    "BLOCK_SHIFT",
    "COLUMNS",
    "COUNT_NEW_ROWS",
    "INDEX_NEW_ROWS",
    "INSERT_ENTRY",
    "LOGS_TABLE",
    "ROLLUPS",
    "SCHEMA",
    "SCHEMA_VERSION",
    "Row",
    "make_private",
    "open_connection",
]

SCHEMA_VERSION: Final = 4
# The schema version that added the rollups: a store made before has them filled from its entries.
_ROLLUPS_SINCE: Final = 4
# Rows are grouped in blocks of 2**12 arrival numbers for the full-text search watermarks (see sqlite_reads).
BLOCK_SHIFT: Final = 12
_BUSY_TIMEOUT_MS: Final = 5_000

LOGS_TABLE = """
CREATE TABLE IF NOT EXISTS logs (
    seq INTEGER PRIMARY KEY,
    log_id BLOB NOT NULL,
    ts INTEGER NOT NULL,
    service TEXT NOT NULL,
    level INTEGER NOT NULL,
    log_type TEXT NOT NULL,
    message TEXT NOT NULL,
    metadata TEXT,
    received INTEGER NOT NULL
) STRICT;
"""
# The rollups (decision 24): entries counted per (slot of the grain, level, service, type), coarsest grain
# first, and per service. The writer adds each transaction's rows to them in that transaction
# (COUNT_NEW_ROWS); a trigger takes off every entry deleted, whatever deletes it (retention, purge), and
# drops the counts that reach 0. Event times are never before 1970, so ts / grain is the slot's floor.
ROLLUPS: Final = ((3_600_000_000, "counts_hour"), (60_000_000, "counts_minute"))
_ROLLUP_TABLE = """
CREATE TABLE IF NOT EXISTS {table} (
    slot INTEGER NOT NULL,
    level INTEGER NOT NULL,
    service TEXT NOT NULL,
    log_type TEXT NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (slot, level, service, log_type)
) STRICT, WITHOUT ROWID;"""
_OLD_KEY = (
    "slot = old.ts / {grain} AND level = old.level AND service = old.service AND log_type = old.log_type"
)
_UNCOUNT = """
    UPDATE {table} SET n = n - 1 WHERE {key};
    DELETE FROM {table} WHERE {key} AND n = 0;"""

SCHEMA = (
    LOGS_TABLE
    + f"""
-- A log_id is unique within its service (decision 15): a writer cannot make another service's entry vanish.
CREATE UNIQUE INDEX IF NOT EXISTS logs_log_id_service ON logs(log_id, service);
CREATE INDEX IF NOT EXISTS logs_ts ON logs(ts);
CREATE INDEX IF NOT EXISTS logs_service_ts ON logs(service, ts);
CREATE INDEX IF NOT EXISTS logs_level_ts ON logs(level, ts);
CREATE INDEX IF NOT EXISTS logs_service_level_ts ON logs(service, level, ts);
CREATE VIRTUAL TABLE IF NOT EXISTS logs_fts USING fts5(
    message, content='logs', content_rowid='seq', tokenize='unicode61 remove_diacritics 2'
);
-- max_ts of block b is the largest event time of any row whose seq is below (b + 1) << {BLOCK_SHIFT}.
CREATE TABLE IF NOT EXISTS ts_watermarks (block INTEGER PRIMARY KEY, max_ts INTEGER NOT NULL) STRICT;
-- When each transaction committed, by the last arrival number it holds: point-in-time restore needs it.
CREATE TABLE IF NOT EXISTS commits (last_seq INTEGER PRIMARY KEY, committed_at INTEGER NOT NULL) STRICT;
-- Fewer, larger merges of the index's segments: ingest is write-heavy and searches read few segments.
INSERT INTO logs_fts(logs_fts, rank) VALUES ('automerge', 16);
CREATE TRIGGER IF NOT EXISTS logs_after_delete AFTER DELETE ON logs BEGIN
    INSERT INTO logs_fts(logs_fts, rowid, message) VALUES ('delete', old.seq, old.message);
END;
{"".join(_ROLLUP_TABLE.format(table=table) for _, table in ROLLUPS)}
CREATE TABLE IF NOT EXISTS service_counts (
    service TEXT PRIMARY KEY,
    n INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS logs_counts_after_delete AFTER DELETE ON logs BEGIN{
        "".join(_UNCOUNT.format(table=table, key=_OLD_KEY.format(grain=grain)) for grain, table in ROLLUPS)
    }
    UPDATE service_counts SET n = n - 1 WHERE service = old.service;
    DELETE FROM service_counts WHERE service = old.service AND n = 0;
END;
"""
)
# Each rollup counts the rows a transaction added (seq > ?): what was stored, not the duplicates ON CONFLICT
# skipped. (The WHERE also settles SQLite's INSERT ... SELECT ... ON CONFLICT parsing ambiguity.)
COUNT_NEW_ROWS: Final = (
    *(
        f"INSERT INTO {table}(slot, level, service, log_type, n) "
        f"SELECT ts / {grain}, level, service, log_type, count(*) FROM logs WHERE seq > ? "
        "GROUP BY 1, 2, 3, 4 ON CONFLICT DO UPDATE SET n = n + excluded.n"
        for grain, table in ROLLUPS
    ),
    "INSERT INTO service_counts(service, n) SELECT service, count(*) FROM logs WHERE seq > ? GROUP BY 1 "
    "ON CONFLICT DO UPDATE SET n = n + excluded.n",
)

INSERT_ENTRY = (
    "INSERT INTO logs(log_id, ts, service, level, log_type, message, metadata, received) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(log_id, service) DO NOTHING"
)
# The full-text index and the watermarks are written by explicit statements over the rows a transaction
# added, not by an AFTER INSERT trigger: FTS5 fed row by row from a trigger ingests about 4x slower.
INDEX_NEW_ROWS = "INSERT INTO logs_fts(rowid, message) SELECT seq, message FROM logs WHERE seq > ?"
COLUMNS = "seq, log_id, ts, service, level, log_type, message, metadata, received"

Row: TypeAlias = tuple[int, bytes, int, str, int, str, str, str | None, int]


def open_connection(path: Path, key: bytes | None, *, write: bool) -> apsw.Connection:
    """The write connection (WAL, full fsync, schema migrated) or a query-only read connection."""
    conn = connect(path, key)
    try:
        conn.set_busy_timeout(_BUSY_TIMEOUT_MS)
        if write:
            conn.execute("PRAGMA journal_mode=WAL").fetchall()
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA journal_size_limit=67108864")
            _migrate(conn)
        else:
            conn.execute("PRAGMA query_only=ON")
        conn.execute("PRAGMA cache_size=-32000")
    except apsw.Error as exc:
        raise ConfigError(f"cannot open the store at {path}: {exc}") from None
    return conn


def _migrate(conn: apsw.Connection) -> None:
    (version,) = conn.execute("PRAGMA user_version").fetchone() or (0,)
    if version > SCHEMA_VERSION:
        raise ConfigError(
            f"the store has schema version {version}; this logsvc knows only up to {SCHEMA_VERSION}"
        )
    if version < SCHEMA_VERSION:
        with conn:
            conn.execute("DROP INDEX IF EXISTS logs_log_id")  # version 2: log_id unique store-wide
            conn.execute(SCHEMA)
            if version < _ROLLUPS_SINCE:
                # The entries already stored, counted as the writer counts new ones (a full scan, once).
                for statement in COUNT_NEW_ROWS:
                    conn.execute(statement, (0,))
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")


def make_private(path: Path) -> None:
    """The database file exists with mode 0600 before SQLite opens it: SQLite makes its -wal and -shm
    files with the database's mode. Files of an older store are made private too."""
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.chmod(path.with_name(path.name + suffix), 0o600)
