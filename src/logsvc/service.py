"""The use cases: ingest, recent, get. The only place business rules are applied."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Protocol

import msgspec
import uuid_utils

from logsvc.errors import FieldError, NotFound, ValidationFailed
from logsvc.model import (
    Limits,
    LogEntry,
    NewEntry,
    Page,
    decode_documents,
    format_timestamp,
    parse_log_id,
    parse_query,
    validate_entries,
)
from logsvc.storage import LogStore

__all__ = ["BatchCreated", "Created", "IngestObserver", "LogService"]


class Created(msgspec.Struct, frozen=True):
    message: str
    log_id: str
    timestamp: str


class BatchCreated(msgspec.Struct, frozen=True):
    count: int
    log_ids: list[str]


class IngestObserver(Protocol):
    """Told how many entries each ingest stored or rejected (metrics)."""

    def ingested(self, count: int) -> None: ...

    def rejected(self, count: int) -> None: ...


class LogService:
    def __init__(
        self,
        store: LogStore,
        limits: Limits,
        *,
        observer: IngestObserver | None = None,
        clock_us: Callable[[], int] = lambda: time.time_ns() // 1000,
    ) -> None:
        self.store = store
        self.limits = limits
        self._observer = observer
        self._clock_us = clock_us

    async def ingest(self, body: bytes, *, ndjson: bool) -> Created | BatchCreated:
        """Validate a whole request body and store it atomically; returns once the entries are durable."""
        try:
            docs, single = decode_documents(body, ndjson=ndjson)
        except ValidationFailed:
            self._rejected(1)
            raise
        try:
            entries = validate_entries(docs, now_us=self._clock_us(), limits=self.limits, batch=not single)
        except ValidationFailed:
            self._rejected(len(docs))
            raise
        await self.store.append(entries)
        if self._observer is not None:
            self._observer.ingested(len(entries))
        if single:
            return _created(entries[0])
        return BatchCreated(
            count=len(entries), log_ids=[str(uuid_utils.UUID(bytes=e.log_id)) for e in entries]
        )

    def _rejected(self, count: int) -> None:
        if self._observer is not None:
            self._observer.rejected(count)

    async def recent(self, params: Iterable[tuple[str, str]]) -> Page:
        return await self.store.recent(parse_query(params, now_us=self._clock_us()))

    async def get(self, log_id: str) -> LogEntry:
        try:
            key = parse_log_id(log_id)
        except ValueError as exc:
            raise ValidationFailed([FieldError("log_id", str(exc))]) from None
        entry = await self.store.get(key)
        if entry is None:
            raise NotFound(f"no log entry with log_id {log_id}")
        return entry


def _created(entry: NewEntry) -> Created:
    return Created(
        message="Log entry created successfully",
        log_id=str(uuid_utils.UUID(bytes=entry.log_id)),
        timestamp=format_timestamp(entry.ts_us),
    )
