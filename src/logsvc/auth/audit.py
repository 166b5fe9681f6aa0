"""The rules of the audit trail's records of refused requests, applied by ``CredentialService``.

Anyone can be refused, without credentials, as often as the network allows, and chooses the path that
becomes the record's target (up to the size of a request line). So every field of a refusal is cut to
``MAX_FIELD_CHARS`` with a marker of how much was cut, and made printable: control and other non-printable
characters (and the backslash, so that the escapes are unambiguous) become ``\\xNN``, ``\\uNNNN`` or
``\\UNNNNNNNN``. Identical refusals waiting for the next write are one record with their count. The
records waiting are bounded in number and in bytes; what does not fit is counted and logged when the
waiting records are taken. The stores only persist what ``RefusalBuffer.take`` gives the service.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Final

import msgspec

__all__ = [
    "DENIED",
    "FLUSH_SECONDS",
    "MAX_FIELD_CHARS",
    "MAX_PENDING_BYTES",
    "MAX_PENDING_RECORDS",
    "Refusal",
    "RefusalBuffer",
    "audit_cutoff_us",
    "audit_field",
]

log = logging.getLogger("logsvc.auth.audit")

DENIED: Final = "request.denied"
MAX_FIELD_CHARS: Final = 200
# Identical refusals within one write period are one record: at most one write a second, however many.
FLUSH_SECONDS: Final = 1.0
MAX_PENDING_RECORDS: Final = 10_000
MAX_PENDING_BYTES: Final = 1024 * 1024
# What a record costs beyond its text, in the buffer and on disk (key, time, count, row overhead).
_RECORD_OVERHEAD: Final = 64
_DAY_US: Final = 86_400_000_000


def _escaped(char: str) -> str:
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def audit_field(text: str, limit: int = MAX_FIELD_CHARS) -> str:
    """``text`` as the audit trail stores it: every non-printable character and the backslash escaped
    (stored text is unambiguous), at most ``limit`` characters of it, then, when cut, ``…(+N chars)``
    naming how many characters were left out. Reads no more of ``text`` than it keeps, so a long one
    costs no more than a short one. (``logsvc.display.printable`` is the rule for printing any text on a
    terminal: it keeps backslashes and does not cut.)"""
    kept: list[str] = []
    used = 0
    for index, char in enumerate(text):
        piece = char if char.isprintable() and char != "\\" else _escaped(char)
        if used + len(piece) > limit:
            kept.append(f"…(+{len(text) - index} chars)")
            break
        kept.append(piece)
        used += len(piece)
    return "".join(kept)


def audit_cutoff_us(now_us: int, retention_days: float) -> int | None:
    """The time before which audit records are deleted; None when they are kept forever (0 days)."""
    if retention_days <= 0:
        return None
    return now_us - int(retention_days * _DAY_US)


class Refusal(msgspec.Struct, frozen=True):
    """Identical refused requests: the first one's time (µs) and how many there were."""

    at: int
    actor: str
    target: str
    source: str
    detail: str
    count: int


class RefusalBuffer:
    """Refused requests waiting to be written, aggregated and bounded; thread-safe.

    ``name`` says which store's refusals these are, in the log line that counts the ones dropped."""

    def __init__(
        self,
        name: str,
        *,
        clock_us: Callable[[], int],
        max_records: int = MAX_PENDING_RECORDS,
        max_bytes: int = MAX_PENDING_BYTES,
    ) -> None:
        self.name = name
        self.max_records = max_records
        self.max_bytes = max_bytes
        self._clock_us = clock_us
        self._lock = threading.Lock()
        # (actor, target, source, detail) -> [first time (µs), count]
        self._pending: dict[tuple[str, str, str, str], list[int]] = {}
        self._bytes = 0
        self._dropped = 0
        self._dropped_because: set[str] = set()

    def add(self, *, actor: str, target: str, source: str, detail: str) -> bool:
        """Note one refusal; True when it is the first one waiting (the caller arranges a write)."""
        key = (audit_field(actor), audit_field(target), audit_field(source), audit_field(detail))
        with self._lock:
            seen = self._pending.get(key)
            if seen is not None:
                seen[1] += 1
                return False
            size = sum(len(part.encode()) for part in key) + _RECORD_OVERHEAD
            if len(self._pending) >= self.max_records:
                self._drop(f"more than {self.max_records} waiting")
                return False
            if self._bytes + size > self.max_bytes:
                self._drop(f"more than {self.max_bytes} bytes waiting")
                return False
            self._pending[key] = [self._clock_us(), 1]
            self._bytes += size
            return len(self._pending) == 1

    def _drop(self, because: str) -> None:
        self._dropped += 1
        self._dropped_because.add(because)

    def take(self) -> list[Refusal]:
        """The records waiting, oldest first, leaving none; logs how many refusals were dropped since the
        last take, and why."""
        with self._lock:
            pending, self._pending, self._bytes = self._pending, {}, 0
            dropped, self._dropped = self._dropped, 0
            because, self._dropped_because = self._dropped_because, set()
        if dropped:
            log.warning(
                "%s: %d refused-request audit events dropped (%s)",
                self.name,
                dropped,
                "; ".join(sorted(because)),
            )
        return [
            Refusal(at, actor, target, source, detail, count)
            for (actor, target, source, detail), (at, count) in pending.items()
        ]
