"""The LogStore port, and the capabilities a backend may offer beyond it.

Adapters turn their backend's exceptions into ``logsvc.errors`` types; nothing backend-specific leaves them.
A capability is a Protocol of its own: a caller asks for it with ``exportable`` (or ``isinstance``) and gets
a clear error where the backend has none, instead of every adapter carrying methods that only raise.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import msgspec

from logsvc.domain.context import Context
from logsvc.domain.cursors import Position
from logsvc.domain.entries import LogEntry, NewEntry
from logsvc.domain.queries import Page, Query
from logsvc.domain.stats import ServiceTotal, StatsQuery
from logsvc.errors import ConfigError

__all__ = [
    "Arrival",
    "Arrivals",
    "EncodedReads",
    "Export",
    "Exportable",
    "LogStore",
    "OnCommit",
    "ServiceStats",
    "StoreFiles",
    "StoreStats",
    "exportable",
]


# Told of each transaction of entries, once it committed: how many of them it stored (not those whose log_id
# their service held already: re-sent, acknowledged again but stored once), and the seconds the transaction
# took (group commit sizes and durations, for the metrics).
OnCommit = Callable[[int, float], None]


class Arrival(msgspec.Struct, frozen=True):
    """An entry as a tail reads it: its place in the store's commit order, and the entry with the raw
    values a filter looks at."""

    position: Position
    ts_us: int
    level: int
    entry: LogEntry


class Arrivals(msgspec.Struct, frozen=True):
    """What committed after a position, in commit order. ``position`` is where the next read goes on;
    ``more`` says a limit cut this read short; ``found`` holds, for each search asked for, the positions of
    the arrivals its terms match (by the store's own rule, as its reads match them)."""

    entries: list[Arrival]
    position: Position
    more: bool = False
    found: dict[tuple[str, ...], frozenset[Position]] = msgspec.field(default_factory=dict)


class LogStore(Protocol):
    async def append(self, entries: Sequence[NewEntry]) -> None:
        """Store entries atomically; returns only once they are durable. A log_id already stored for the
        same service is a no-op."""

    async def recent(self, query: Query) -> Page:
        """Matching entries, newest first by event time, ties by arrival."""

    async def get(self, log_id: bytes) -> list[LogEntry]:
        """Every entry with this id, newest first: a log_id is unique within a service, not across them."""

    async def histogram(self, query: StatsQuery) -> list[tuple[int, int | str, int]]:
        """``(bucket, key, count)`` of the entries matching ``query.filters`` in its window, by bucket and by
        ``query.by`` (the level number, or the service name); a key may come in several rows of a bucket.
        Counting past the backend's bound is refused with ValidationFailed naming the parameter to change."""

    async def services(
        self, patterns: tuple[str, ...], *, after: str | None = None, limit: int | None = None
    ) -> list[ServiceTotal]:
        """The services holding entries that the patterns cover (all when empty) whose names sort after
        ``after``: the first ``limit`` of them by name (all when None), any order."""

    async def context(self, log_id: bytes, service: str, *, before: int, after: int) -> Context | None:
        """The entry with this id in this service and up to ``before``/``after`` of the service's entries
        just older/newer (``logsvc.domain.context.fit_context``); None when there is no such entry."""

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
        """Delete about ``limit`` entries older than ``cutoff_us`` in the service scope; how many. A store may
        delete more in one call (the tiered store deletes whole pages): callers go on while a call deletes
        ``limit`` or more."""

    async def oldest(self, *, include: tuple[str, ...] = (), exclude: tuple[str, ...] = ()) -> int | None:
        """The event time of the oldest entry in the service scope."""

    @property
    def tail_delay(self) -> float:
        """Seconds after its arrival before ``arrivals`` gives an entry: the time a write takes to be seen
        everywhere (0 where a commit is seen at once)."""

    async def arrivals(
        self, after: Position | None, *, limit: int, searches: Sequence[tuple[str, ...]] = ()
    ) -> Arrivals:
        """Entries committed after ``after``, in commit order: at most ``limit``, and fewer where their size
        says so; with ``searches``, which of them each set of search terms matches. ``after`` None reads
        nothing and gives the position of the newest commit: a tail starts there."""

    async def close(self) -> None:
        """Finish every accepted write, then release the backend."""


class Export(msgspec.Struct, frozen=True):
    """Rows in arrival order (``seq, log_id, ts, service, level, log_type, message, metadata, received``)
    and the ``(last_seq, committed_at)`` records of the transactions that wrote them."""

    rows: list[tuple[Any, ...]]
    commits: list[tuple[int, int]]
    last_seq: int


@runtime_checkable
class Exportable(Protocol):
    """A store that numbers entries by arrival and records when each transaction committed, so that what
    arrived since a point can be archived and replayed up to a time (continuous archiving)."""

    async def export_after(self, after_seq: int, limit: int = 100_000) -> Export:
        """Rows that arrived after ``after_seq``, with their commit records, from one snapshot."""


@runtime_checkable
class EncodedReads(Protocol):
    """A store that answers a read with its JSON directly, for less than building its Page's entries: it
    keeps them encoded (decision 30)."""

    async def recent_json(self, query: Query) -> bytes:
        """``msgspec.json.encode(await self.recent(query))``, byte for byte."""


def exportable(store: LogStore) -> Exportable:
    """The store's archive export; ConfigError naming the alternative when its backend has none."""
    if isinstance(store, Exportable):
        return store
    raise ConfigError(
        f"the {type(store).__name__} has no archive export: back its backend up with its own tools "
        "(for DynamoDB, point-in-time recovery)"
    )


class ServiceStats(msgspec.Struct, frozen=True):
    service_name: str
    entries: int
    bytes: int  # message and metadata text, UTF-8
    oldest: str
    newest: str


class StoreStats(msgspec.Struct, frozen=True):
    path: str
    file_bytes: int  # the database and its WAL on disk
    entries: int
    services: list[ServiceStats]


class StoreFiles(Protocol):
    """A store kept in local files, worked on offline by the operator's commands (no server needed); each
    takes the store's key (None when encryption is off)."""

    @property
    def path(self) -> Path:
        """The database file."""

    def stats(self, key: bytes | None) -> StoreStats:
        """Entries, bytes and time range per service (a full scan)."""

    def snapshot(self, key: bytes | None, target: Path) -> None:
        """A consistent copy into ``target``, encrypted like the store, taken while writers go on."""

    def destroy(self, key: bytes | None) -> None:
        """Delete the store's files; refused while another connection (a running server) has it open."""
