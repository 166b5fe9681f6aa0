"""The LogStore port and the choice of adapter by URL.

Adapters turn their backend's exceptions into ``logsvc.errors`` types; nothing backend-specific leaves them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import msgspec

from logsvc.domain.entries import LogEntry, NewEntry
from logsvc.domain.queries import Page, Query
from logsvc.domain.retention import RetentionRule
from logsvc.errors import ConfigError

__all__ = ["Export", "LogStore", "open_store", "sqlite_path"]


class Export(msgspec.Struct, frozen=True):
    """Rows in arrival order (``seq, log_id, ts, service, level, log_type, message, metadata, received``)
    and the ``(last_seq, committed_at)`` records of the transactions that wrote them."""

    rows: list[tuple[Any, ...]]
    commits: list[tuple[int, int]]
    last_seq: int


class LogStore(Protocol):
    async def append(self, entries: Sequence[NewEntry]) -> None:
        """Store entries atomically; returns only once they are durable. A log_id already stored for the
        same service is a no-op."""

    async def recent(self, query: Query) -> Page:
        """Matching entries, newest first by event time, ties by arrival."""

    async def get(self, log_id: bytes) -> list[LogEntry]:
        """Every entry with this id, newest first: a log_id is unique within a service, not across them."""

    async def check_writable(self) -> None:
        """Raise StoreUnavailable unless a write could be taken now."""

    async def delete_older(
        self,
        cutoff_us: int,
        *,
        include: tuple[str, ...] = (),
        exclude: tuple[str, ...] = (),
        limit: int = 500,
    ) -> int:
        """Delete up to ``limit`` entries older than ``cutoff_us`` in the service scope; how many."""

    async def export_after(self, after_seq: int, limit: int = 100_000) -> Export:
        """Rows that arrived after ``after_seq``, with their commit records, from one snapshot."""

    async def oldest(self, *, include: tuple[str, ...] = (), exclude: tuple[str, ...] = ()) -> int | None:
        """The event time of the oldest entry in the service scope."""

    async def close(self) -> None:
        """Finish every accepted write, then release the backend."""


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
    # Each adapter loads only when chosen: the Lambda package holds no SQLite, the server no boto3 use.
    if url.startswith("dynamodb:"):
        from logsvc.storage.dynamodb import DynamoDBStore  # noqa: PLC0415

        return DynamoDBStore(url, retention=retention)
    from logsvc.storage.sqlite import SQLiteStore  # noqa: PLC0415

    return SQLiteStore(sqlite_path(url), read_threads=read_threads, on_commit=on_commit, key=key)


def sqlite_path(url: str) -> Path:
    """The file of a ``sqlite:///relative/path.db`` or ``sqlite:////absolute/path.db`` URL."""
    parts = urlsplit(url)
    if parts.scheme == "dynamodb":
        raise ConfigError(
            f"store URL {url!r}: this command works on the embedded sqlite store; for DynamoDB use its own "
            "tools (point-in-time recovery, on-demand backups, the console)"
        )
    if parts.scheme != "sqlite":
        raise ConfigError(
            f"store URL {url!r}: unsupported scheme {parts.scheme!r} (supported: sqlite, dynamodb)"
        )
    if parts.netloc or not parts.path.startswith("/") or len(parts.path) < 2:
        raise ConfigError(
            f"store URL {url!r}: write sqlite:///relative/file.db or sqlite:////absolute/file.db"
        )
    return Path(parts.path[1:])
