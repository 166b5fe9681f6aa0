"""The embedded store's schema, its migration, and how its connections are opened.

Durability: ``synchronous=FULL`` makes every COMMIT fsync the WAL, and a request is acknowledged only after
the COMMIT that holds its entries returned (see ``sqlite_writer``).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Final, TypeAlias, cast

import apsw

from logsvc.crypto.sqlite import connect
from logsvc.domain.entries import NewEntry
from logsvc.errors import ConfigError
from logsvc.storage.sqlite_rollups import ROLLUP_SCHEMA, count_new_rows

__all__ = [
    "BLOCK_SHIFT",
    "COLUMNS",
    "FTS_TOKENIZE",
    "FTS_TOKENIZER",
    "INDEX_NEW_ROWS",
    "INSERT_ENTRY",
    "LOGS_TABLE",
    "SCHEMA",
    "SCHEMA_VERSION",
    "Row",
    "make_private",
    "new_rows",
    "open_connection",
]

SCHEMA_VERSION: Final = 5
# The schema version that added the rollups: a store made before has them filled from its entries.
_ROLLUPS_SINCE: Final = 4
# Rows are grouped in blocks of 2**12 arrival numbers for the full-text search watermarks (see sqlite_reads).
BLOCK_SHIFT: Final = 12
_BUSY_TIMEOUT_MS: Final = 5_000
# What a word of a message is, for the full-text index and the cold pages' token filters alike.
FTS_TOKENIZER: Final = ("unicode61", ("remove_diacritics", "2"))
FTS_TOKENIZE: Final = " ".join((FTS_TOKENIZER[0], *FTS_TOKENIZER[1]))  # as FTS5's tokenize= reads it

# FTS5 merges all of a level's segments at once, inside the committing transaction, when the level holds
# 'crisismerge' segments (16 by default): with automerge also at 16, every merge was such a crisis merge, and
# under batched ingest one commit in about a million entries rewrote 100+ MiB of the index for 1.6 s, the
# writer stalled (decision 45). With room above automerge, merges run incrementally, a little per commit.
# Set at every open of the write connection too, for stores made before.
_CRISIS_MERGE: Final = "INSERT INTO logs_fts(logs_fts, rank) VALUES ('crisismerge', 64)"

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
    message, content='logs', content_rowid='seq', tokenize='{FTS_TOKENIZE}'
);
-- max_ts of block b is the largest event time of any row whose seq is below (b + 1) << {BLOCK_SHIFT}.
CREATE TABLE IF NOT EXISTS ts_watermarks (block INTEGER PRIMARY KEY, max_ts INTEGER NOT NULL) STRICT;
-- When each transaction committed, by the last arrival number it holds: point-in-time restore needs it.
CREATE TABLE IF NOT EXISTS commits (last_seq INTEGER PRIMARY KEY, committed_at INTEGER NOT NULL) STRICT;
-- Fewer, larger merges of the index's segments: ingest is write-heavy and searches read few segments.
INSERT INTO logs_fts(logs_fts, rank) VALUES ('automerge', 16);
{_CRISIS_MERGE};
CREATE TRIGGER IF NOT EXISTS logs_after_delete AFTER DELETE ON logs BEGIN
    INSERT INTO logs_fts(logs_fts, rowid, message) VALUES ('delete', old.seq, old.message);
END;
"""
    + ROLLUP_SCHEMA
)


def new_rows(entries: Sequence[NewEntry]) -> list[tuple[object, ...]]:
    """Entries as ``INSERT_ENTRY`` (and the tiered store's hot file) takes their values, in that order."""
    return [
        (e.log_id, e.ts_us, e.service_name, int(e.level), e.log_type, e.message, e.metadata, e.received_us)
        for e in entries
    ]


INSERT_ENTRY = (
    "INSERT INTO logs(log_id, ts, service, level, log_type, message, metadata, received) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(log_id, service) DO NOTHING"
)
# The full-text index and the watermarks are written by statements over all the rows a transaction added,
# not by an AFTER INSERT trigger on logs: FTS5 fed row by row from a trigger ingests about 4x slower. (The
# writer runs them once per transaction, from the TEMP trigger of its group's row: sqlite_writer.)
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
            # The writer's scratch tables (the rollups' new counts) stay in memory, never in a temporary
            # file that the store's encryption does not cover.
            conn.execute("PRAGMA temp_store=MEMORY")
            _migrate(conn)
            conn.execute(_CRISIS_MERGE)
        else:
            conn.execute("PRAGMA query_only=ON")
        conn.execute("PRAGMA cache_size=-32000")
    except apsw.Error as exc:
        raise ConfigError(f"cannot open the store at {path}: {exc}") from None
    return conn


def _schema_version(conn: apsw.Connection) -> int:
    (version,) = conn.execute("PRAGMA user_version").fetchone() or (0,)
    if version > SCHEMA_VERSION:
        raise ConfigError(
            f"the store has schema version {version}; this logsvc knows only up to {SCHEMA_VERSION}"
        )
    return cast(int, version)


def _migrate(conn: apsw.Connection) -> None:
    if _schema_version(conn) == SCHEMA_VERSION:
        return
    # IMMEDIATE, and the version read again within: another process (a server and a CLI command opening
    # the store together) may have migrated it meanwhile, and counting the entries into the rollups a
    # second time would double every count.
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = _schema_version(conn)
        if version < SCHEMA_VERSION:
            conn.execute("DROP INDEX IF EXISTS logs_log_id")  # version 2: log_id unique store-wide
            # Version 5: the trigger takes off only the entries the rollups counted (decision 55).
            conn.execute("DROP TRIGGER IF EXISTS logs_counts_after_delete")
            conn.execute(SCHEMA)
            if version < _ROLLUPS_SINCE:
                # The entries already stored, counted as the writer counts new ones (a full scan, once).
                count_new_rows(conn, 0)
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def make_private(path: Path) -> None:
    """The database file exists with mode 0600 before SQLite opens it: SQLite makes its -wal and -shm
    files with the database's mode. Files of an older store are made private too."""
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.chmod(path.with_name(path.name + suffix), 0o600)
