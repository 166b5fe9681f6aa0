"""How entries are laid out as DynamoDB items: partition and sort keys, the key range of a read, and items
back as entries and pages (see the key design in ``dynamodb``)."""

from __future__ import annotations

import hashlib
import re
from typing import Any

import msgspec

from logsvc.domain.cursors import encode_cursor
from logsvc.domain.entries import Level, LogEntry, format_log_id
from logsvc.domain.queries import Page, Query
from logsvc.domain.timestamps import DAY_US, format_timestamp
from logsvc.errors import FieldError, ValidationFailed

__all__ = [
    "HIGHEST",
    "HOUR_US",
    "LOWEST",
    "arrival_key",
    "day_key",
    "item_size",
    "key_bounds",
    "query_high",
    "shard_of",
    "sort_key",
    "to_entry",
    "to_page",
]

HIGHEST = "~"  # sorts after every sort key (digits, '#', hex)
LOWEST = "!"  # sorts before every service name and day
HOUR_US = 3_600_000_000
_LEVEL_NAMES = {int(level): level.name for level in Level}
_TIEBREAK = re.compile(r"(?:[0-9a-f]{32}~?)?")


def shard_of(log_id: bytes, shards: int) -> int:
    return int.from_bytes(hashlib.blake2b(log_id, digest_size=4).digest()) % shards


def sort_key(ts_us: int, log_id_hex: str) -> str:
    return f"{ts_us:019d}#{log_id_hex}"


def arrival_key(received_us: int, log_id_hex: str) -> str:
    """The sort key of the arrival index: when the entry arrived, then its id (a tail position)."""
    return f"{received_us:019d}#{log_id_hex}"


def day_key(ts_us: int) -> str:
    return f"{ts_us // DAY_US:06d}"


def query_high(query: Query) -> str:
    """Exclusive upper sort key of a read: its cursor or its ``until``."""
    if query.cursor is not None:
        ts, tiebreak = query.cursor
        return sort_key(ts, str(tiebreak))
    if query.until_us is not None:
        return sort_key(query.until_us, "")
    return HIGHEST


def key_bounds(query: Query) -> tuple[str, str]:
    """Inclusive sort-key bounds for the key condition; the exclusive upper end is filtered after."""
    if query.cursor is not None:
        ts, tiebreak = query.cursor
        if not isinstance(tiebreak, str) or not 0 <= ts < 10**19 or _TIEBREAK.fullmatch(tiebreak) is None:
            raise ValidationFailed(
                [FieldError("cursor", "is not a cursor this service returned (use next_cursor as given)")]
            )
    low = f"{query.since_us:019d}" if query.since_us is not None else "0"
    return low, query_high(query)


def to_page(items: list[dict[str, Any]], limit: int, cursor: str | None) -> Page:
    more = len(items) > limit
    items = items[:limit]
    if more:
        cursor = items[-1]["sk"]["S"]
    next_cursor = encode_cursor(int(cursor[:19]), cursor[20:]) if cursor is not None else None
    return Page(count=len(items), logs=[to_entry(item) for item in items], next_cursor=next_cursor)


def to_entry(item: dict[str, Any]) -> LogEntry:
    metadata = item.get("meta")
    return LogEntry(
        log_id=format_log_id(bytes.fromhex(item["id"]["S"])),
        service_name=item["svc"]["S"],
        timestamp=format_timestamp(int(item["sk"]["S"][:19])),
        level=_LEVEL_NAMES[int(item["lvl"]["N"])],
        log_type=item["typ"]["S"],
        message=item["msg"]["S"],
        metadata=msgspec.Raw(metadata["S"].encode()) if metadata is not None else None,
        received_at=format_timestamp(int(item["rcv"]["N"])),
    )


def item_size(item: dict[str, Any]) -> int:
    """DynamoDB's item size: attribute names plus values (strings as UTF-8, numbers about 1 byte per 2
    digits; an estimate above the real size is safe here)."""
    size = 0
    for name, value in item.items():
        size += len(name)
        text = value.get("S")
        size += len(text.encode()) if text is not None else len(value["N"])
    return size
