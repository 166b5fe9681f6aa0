"""The choice of adapter by store URL. Each adapter loads only when chosen: the Lambda package holds no
SQLite, the server no boto3 use."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from urllib.parse import urlsplit

from logsvc.domain.retention import RetentionRule
from logsvc.errors import ConfigError
from logsvc.storage.port import LogStore, StoreFiles

__all__ = ["open_store", "sqlite_path", "sqlite_url", "store_files", "tiered_path", "tiered_url"]


def open_store(
    url: str,
    *,
    read_threads: int = 4,
    on_commit: Callable[[int], None] | None = None,
    key: bytes | None = None,
    retention: Sequence[RetentionRule] = (),
) -> LogStore:
    """The adapter for a store URL: ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db`` or
    ``dynamodb://TABLE?region=..``. The DynamoDB store writes ``retention`` as each item's TTL."""
    if url.startswith("dynamodb:"):
        from logsvc.storage.dynamodb import DynamoDBStore  # noqa: PLC0415

        return DynamoDBStore(url, retention=retention)
    from logsvc.storage.sqlite import SQLiteStore  # noqa: PLC0415

    return SQLiteStore(sqlite_path(url), read_threads=read_threads, on_commit=on_commit, key=key)


def store_files(url: str) -> StoreFiles:
    """The files of an existing local store, for the operator's offline commands; ConfigError for a store
    that is not local files (DynamoDB has its own tools) or that does not exist."""
    if url.startswith("tiered:"):
        directory = tiered_path(url)
        if not directory.is_dir():
            raise ConfigError(f"there is no store at {directory}")
        from logsvc.storage.tiered_files import TieredFiles  # noqa: PLC0415

        return TieredFiles(directory)
    path = sqlite_path(url)
    if not path.exists():
        raise ConfigError(f"there is no store at {path}")
    from logsvc.storage.sqlite_files import SQLiteFiles  # noqa: PLC0415

    return SQLiteFiles(path)


def sqlite_path(url: str) -> Path:
    """The file of a ``sqlite:///relative/path.db`` or ``sqlite:////absolute/path.db`` URL."""
    return _local_path(url, "sqlite", "file.db")


def tiered_path(url: str) -> Path:
    """The directory of a ``tiered:///relative/dir`` or ``tiered:////absolute/dir`` URL (storage v2)."""
    return _local_path(url, "tiered", "dir")


def _local_path(url: str, scheme: str, example: str) -> Path:
    parts = urlsplit(url)
    if parts.scheme == "dynamodb":
        raise ConfigError(
            f"store URL {url!r}: this command works on the embedded sqlite store; for DynamoDB use its own "
            "tools (point-in-time recovery, on-demand backups, the console)"
        )
    if parts.scheme != scheme:
        raise ConfigError(
            f"store URL {url!r}: unsupported scheme {parts.scheme!r} here (expected {scheme}; "
            "supported: sqlite, tiered, dynamodb)"
        )
    if parts.netloc or not parts.path.startswith("/") or len(parts.path) < 2:
        raise ConfigError(
            f"store URL {url!r}: write {scheme}:///relative/{example} or {scheme}:////absolute/{example}"
        )
    return Path(parts.path[1:])


def sqlite_url(path: Path) -> str:
    """The store URL of a database file: the inverse of ``sqlite_path``."""
    return f"sqlite:///{path}"


def tiered_url(path: Path) -> str:
    """The store URL of a tiered store's directory: the inverse of ``tiered_path``."""
    return f"tiered:///{path}"
