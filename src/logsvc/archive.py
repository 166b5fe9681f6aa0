"""Continuous archiving and point-in-time restore.

Every ``archive_seconds`` the archiver writes the entries that arrived since the last segment, together with
the commit records of the transactions that wrote them, as one encrypted segment (AES-256-GCM under a key
derived from the store's data key; the GCM tag is also its checksum). ``restore_to_time`` replays every entry
whose transaction committed at or before T into a new store. The recovery point is ``archive_seconds``;
segments older than the window are pruned, so a restore holds what was archived within it.
"""

from __future__ import annotations

import asyncio
import bisect
import hmac
import logging
import os
import re
import secrets
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from logsvc.backup import new_data_directory
from logsvc.crypto import Keyring, KeySource, master_key_from
from logsvc.datadir import DataDir
from logsvc.domain.entries import Level, NewEntry
from logsvc.domain.timestamps import DAY_US
from logsvc.errors import ConfigError, LogServiceError
from logsvc.storage.open import open_store
from logsvc.storage.port import Export, Exportable
from logsvc.store_url import sqlite_url, tiered_url

__all__ = ["Archiver", "restore_to_time"]

log = logging.getLogger("logsvc.archive")

_NAME = re.compile(r"segment-(\d{20})-(\d{20})-(\d{20})\.bin")
_BATCH = 100_000
_RESTORE_BATCH = 5_000


def _segment_key(data_key: bytes) -> bytes:
    return hmac.digest(data_key, b"logsvc archive segment key v1", "sha256")


@dataclass(frozen=True, slots=True)
class _Segment:
    after: int
    last: int
    newest_commit_us: int
    path: Path


def _segments(folder: Path) -> list[_Segment]:
    found = []
    for path in folder.glob("segment-*.bin"):
        match = _NAME.fullmatch(path.name)
        if match:
            found.append(_Segment(int(match[1]), int(match[2]), int(match[3]), path))
    return sorted(found, key=lambda segment: segment.after)


class Archiver:
    def __init__(
        self, store: Exportable, data_key: bytes, folder: Path, *, keyring: Path, window_days: float
    ) -> None:
        self.store = store
        self.folder = folder
        self._key = _segment_key(data_key)
        self._keyring = keyring
        self._window_us = round(window_days * DAY_US)

    async def archive_once(self) -> int:
        """Write one segment of what arrived since the last; the number of entries in it."""
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        # The keyring (the wrapped data key) travels with the segments it decrypts.
        shutil.copyfile(self._keyring, self.folder / DataDir.KEYRING)
        existing = _segments(self.folder)
        after = existing[-1].last if existing else 0
        export = await self.store.export_after(after, _BATCH)
        if export.rows:
            self._write(after, export)
        self._prune()
        return len(export.rows)

    def _write(self, after: int, export: Export) -> None:
        newest = max(committed_at for _, committed_at in export.commits)
        name = f"segment-{after:020d}-{export.last_seq:020d}-{newest:020d}.bin"
        nonce = secrets.token_bytes(12)
        sealed = nonce + AESGCM(self._key).encrypt(nonce, msgspec.msgpack.encode(export), name.encode())
        temporary = self.folder / (name + ".tmp")
        with temporary.open("wb") as file:
            file.write(sealed)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, 0o600)
        os.replace(temporary, self.folder / name)

    def _prune(self) -> None:
        horizon = time.time_ns() // 1000 - self._window_us
        for segment in _segments(self.folder)[:-1]:  # the newest one marks where the next begins
            if segment.newest_commit_us < horizon:
                segment.path.unlink()

    async def final_segment(self) -> None:
        """The last segment, on shutdown; a failure is logged, as it must not keep the store from closing."""
        try:
            await self.archive_once()
        except (LogServiceError, OSError) as exc:
            log.error("the final archive segment could not be written: %s", exc)


def restore_to_time(
    folder: Path, into: Path, to_us: int, source: KeySource, *, served: str, engine: str = "sqlite"
) -> int:
    """A new store in ``into`` holding exactly the archived entries committed at or before ``to_us``; of
    ``engine`` (``sqlite``, or ``tiered``: storage v2), whichever the archived store was. ``into`` is a new
    data directory, from which the configuration serves the store ``served`` (see ``new_data_directory``)."""
    keyring = Keyring(folder / DataDir.KEYRING)
    if not keyring.exists():
        raise ConfigError(f"{folder} is not a logsvc archive: it has no {DataDir.KEYRING}")
    data_key = keyring.unwrap(master_key_from(source, data_dir=into, create=False))
    segments = _segments(folder)
    if not segments:
        raise ConfigError(f"{folder} holds no archive segments")
    exports: list[Export] = []
    expected_after = segments[0].after
    for segment in segments:
        if segment.after != expected_after:
            raise ConfigError(f"the archive {folder} is missing the segment after arrival {expected_after}")
        sealed = segment.path.read_bytes()
        try:
            payload = AESGCM(_segment_key(data_key)).decrypt(
                sealed[:12], sealed[12:], segment.path.name.encode()
            )
        except (InvalidTag, ValueError):
            raise ConfigError(
                f"the archive segment {segment.path.name} is damaged (its checksum fails)"
            ) from None
        exports.append(msgspec.msgpack.decode(payload, type=Export))
        expected_after = segment.last
    restored = DataDir(into)
    url = tiered_url(restored.tiered) if engine == "tiered" else sqlite_url(restored.logs)
    new_data_directory(into, served, url)
    shutil.copyfile(keyring.path, restored.keyring)
    commits = sorted({commit for export in exports for commit in export.commits})
    last_seqs = [last_seq for last_seq, _ in commits]
    chosen = []
    for export in exports:
        for row in export.rows:
            position = bisect.bisect_left(last_seqs, row[0])
            if position < len(commits) and commits[position][1] <= to_us:
                chosen.append(row)
    asyncio.run(_replay(url, data_key, chosen))
    return len(chosen)


async def _replay(url: str, key: bytes, rows: list[tuple[object, ...]]) -> None:
    store = open_store(url, read_threads=1, key=key)
    try:
        for start in range(0, len(rows), _RESTORE_BATCH):
            await store.append(
                [
                    NewEntry(log_id, service, ts, Level(level), log_type, message, metadata, received)  # type: ignore[arg-type]
                    for _, log_id, ts, service, level, log_type, message, metadata, received in rows[
                        start : start + _RESTORE_BATCH
                    ]
                ]
            )
    finally:
        await store.close()
