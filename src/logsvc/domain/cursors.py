"""Cursors: the opaque position after which the next page of a read starts."""

from __future__ import annotations

import base64
import binascii

import msgspec

from logsvc.domain.timestamps import MAX_US

__all__ = ["decode_cursor", "encode_cursor"]

_CURSOR_VERSION = 1


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
