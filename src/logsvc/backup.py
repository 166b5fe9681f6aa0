"""Backups: a consistent, encrypted copy of a store, taken online, and its verified restore.

A backup is a directory with the log store and the credential store (each a ``VACUUM INTO`` snapshot, so
encrypted with the store's data key; a tiered store's two files in its directory, ``logs-v2/``), the
keyring that wraps that key, and ``manifest.json`` with the SHA-256 and size of every file (by its path
in the backup). Restoring checks every checksum before it writes anything. The master key
is not in the backup: keep it (and any older one that wrapped a backup's keyring) apart from it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from pathlib import Path, PurePosixPath

import msgspec

from logsvc.crypto import store_key
from logsvc.crypto.sqlite import snapshot
from logsvc.datadir import DataDir
from logsvc.domain.timestamps import format_timestamp
from logsvc.errors import ConfigError
from logsvc.settings import Settings
from logsvc.storage.open import store_files
from logsvc.store_url import engine_of, sqlite_url, store_databases, tiered_url

__all__ = ["Manifest", "backup_in", "create_backup", "new_data_directory", "restore_backup"]

MANIFEST = "manifest.json"
# `logsvc backup --to DIR` makes DIR/logsvc-backup-<time>; names sort by time.
_BACKUP_PREFIX = "logsvc-backup-"
_VERSION = 1


class FileDigest(msgspec.Struct, frozen=True):
    sha256: str
    bytes: int


class Manifest(msgspec.Struct, frozen=True):
    version: int
    created_at: str
    files: dict[str, FileDigest]


def _digest(path: Path) -> FileDigest:
    sha = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            sha.update(chunk)
    return FileDigest(sha.hexdigest(), path.stat().st_size)


def create_backup(settings: Settings, into: Path) -> tuple[Path, Manifest]:
    """Back the store up into a new directory below ``into``; safe while the server runs."""
    key = store_key(settings)
    data_dir = DataDir(settings.data_dir)
    store = store_files(settings.store_url)
    now_us = time.time_ns() // 1000
    target = into / f"{_BACKUP_PREFIX}{format_timestamp(now_us).replace(':', '')}"
    try:
        target.mkdir(parents=True, mode=0o700)
    except OSError as exc:
        raise ConfigError(f"cannot create the backup directory {target}: {exc.strerror}") from None
    # A backup is laid out as a data directory: restoring copies its files into a new one by name.
    backup = DataDir(target)
    store.snapshot(key, backup.tiered if engine_of(settings.store_url) == "tiered" else backup.logs)
    if data_dir.auth.exists():
        snapshot(data_dir.auth, key, backup.auth)
    if data_dir.keyring.exists():
        shutil.copy2(data_dir.keyring, backup.keyring)
    kept = sorted(path for path in target.rglob("*") if path.is_file())
    files = {path.relative_to(target).as_posix(): _digest(path) for path in kept}
    manifest = Manifest(_VERSION, format_timestamp(now_us), files)
    (target / MANIFEST).write_bytes(msgspec.json.encode(manifest))
    for path in target.rglob("*"):
        os.chmod(path, 0o700 if path.is_dir() else 0o600)
    return target, manifest


def backup_in(source: Path) -> Path:
    """The backup ``source`` names: a backup itself, or the directory given to ``logsvc backup --to``, in
    which case the newest backup made there (so that ``restore --from`` takes what ``backup --to`` took)."""
    if (source / MANIFEST).exists():
        return source
    made = sorted(path.parent for path in source.glob(f"{_BACKUP_PREFIX}*/{MANIFEST}"))
    if not made:
        raise ConfigError(
            f"{source} is not a logsvc backup: it holds no {MANIFEST}, nor a backup `logsvc backup --to` made"
        )
    return made[-1]


def restore_backup(source: Path, into: Path, served: str) -> Manifest:
    """Check every file of a backup (``source``, as ``backup_in`` reads it) against its manifest, then copy
    it into a new data directory, ``into``, from which the configuration serves the store ``served`` (see
    ``new_data_directory``)."""
    source = backup_in(source)
    try:
        manifest = msgspec.json.decode((source / MANIFEST).read_bytes(), type=Manifest)
    except FileNotFoundError:
        raise ConfigError(f"{source} is not a logsvc backup: it has no {MANIFEST}") from None
    except msgspec.DecodeError as exc:
        raise ConfigError(f"the manifest of {source} is damaged: {exc}") from None
    if manifest.version != _VERSION:
        raise ConfigError(f"{source} is a backup of format {manifest.version}; this logsvc reads {_VERSION}")
    for name, expected in manifest.files.items():
        if not _inside(name):
            raise ConfigError(f"the manifest of {source} names {name!r}, a path outside the backup")
        path = source / name
        if not path.exists():
            raise ConfigError(f"the backup {source} is missing {name}")
        # Through a link, or as a directory (a forged manifest naming both x and x/y), it is no file of it.
        if path.is_symlink() or not path.is_file() or not path.resolve().is_relative_to(source.resolve()):
            raise ConfigError(f"the backup {source} is damaged: {name} is not a file of the backup")
        if _digest(path) != expected:
            raise ConfigError(f"the backup {source} is damaged: {name} does not match its checksum")
    restored = DataDir(into)
    tiered = any(PurePosixPath(name).parts[0] == DataDir.TIERED for name in manifest.files)
    new_data_directory(into, served, tiered_url(restored.tiered) if tiered else sqlite_url(restored.logs))
    for name in manifest.files:
        (into / name).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        shutil.copy2(source / name, into / name)
        os.chmod(into / name, 0o600)
    return manifest


def new_data_directory(into: Path, served: str, restored: str) -> None:
    """Make ``into``, the new data directory of a restore whose store is ``restored`` (its URL), once it is
    checked to be empty, and to be served: ``served`` is the store a server serves with ``into`` as its data
    directory and the configuration at hand, which a ``store`` setting may put elsewhere (or an engine
    setting make another file), where the restore would silently have no effect."""
    if {path.resolve() for path in store_databases(served)} != {
        path.resolve() for path in store_databases(restored)
    }:
        raise ConfigError(
            f"a server given this configuration and the data directory {into} serves the store {served}, "
            f"not the one restored there ({restored}); nothing was written. Restore, and serve the restore, "
            f'with a configuration whose store setting is empty and store_engine = "{engine_of(restored)}"'
        )
    if into.exists() and any(into.iterdir()):
        raise ConfigError(f"{into} is not empty; restore into a new directory")
    into.mkdir(parents=True, exist_ok=True, mode=0o700)


def _inside(name: str) -> bool:
    """Whether a manifest's file name is a path within the backup (a damaged or forged manifest must not
    make a restore read or write elsewhere)."""
    path = PurePosixPath(name)
    return bool(path.parts) and not path.is_absolute() and ".." not in path.parts and "\\" not in name
