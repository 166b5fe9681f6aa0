"""The files of a tiered store (storage v2: ``hot.db`` and ``cold.db`` in one directory), worked on
offline by the operator's commands: stats, snapshots for backups, destroy (decision 35)."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Final

from logsvc.crypto.sqlite import snapshot
from logsvc.domain.timestamps import format_timestamp
from logsvc.errors import ConfigError
from logsvc.storage.port import ServiceStats, StoreStats
from logsvc.storage.sqlite_files import in_use
from logsvc.storage.tiered import COLD_FILE, HOT_FILE
from logsvc.storage.tiered_compactor import LOCK_FILE
from logsvc.storage.tiers import ColdFile, HotFile, finish
from logsvc.storage.tiers_ops import OPS_LOCK, cold_rows, forget_newer, hot_service_stats, settle
from logsvc.storage.writer import turns_lock

__all__ = ["COLD", "HOT", "TieredFiles"]

HOT: Final = HOT_FILE
COLD: Final = COLD_FILE
_SUFFIXES: Final = ("", "-wal", "-shm", "-journal")


class TieredFiles:
    """StoreFiles of a tiered store's directory."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _files(self, key: bytes | None) -> tuple[HotFile, ColdFile]:
        for name in (HOT, COLD):
            if not (self.path / name).exists():
                raise ConfigError(f"{self.path} is not a tiered logsvc store: it has no {name}")
        hot = HotFile(self.path / HOT, key)
        try:
            return hot, ColdFile(self.path / COLD, key)
        except BaseException:
            hot.close()
            raise

    def stats(self, key: bytes | None) -> StoreStats:
        """Entries, bytes and time range per service over both files (a full scan). The hot file is read
        in one snapshot first, then the cold one, skipping the generations the hot read held: a compaction
        in between moves a generation the hot read has already counted."""
        hot, cold = self._files(key)
        totals: dict[str, list[int]] = {}

        def add(service: str, count: int, size: int, oldest: int, newest: int) -> None:
            total = totals.setdefault(service, [0, 0, oldest, newest])
            total[0] += count
            total[1] += size
            total[2] = min(total[2], oldest)
            total[3] = max(total[3], newest)

        try:
            in_hot, per_service = hot_service_stats(hot)
            for service_total in per_service:
                add(*service_total)
            for row in cold_rows(cold, skip=in_hot):
                metadata = row[7]
                size = len(row[6].encode()) + (len(metadata.encode()) if metadata is not None else 0)
                add(row[3], 1, size, row[2], row[2])
        finally:
            hot.close()
            cold.close()
        services = [
            ServiceStats(service, count, size, format_timestamp(oldest), format_timestamp(newest))
            for service, (count, size, oldest, newest) in sorted(totals.items())
        ]
        on_disk = sum(
            (self.path / (name + suffix)).stat().st_size
            for name in (HOT, COLD)
            for suffix in ("", "-wal")
            if (self.path / (name + suffix)).exists()
        )
        return StoreStats(str(self.path), on_disk, sum(s.entries for s in services), services)

    def snapshot(self, key: bytes | None, target: Path) -> None:
        """A consistent copy of both files into the directory ``target``, encrypted like the store, taken
        while the writer and the compactor go on.

        The hot file is copied first, then the cold one: a generation compacted in between is in both
        copies (its pages were committed before its table was dropped), never in neither, which is the
        state a crash between a compaction's two steps leaves, and ``finish`` completes it in the copy; a
        generation appended and compacted in between is only in the cold copy, without its counts and
        commit records, and is taken out of it (``forget_newer``): the copy is the store as it was when
        its hot file was copied.
        Deletions change both files (the counts in one, the pages in the other), so they are held off
        during the two copies by ``ops.lock`` (a deleter finding it taken deletes nothing this time).
        """
        target.mkdir(parents=True, exist_ok=True, mode=0o700)
        if any(target.iterdir()):
            raise ConfigError(f"{target} is not empty; a snapshot goes into a new directory")
        for name in (HOT, COLD):
            if not (self.path / name).exists():
                raise ConfigError(f"{self.path} is not a tiered logsvc store: it has no {name}")
        with _no_deletions(self.path):
            snapshot(self.path / HOT, key, target / HOT)
            snapshot(self.path / COLD, key, target / COLD)
        hot, cold = TieredFiles(target)._files(key)
        try:
            forget_newer(hot, cold)
            finish(hot, cold)
            settle(hot, cold)
        finally:
            hot.close()
            cold.close()
        (target / OPS_LOCK).unlink(missing_ok=True)

    def destroy(self, key: bytes | None) -> None:
        """Delete the store's files; refused while any other connection (a server, its compactor) has
        either file open."""
        present = [self.path / name for name in (HOT, COLD) if (self.path / name).exists()]
        if any(in_use(path, key) for path in present):
            raise ConfigError(
                f"{self.path} is in use (a server is running?); stop it before destroying the store"
            )
        for name in (HOT, COLD):
            for suffix in _SUFFIXES:
                (self.path / (name + suffix)).unlink(missing_ok=True)
        for lock in (OPS_LOCK, LOCK_FILE, turns_lock(self.path / HOT).name):
            (self.path / lock).unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            self.path.rmdir()  # only when nothing else was kept there


@contextlib.contextmanager
def _no_deletions(directory: Path) -> Iterator[None]:
    """``ops.lock`` held exclusively: waits for a deletion under way, and keeps new ones off."""
    fd = os.open(directory / OPS_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
