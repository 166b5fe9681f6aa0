"""Opening a SQLite database encrypted page by page (SQLite3 Multiple Ciphers: AEGIS-256, or ChaCha20-Poly1305
for the files made before decision 48)."""

from __future__ import annotations

from pathlib import Path
from typing import Final

import apsw

from logsvc.errors import ConfigError, StoreUnavailable

__all__ = ["CIPHERS", "CIPHER_NAMES", "connect", "snapshot"]

# The ciphers a file is opened with, in this order: every file made from now on is AEGIS-256 (30% less of
# the writer's CPU per entry than ChaCha20-Poly1305, decision 48); the files made before are
# ChaCha20-Poly1305, sqlite3mc's default. Both authenticate every page, so a file read with the other one
# fails at the first page it reads and writes nothing; which one wrote a file need not be recorded.
CIPHERS: Final = ("aegis", "chacha20")
CIPHER_NAMES: Final = {"aegis": "AEGIS-256", "chacha20": "ChaCha20-Poly1305", "none": "not encrypted"}


def connect(path: Path, key: bytes | None, *, busy_timeout_ms: int = 0) -> apsw.Connection:
    """A connection that can read ``path``: the key is applied before anything else touches the file,
    and a key that does not fit is reported as such, before any write. ``busy_timeout_ms`` waits that
    long for another process's lock already at this first read (a WAL recovery after a crash locks
    the file for a moment)."""
    damaged: apsw.CorruptError | None = None
    for cipher in CIPHERS if key is not None else (None,):
        try:
            conn = apsw.Connection(str(path))
        except apsw.Error as exc:
            raise ConfigError(f"cannot open {path}: {exc}") from None
        try:
            if busy_timeout_ms:
                conn.set_busy_timeout(busy_timeout_ms)
            if key is not None:
                conn.execute(f"PRAGMA cipher = '{cipher}'")
                conn.execute(f"PRAGMA key = \"x'{key.hex()}'\"")
            conn.execute("SELECT count(*) FROM sqlite_master").fetchall()
            return conn
        except apsw.NotADBError:
            conn.close()
        except apsw.CorruptError as exc:
            # Also what the other cipher makes of a hot journal that does not begin with the first page
            # (a process killed in a rollback-journal transaction): the journal is played back only by
            # the cipher that reads it, so the next one is tried.
            conn.close()
            damaged = damaged or exc
        except apsw.Error as exc:
            conn.close()
            raise ConfigError(f"cannot open {path}: {exc}") from None
    if damaged is not None:
        raise ConfigError(f"cannot open {path}: {damaged}")
    state = "with the store's key" if key is not None else "without a key (encryption = false)"
    raise ConfigError(
        f"cannot open {path}: it cannot be read {state}; it is not a logsvc database, "
        "or it belongs to another keyring"
    )


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
