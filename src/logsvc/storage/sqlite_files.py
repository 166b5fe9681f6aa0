"""The embedded store's files, worked on offline by the operator's commands (stats, backup, destroy)."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import apsw

from logsvc.crypto.sqlite import connect, snapshot
from logsvc.domain.timestamps import format_timestamp
from logsvc.errors import ConfigError
from logsvc.storage.port import ServiceStats, StoreStats

__all__ = ["SQLiteFiles", "in_use"]


class SQLiteFiles:
    """StoreFiles of one SQLite database file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def stats(self, key: bytes | None) -> StoreStats:
        """Entries, bytes and time range per service, read from the file (a full scan)."""
        conn = connect(self.path, key)
        try:
            rows = cast(
                list[tuple[str, int, int, int, int]],
                conn.execute(
                    "SELECT service, count(*), sum(length(CAST(message AS BLOB)) + "
                    "coalesce(length(CAST(metadata AS BLOB)), 0)), min(ts), max(ts) FROM logs "
                    "GROUP BY service ORDER BY service"
                ).fetchall(),
            )
        except apsw.SQLError as exc:
            raise ConfigError(f"{self.path} is not a logsvc store: {exc}") from None
        finally:
            conn.close()
        services = [
            ServiceStats(service, count, size, format_timestamp(oldest), format_timestamp(newest))
            for service, count, size, oldest, newest in rows
        ]
        on_disk = sum(
            p.stat().st_size for p in (self.path, self.path.with_name(self.path.name + "-wal")) if p.exists()
        )
        return StoreStats(str(self.path), on_disk, sum(s.entries for s in services), services)

    def destroy(self, key: bytes | None) -> None:
        """Delete the store's files; refused while any other connection (a running server) has it open."""
        if in_use(self.path, key):
            raise ConfigError(
                f"{self.path} is in use (a server is running?); stop it before destroying the store"
            )
        for suffix in ("", "-wal", "-shm", "-journal"):
            self.path.with_name(self.path.name + suffix).unlink(missing_ok=True)

    def snapshot(self, key: bytes | None, target: Path) -> None:
        snapshot(self.path, key, target)


def in_use(path: Path, key: bytes | None) -> bool:
    """Whether another connection (a running server) has the database open: it cannot leave WAL mode
    then. Left in rollback-journal mode otherwise, which the store's next writer switches back."""
    conn = connect(path, key)
    try:
        return bool(conn.execute("PRAGMA journal_mode=DELETE").get != "delete")
    except apsw.BusyError:
        return True
    finally:
        conn.close()
