"""SQLite3 Multiple Ciphers (ChaCha20-Poly1305, AEGIS-256) against SQLCipher for the store's write pattern
(decisions 9 and 48).

Not part of ``make bench``: it needs SQLCipher's binding, which logsvc does not depend on.
Run: ``.venv/bin/pip install sqlcipher3-wheels && .venv/bin/python -m benchmarks.cipher_compare``.
Each variant inserts batches of 1,000 entries of the batched-ingest body into logsvc's schema, one durable
transaction each (WAL, synchronous=FULL), and reports the median rows per second of 5 runs of 2 s.
"""

from __future__ import annotations

import secrets
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import apsw
import uuid_utils

from benchmarks import ceilings, dataset
from logsvc.storage import sqlite_schema as store_sql

_KEY = secrets.token_bytes(32).hex()
_SCHEMA = store_sql.SCHEMA


def _rows(template: ceilings.Template) -> list[tuple[Any, ...]]:
    now = time.time_ns() // 1000
    return [
        (uuid_utils.uuid7().bytes, now, service, level, "application", message, metadata, now)
        for service, level, message, metadata in template
    ]


def _measure(
    execute: Callable[[str, tuple[Any, ...]], Any],
    many: Callable[[str, list[tuple[Any, ...]]], Any],
    template: ceilings.Template,
) -> float:
    rates = []
    for _ in range(5):
        done, busy = 0, 0.0
        while busy < 2.0:
            rows = _rows(template)
            started = time.perf_counter()
            execute("BEGIN IMMEDIATE", ())
            last = execute("SELECT coalesce(max(seq), 0) FROM logs", ())
            many(store_sql.INSERT_ENTRY, rows)
            execute(store_sql.INDEX_NEW_ROWS, (last,))
            execute("COMMIT", ())
            busy += time.perf_counter() - started
            done += len(rows)
        rates.append(done / busy)
    return statistics.median(rates)


def apsw_variant(path: Path, key: str | None, template: ceilings.Template, cipher: str = "chacha20") -> float:
    conn = apsw.Connection(str(path))
    if key:
        conn.execute(f"PRAGMA cipher = '{cipher}'")
        conn.execute(f"PRAGMA key = \"x'{key}'\"")
    conn.execute("PRAGMA journal_mode=WAL").fetchall()
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute(_SCHEMA)

    def execute(sql: str, args: tuple[Any, ...]) -> Any:
        return conn.execute(sql, args).fetchone()[0] if sql.startswith("SELECT") else conn.execute(sql, args)

    return _measure(execute, conn.executemany, template)


def sqlcipher_variant(path: Path, template: ceilings.Template) -> float:
    from sqlcipher3 import dbapi2

    conn = dbapi2.connect(str(path), isolation_level=None)
    conn.execute(f"PRAGMA key = \"x'{_KEY}'\"")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.executescript(_SCHEMA)

    def execute(sql: str, args: tuple[Any, ...]) -> Any:
        cursor = conn.execute(sql, args)
        return cursor.fetchone()[0] if sql.startswith("SELECT") else cursor

    return _measure(execute, conn.executemany, template)


def main() -> None:
    template = ceilings.template_rows(dataset.batch_entries(1000))
    with tempfile.TemporaryDirectory() as folder:
        results = {
            "sqlite3mc, no key": apsw_variant(Path(folder) / "plain.db", None, template),
            "sqlite3mc, ChaCha20-Poly1305": apsw_variant(Path(folder) / "mc.db", _KEY, template),
            "sqlite3mc, AEGIS-256": apsw_variant(Path(folder) / "aegis.db", _KEY, template, "aegis"),
            "SQLCipher 4, AES-256 + HMAC": sqlcipher_variant(Path(folder) / "cipher.db", template),
        }
    base = results["sqlite3mc, no key"]
    for name, rate in results.items():
        print(f"{name:32s} {rate:10,.0f} rows/s  ({rate / base:.2f} of no key)")


if __name__ == "__main__":
    main()
