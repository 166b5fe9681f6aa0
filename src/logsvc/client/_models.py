"""What the SDK sends and gets back: entries, pages and acknowledgements as the client sees them.

The server's own Structs (``logsvc.domain``) are shaped for encoding fast (an entry's metadata is raw JSON
there); these decode into plain Python values. tests/integration/test_sdk.py checks that their fields are
exactly those of the OpenAPI schemas of the same names, so they cannot drift from the API.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, TypedDict
from uuid import UUID

import msgspec

__all__ = ["BatchCreated", "Created", "Entry", "Filters", "Page", "entry_document", "read_params"]


class Entry(msgspec.Struct, frozen=True):
    """A stored entry as the service returns it; times are RFC 3339 UTC text with 6 fractional digits."""

    log_id: str
    service_name: str
    timestamp: str
    level: str
    log_type: str
    message: str
    metadata: dict[str, Any] | None
    received_at: str


class Page(msgspec.Struct, frozen=True):
    """One page of a read, newest first; ``next_cursor`` continues it (None on the last page)."""

    count: int
    logs: list[Entry]
    next_cursor: str | None


class Created(msgspec.Struct, frozen=True):
    """The answer to one entry sent: stored durably under ``log_id``."""

    message: str
    log_id: str
    timestamp: str


class BatchCreated(msgspec.Struct, frozen=True):
    """The answer to a batch sent: every entry stored durably, ``log_ids`` in the order sent."""

    count: int
    log_ids: list[str]


class Filters(TypedDict, total=False):
    """The read parameters of ``GET /logs`` (docs/api.md); the service checks them and names any it refuses.

    ``since`` and ``until`` take RFC 3339 text, epoch numbers or timezone-aware datetimes.
    """

    service_name: str
    level: str
    min_level: str
    log_type: str
    since: str | float | datetime
    until: str | float | datetime
    hours: float
    q: str
    limit: int
    cursor: str


def _text(name: str, value: object) -> str:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"{name} must be a timezone-aware datetime")
        return value.isoformat()
    if isinstance(value, bool):
        raise TypeError(f"{name} must not be a bool")
    return str(value)


def read_params(filters: Mapping[str, Any]) -> dict[str, str]:
    """The query string of a read; None values are left out."""
    return {name: _text(name, value) for name, value in filters.items() if value is not None}


def entry_document(
    message: str,
    *,
    service: str | None,
    level: str | None,
    log_type: str | None,
    metadata: Mapping[str, Any] | None,
    timestamp: str | float | datetime | None,
    log_id: str | UUID | None,
) -> dict[str, Any]:
    """An entry as ``POST /logs`` takes it; what is None is left to the service's defaults."""
    document: dict[str, Any] = {"message": message}
    if service is not None:
        document["service_name"] = service
    if level is not None:
        document["level"] = level
    if log_type is not None:
        document["log_type"] = log_type
    if metadata is not None:
        document["metadata"] = dict(metadata)
    if timestamp is not None:
        document["timestamp"] = (
            _text("timestamp", timestamp) if isinstance(timestamp, datetime) else timestamp
        )
    if log_id is not None:
        document["log_id"] = str(log_id)
    return document
