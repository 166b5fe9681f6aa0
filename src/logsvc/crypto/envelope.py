"""The database key, wrapped by the master key (AES-256-GCM) in ``keyring.json`` in the data directory.

The databases (log store and credentials) are encrypted page by page by SQLite3 Multiple Ciphers with a
random 256-bit data key. Only its wrapped form is ever on disk, next to the fingerprint of the master key
that wrapped it, so a wrong key is named as such instead of surfacing as "file is not a database".
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Sequence
from pathlib import Path

import apsw

from logsvc.crypto.keys import (
    KEY_BYTES,
    KeySource,
    MasterKey,
    Wrapper,
    local_master_key,
    master_key_from,
    write_key_file,
)
from logsvc.crypto.sqlite import CIPHERS, connect
from logsvc.datadir import DataDir
from logsvc.errors import ConfigError

__all__ = ["Keyring", "database_key", "rekey_store", "rotate_master_key"]


class Keyring:
    def __init__(self, path: Path) -> None:
        self.path = path

    def exists(self) -> bool:
        return self.path.exists()

    def create(self, master: Wrapper) -> bytes:
        data_key = secrets.token_bytes(KEY_BYTES)
        self.write(data_key, master)
        return data_key

    def write(self, data_key: bytes, master: Wrapper) -> None:
        document = {"version": 1, **master.wrap(data_key)}
        temporary = self.path.with_name(self.path.name + ".tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as file:
            json.dump(document, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, self.path)

    def unwrap(self, master: Wrapper) -> bytes:
        try:
            document = json.loads(self.path.read_text())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"the keyring {self.path} is unreadable: {exc}") from None
        return master.unwrap(document, self.path)


def database_key(data_dir: Path, source: KeySource, store: Sequence[Path]) -> bytes:
    """The data key of the databases of ``data_dir`` and of the store (``store``: its files, wherever they
    are); for a new store, made (with a key file if none exists)."""
    files = DataDir(data_dir)
    keyring = Keyring(files.keyring)
    if Keyring(files.keyring_next).exists():
        raise ConfigError(
            f"a re-encryption of the store in {data_dir} was interrupted; "
            "run `logsvc store rekey` to finish it"
        )
    if keyring.exists():
        return keyring.unwrap(master_key_from(source, data_dir=data_dir, create=False))
    # Also a store kept outside the data directory: a new keyring would not open it.
    existing = [_name(path, files.root) for path in _databases(files.root, store) if path.exists()]
    if existing:
        raise ConfigError(
            f"{', '.join(existing)} exist without {DataDir.KEYRING} in {data_dir}: either the keyring was "
            "lost (restore it from a backup) or the store was made without encryption "
            "(set encryption = false)"
        )
    try:
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise ConfigError(f"cannot create the data directory {data_dir}: {exc.strerror}") from None
    return keyring.create(master_key_from(source, data_dir=data_dir, create=True))


def rotate_master_key(data_dir: Path, *, key_file: Path) -> MasterKey:
    """Rewrap the data key with a new master key written to ``key_file``; the data is not touched.

    Order matters for a crash: the new key is written beside the old one first, then the keyring is
    replaced, then the new key file replaces the old. A crash between the last two leaves the new key in
    ``<key_file>.new``, which opens the keyring.
    """
    keyring = Keyring(DataDir(data_dir).keyring)
    if not keyring.exists():
        raise ConfigError(f"there is no {DataDir.KEYRING} in {data_dir}: nothing to rotate")
    current = local_master_key(key_file, "", data_dir=data_dir, create=False)
    data_key = keyring.unwrap(current)
    new_material = secrets.token_bytes(KEY_BYTES)
    pending = key_file.with_name(key_file.name + ".new")
    write_key_file(pending, new_material)
    new = MasterKey(new_material, f"key file {key_file}")
    keyring.write(data_key, new)
    os.replace(pending, key_file)
    return new


def rekey_store(data_dir: Path, source: KeySource, store: Sequence[Path]) -> None:
    """Re-encrypt every database of the store (``store``: its files, wherever they are) with a new data
    key. The server must be stopped.

    SQLite3 Multiple Ciphers re-encrypts only outside WAL mode, so each database is switched to a rollback
    journal, re-encrypted in one transaction, and switched back. The new key is written (wrapped) to
    ``keyring.json.next`` before any database changes and replaces ``keyring.json`` after all have; an
    interrupted run leaves the ``.next`` file, start-up refuses with a message, and running the command again
    finishes the databases still on the old key.
    """
    master = master_key_from(source, data_dir=data_dir, create=False)
    files = DataDir(data_dir)
    current, following = Keyring(files.keyring), Keyring(files.keyring_next)
    if not current.exists():
        raise ConfigError(f"there is no {DataDir.KEYRING} in {data_dir}: the store is not encrypted")
    old_key = current.unwrap(master)
    resuming = following.exists()
    if resuming:
        new_key = following.unwrap(master)
    else:
        new_key = secrets.token_bytes(KEY_BYTES)
        following.write(new_key, master)
    changed = False
    try:
        for path in _databases(files.root, store):
            if path.exists():
                changed = _reencrypt(path, old_key, new_key) or changed
    except ConfigError:
        if not changed and not resuming:
            following.path.unlink()  # refused before touching anything: leave the store as it was
        raise
    os.replace(following.path, current.path)


def database_ciphers(data_dir: Path, key: bytes | None, store: Sequence[Path]) -> dict[str, str]:
    """The cipher of each database that exists, of the data directory (by its name in
    ``DataDir.DATABASES``) and of the store (``store``, its files, which a ``store`` setting may put
    elsewhere: by their path there): one of ``CIPHERS``, or "none" when the store is not encrypted.
    ``rekey_store`` moves them all to the first."""
    data_dir = data_dir.resolve()
    found: dict[str, str] = {}
    for path in _databases(data_dir, store):
        if not path.exists():
            continue
        name = _name(path, data_dir)
        if key is None:
            found[name] = "none"
            continue
        conn = connect(path, key)
        try:
            # What sqlite3mc reports once a cipher has read the file: the one ``connect`` found.
            found[name] = str(conn.execute("PRAGMA cipher").get)
        finally:
            conn.close()
    return found


def _databases(data_dir: Path, store: Sequence[Path]) -> list[Path]:
    """The files the data key encrypts: those of the data directory, and the store's wherever its URL
    puts them (maybe among those)."""
    paths = [data_dir.resolve() / name for name in DataDir.DATABASES]
    return paths + [path for path in (p.resolve() for p in store) if path not in paths]


def _name(database: Path, data_dir: Path) -> str:
    """A database as named to the operator: by its name in the data directory, else by its path."""
    return str(database.relative_to(data_dir) if database.is_relative_to(data_dir) else database)


def _reencrypt(path: Path, old_key: bytes, new_key: bytes) -> bool:
    """Whether ``path`` was re-encrypted now (False: an interrupted run had done it already)."""
    try:
        conn = connect(path, old_key)
    except ConfigError:
        connect(path, new_key).close()  # done by an interrupted run already; otherwise this raises
        return False
    try:
        mode = conn.execute("PRAGMA journal_mode=DELETE").get
        if mode != "delete":
            raise ConfigError(f"{path} is in use (a server is running?); stop it for the re-encryption")
        # Re-encrypted with the cipher of new files: a store made before decision 48 moves to AEGIS-256.
        conn.execute(f"PRAGMA cipher = '{CIPHERS[0]}'")
        # AEGIS-256 reserves more bytes a page than ChaCha20-Poly1305, so sqlite3mc moves a file to it by a
        # VACUUM, whose temporary copy of the whole database would be in memory (this build's default): in
        # a file instead, which sqlite3mc encrypts like the database (checked: none of a row's text in it).
        conn.execute("PRAGMA temp_store = FILE")
        conn.execute(f"PRAGMA rekey = \"x'{new_key.hex()}'\"")
        conn.execute("PRAGMA journal_mode=WAL").fetchall()
        return True
    except apsw.BusyError:
        raise ConfigError(f"{path} is in use (a server is running?); stop it for the re-encryption") from None
    except apsw.Error as exc:
        # The re-encryption is one transaction: the file is as it was, under its old key.
        raise ConfigError(
            f"the re-encryption of {path} failed ({exc}); it needs free space about its size in SQLite's "
            "temporary directory (SQLITE_TMPDIR, else TMPDIR, else /var/tmp) and beside it. Nothing of it "
            "changed: free space and run `logsvc store rekey` again"
        ) from None
    finally:
        conn.close()
