"""Syslog messages out of a TCP stream (RFC 6587), with each frame's size bounded while it is read.

Senders use one of two framings, and some switch: each frame is read by what it starts with, as rsyslog
does. 1-10 digits (no leading 0) and a single SP start octet counting (``MSG-LEN SP MSG``, RFC 6587 section
3.4.1; RFC 5425 over TLS); anything else is non-transparent framing, a message ended by LF (section 3.4.2; a
CR before the LF is dropped). So a line without PRI that starts with digits, such as the RFC 3339 time
rsyslog forwards, is a line: only digits then SP are a count. Empty lines, CRs and NULs between frames are
skipped. A frame longer than ``max_frame_bytes`` ends the stream (``FramingError``): after it, where the
next frame starts is unknown.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["FRAME_TOO_LARGE", "TRUNCATED", "FramingError", "SyslogFramer"]

FRAME_TOO_LARGE: Final = "frame_too_large"
TRUNCATED: Final = "truncated"

# MSG-LEN = NONZERO-DIGIT *DIGIT; ten digits are more than any frame limit allows.
_COUNT = re.compile(rb"([1-9][0-9]{0,9}) ")
# Digits up to the end of what was read: the SP that makes them a count may be in the next read.
_COUNT_PREFIX = re.compile(rb"[1-9][0-9]{0,9}\Z")
_BETWEEN_FRAMES = b"\r\n\x00"


class FramingError(ValueError):
    """The stream cannot be read on: ``reason`` is FRAME_TOO_LARGE or TRUNCATED. ``frames``
    holds the complete frames read before the fault, which are still messages."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.frames: list[bytes] = []


class SyslogFramer:
    """Feed it what a connection reads; it returns the complete frames and keeps at most one unfinished
    frame (at most ``max_frame_bytes`` and its count)."""

    def __init__(self, max_frame_bytes: int) -> None:
        self.max_frame_bytes = max_frame_bytes
        self._buffer = bytearray()
        self._need: int | None = None  # the length of the octet-counted frame being read

    def feed(self, data: bytes) -> list[bytes]:
        buffer = self._buffer
        buffer += data
        frames: list[bytes] = []
        position = 0
        try:
            while True:
                if self._need is not None:
                    if len(buffer) - position < self._need:
                        break
                    frames.append(bytes(buffer[position : position + self._need]))
                    position += self._need
                    self._need = None
                    continue
                while position < len(buffer) and buffer[position] in _BETWEEN_FRAMES:
                    position += 1
                if position == len(buffer):
                    break
                if 0x31 <= buffer[position] <= 0x39:
                    counted = self._count(buffer, position)
                    if counted is None:
                        break
                    if counted:
                        position = counted
                        continue
                end = buffer.find(b"\n", position, position + self.max_frame_bytes + 2)
                if end == -1:
                    if len(buffer) - position > self.max_frame_bytes + 1:
                        raise self._too_large("a line")
                    break
                frame = bytes(buffer[position:end]).removesuffix(b"\r")
                if len(frame) > self.max_frame_bytes:
                    raise self._too_large("a line")
                frames.append(frame)
                position = end + 1
        except FramingError as exc:
            exc.frames = frames
            raise
        finally:
            del buffer[:position]
        return frames

    def finish(self) -> bytes | None:
        """At the end of the stream: the last line, when its LF never came; FramingError when an
        octet-counted frame was cut short."""
        rest = bytes(self._buffer).strip(_BETWEEN_FRAMES)
        self._buffer.clear()
        if self._need is not None or _COUNT_PREFIX.match(rest) is not None:
            raise FramingError(TRUNCATED, "the connection ended inside an octet-counted frame")
        return rest or None

    def _count(self, buffer: bytearray, position: int) -> int | None:
        """Read an octet count at ``position`` into ``_need`` and answer where its frame starts; 0 when the
        frame is a line that starts with digits; None when only digits have come so far."""
        match = _COUNT.match(buffer, position)
        if match is None:
            return None if _COUNT_PREFIX.match(buffer, position) is not None else 0
        count = int(match[1])
        if count > self.max_frame_bytes:
            raise self._too_large(f"an octet count of {count}")
        self._need = count
        return match.end()

    def _too_large(self, what: str) -> FramingError:
        return FramingError(
            FRAME_TOO_LARGE, f"{what} is over syslog_max_frame_bytes ({self.max_frame_bytes} bytes)"
        )
