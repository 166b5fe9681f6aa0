"""Opening a SQLite database encrypted page by page (SQLite3 Multiple Ciphers, ChaCha20-Poly1305)."""

from __future__ import annotations

from pathlib import Path

import apsw

from logsvc.errors import ConfigError, StoreUnavailable

__all__ = ["connect", "snapshot"]


def connect(path: Path, key: bytes | None, *, busy_timeout_ms: int = 0) -> apsw.Connection:
    """A connection that can read ``path``: the key is applied before anything else touches the file,
    and a key that does not fit is reported as such, before any write. ``busy_timeout_ms`` waits that
    long for another process's lock already at this first read (a WAL recovery after a crash locks
    the file for a moment)."""
    try:
        conn = apsw.Connection(str(path))
    except apsw.Error as exc:
        raise ConfigError(f"cannot open {path}: {exc}") from None
    try:
        if busy_timeout_ms:
            conn.set_busy_timeout(busy_timeout_ms)
        if key is not None:
            conn.execute(f"PRAGMA key = \"x'{key.hex()}'\"")
        conn.execute("SELECT count(*) FROM sqlite_master").fetchall()
    except apsw.NotADBError:
        conn.close()
        state = "with the store's key" if key is not None else "without a key (encryption = false)"
        raise ConfigError(
            f"cannot open {path}: it cannot be read {state}; it is not a logsvc database, "
            "or it belongs to another keyring"
        ) from None
    except apsw.Error as exc:
        conn.close()
        raise ConfigError(f"cannot open {path}: {exc}") from None
    return conn


def snapshot(path: Path, key: bytes | None, target: Path) -> None:
    """A consistent copy of the database, encrypted with the same key, taken while writers go on:
    ``VACUUM INTO`` reads one snapshot of the WAL-mode database and writes a compact file."""
    conn = connect(path, key)
    try:
        conn.execute("VACUUM INTO ?", (str(target),))
    except apsw.Error as exc:
        raise StoreUnavailable(f"the snapshot of {path} failed: {exc}") from None
    finally:
        conn.close()
