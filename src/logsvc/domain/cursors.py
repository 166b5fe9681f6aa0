"""Cursors: the opaque position after which the next page of a read starts, and the position in a store's
commit order after which a tail goes on (``Position``)."""

from __future__ import annotations

import base64
import binascii

import msgspec

from logsvc.domain.timestamps import MAX_US

__all__ = ["Position", "decode_cursor", "decode_position", "encode_cursor", "encode_position", "past_head"]

_CURSOR_VERSION = 1
_POSITION_VERSION = 2

# A place in a store's commit order, compared as a tuple: (arrival number, "") in SQLite, (arrival time µs,
# log id) in DynamoDB (decision 23). Every entry of a tail lies after the position given as its cursor.
Position = tuple[int, str]


def encode_cursor(ts_us: int, tiebreak: int | str) -> str:
    """An opaque position after which the next page starts (exclusive)."""
    raw = msgspec.msgpack.encode((_CURSOR_VERSION, ts_us, tiebreak))
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(cursor: str) -> tuple[int, int | str]:
    """The position ``encode_cursor`` wrote; ValueError for anything else, however it was made."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        version, ts_us, tiebreak = msgspec.msgpack.decode(raw, type=tuple[int, int, int | str])
    except (binascii.Error, ValueError, msgspec.DecodeError):
        raise ValueError("not a cursor") from None
    # A cursor is client input: numbers out of the stores' range would overflow their integers.
    if version != _CURSOR_VERSION or not 0 <= ts_us <= MAX_US:
        raise ValueError("not a cursor")
    if isinstance(tiebreak, int) and not 0 <= tiebreak < 2**63:
        raise ValueError("not a cursor")
    return ts_us, tiebreak


def encode_position(position: Position) -> str:
    """A tail position as an opaque cursor (an SSE event id, a polling page's next_cursor)."""
    raw = msgspec.msgpack.encode((_POSITION_VERSION, *position))
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_position(cursor: str) -> Position:
    """The position ``encode_position`` wrote; ValueError for anything else (a read's cursor included)."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        version, number, tiebreak = msgspec.msgpack.decode(raw, type=tuple[int, int, str])
    except (binascii.Error, ValueError, msgspec.DecodeError):
        raise ValueError("not a tail cursor") from None
    if version != _POSITION_VERSION or not 0 <= number < 2**63 or len(tiebreak) > 64:
        raise ValueError("not a tail cursor")
    return number, tiebreak


def past_head(position: Position, head: Position, *, leeway: int = 0) -> bool:
    """Whether a tail position lies past ``head``, the position of a store's newest commit, by more than
    ``leeway`` in its number. A store's head only moves on, so no position it gave is past it: such a cursor
    was made up, and a tail after it would wait for entries that never come. The head itself is the
    position of a tail started now."""
    return (position[0] - leeway, position[1]) > head
