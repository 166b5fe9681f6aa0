"""``logsvc store migrate``: an existing SQLite store copied into a new tiered store (decision 35).

The entries are copied in arrival order, a batch at a time, each batch straight into the cold file as one
compacted generation that keeps the entries' arrival numbers: so archive positions (segments name arrival
numbers) and a tail's cursor stay valid, and the hot file numbers new entries on after the last copied.
A batch is two durable steps in the order of a compaction: its pages and its record in the cold file,
then, in the hot file, its counts (the rollups and ``service_counts``), the commit records of the
transactions that wrote it, and the generation's record (compacted). A run interrupted anywhere (even by
SIGKILL) is resumed by running the command again: a generation the cold file holds without its hot
record gets that record first, then the copy goes on after the last copied arrival number.

The source must not change meanwhile: the command refuses to run while a server holds the data
directory's jobs lease or has the store open, and holds the lease itself while it runs. The directory
holds ``MIGRATING`` until the copy is complete; the operator switches the setting (``store_engine =
"tiered"``) only then. The SQLite file is left as it was.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Final, cast

import apsw

from logsvc.crypto.sqlite import connect
from logsvc.errors import ConfigError
from logsvc.jobs import JobsLease
from logsvc.storage.sqlite_files import in_use
from logsvc.storage.sqlite_schema import COLUMNS, Row
from logsvc.storage.tiered import COLD_FILE, HOT_FILE
from logsvc.storage.tiers import COMPACTED, OPEN, ROWS_PER_GENERATION, SEALED, ColdFile, HotFile
from logsvc.storage.tiers_ops import change_counts

__all__ = ["MIGRATING", "migrate", "migrating"]

MIGRATING: Final = "MIGRATING"


def migrating(target_dir: Path) -> bool:
    """Whether a migration into ``target_dir`` began and has not completed."""
    return (target_dir / MIGRATING).exists()


def migrate(
    source_sqlite: Path,
    target_dir: Path,
    key: bytes | None,
    *,
    jobs_lock: Path | None = None,
    batch: int = ROWS_PER_GENERATION,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Copy the entries of the SQLite store ``source_sqlite`` into the tiered store ``target_dir`` (made,
    or resumed when an earlier run was interrupted); the number of entries this run copied. ``jobs_lock``:
    the data directory's jobs lease, held by a running server. ``progress`` is told the last copied
    arrival number after each batch."""
    if not source_sqlite.exists():
        raise ConfigError(f"there is no store at {source_sqlite}")
    lease = JobsLease(jobs_lock) if jobs_lock is not None else None
    if lease is not None and not lease.try_take():
        raise ConfigError(
            f"a server holds {jobs_lock.parent if jobs_lock else ''} (stop it before migrating)"
        )
    try:
        if in_use(source_sqlite, key):
            raise ConfigError(f"{source_sqlite} is in use (a server is running?); stop it before migrating")
        _check_target(target_dir)
        target_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        (target_dir / MIGRATING).touch(mode=0o600)
        source = connect(source_sqlite, key)
        try:
            copied = _copy(source, target_dir, key, batch, progress)
        finally:
            source.close()
        (target_dir / MIGRATING).unlink()
        return copied
    finally:
        if lease is not None:
            lease.release()


def _check_target(target_dir: Path) -> None:
    if not target_dir.exists() or migrating(target_dir):
        return
    if any(target_dir.iterdir()):
        raise ConfigError(
            f"{target_dir} already holds files and no migration under way; migrate into a new directory"
        )


def _copy(
    source: apsw.Connection,
    target_dir: Path,
    key: bytes | None,
    batch: int,
    progress: Callable[[int], None] | None,
) -> int:
    try:
        source.execute("SELECT seq FROM logs LIMIT 0").fetchall()
    except apsw.SQLError:
        raise ConfigError("the source is not a logsvc store (it has no entries table)") from None
    hot = HotFile(target_dir / HOT_FILE, key)
    cold = ColdFile(target_dir / COLD_FILE, key)
    try:
        if hot.generations(OPEN, SEALED):
            raise ConfigError(f"{target_dir} already takes new entries; migrate into a new directory")
        hconn, cconn = hot.connection, cold.connection
        recorded = {int(g) for (g,) in hconn.execute("SELECT generation FROM hot_generations")}
        for generation, first_seq, last_seq in cast(
            list[tuple[int, int, int]],
            cconn.execute("SELECT generation, first_seq, last_seq FROM cold_generations ORDER BY generation"),
        ):
            if generation not in recorded:  # interrupted between its two steps
                _record(hot, source, generation, first_seq, _rows(source, first_seq - 1, last_seq))
        top = cconn.execute(
            "SELECT coalesce(max(generation), 0), coalesce(max(last_seq), 0) FROM cold_generations"
        )
        generation, last_seq = cast(tuple[int, int], top.fetchone())
        copied = 0
        while True:
            rows = _rows(source, last_seq, None, batch)
            if not rows:
                break
            generation += 1
            cold.write(generation, last_seq + 1, rows)
            _record(hot, source, generation, last_seq + 1, rows)
            last_seq = rows[-1][0]
            copied += len(rows)
            if progress is not None:
                progress(last_seq)
        _last_commits(hot, source)
        return copied
    finally:
        hot.close()
        cold.close()


def _rows(source: apsw.Connection, after: int, until: int | None, limit: int = -1) -> list[Row]:
    sql = f"SELECT {COLUMNS} FROM logs WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?"
    return cast(
        list[Row], source.execute(sql, (after, until if until is not None else 2**62, limit)).fetchall()
    )


def _record(hot: HotFile, source: apsw.Connection, generation: int, first_seq: int, rows: list[Row]) -> None:
    """The hot file's part of a copied batch, in one durable transaction: its counts, the commit records
    of its arrival numbers, and its generation's record."""
    last_seq = rows[-1][0]
    commits = source.execute(
        "SELECT last_seq, committed_at FROM commits WHERE last_seq >= ? AND last_seq <= ?",
        (first_seq, last_seq),
    ).fetchall()
    conn = hot.connection
    conn.execute("BEGIN IMMEDIATE")
    try:
        change_counts(conn, rows, 1)
        conn.executemany("INSERT OR IGNORE INTO commits VALUES (?, ?)", commits)
        conn.execute(
            "INSERT INTO hot_generations(generation, first_seq, last_seq, state) VALUES (?, ?, ?, ?)",
            (generation, first_seq, last_seq, COMPACTED),
        )
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _last_commits(hot: HotFile, source: apsw.Connection) -> None:
    """The commit records after the last copied entry (its newest entries were purged): the hot file then
    numbers on after them, as the source would have (arrival numbers are never given twice)."""
    conn = hot.connection
    (copied,) = conn.execute("SELECT coalesce(max(last_seq), 0) FROM hot_generations").fetchone() or (0,)
    later = source.execute(
        "SELECT last_seq, committed_at FROM commits WHERE last_seq > ? ORDER BY last_seq", (copied,)
    ).fetchall()
    if not later:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.executemany("INSERT OR IGNORE INTO commits VALUES (?, ?)", later)
        newest = conn.execute("SELECT max(generation) FROM hot_generations").get
        if newest is None:  # every entry was purged: a generation of none, to number on after
            conn.execute(
                "INSERT INTO hot_generations(generation, first_seq, last_seq, state) VALUES (1, 1, ?, ?)",
                (later[-1][0], COMPACTED),
            )
        else:
            conn.execute(
                "UPDATE hot_generations SET last_seq = ? WHERE generation = ?", (later[-1][0], newest)
            )
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
