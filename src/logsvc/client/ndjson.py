"""Entries read as NDJSON (one JSON object a line) in batches, as they come: what `logsvc send` does with
its standard input, for any program that pipes entries in.

    with Client(url, api_key=key) as client:
        for batch in read_batches(sys.stdin.buffer):
            client.send_batch(batch.entries)
"""

from __future__ import annotations

import os
import select
from collections.abc import Iterable, Iterator
from typing import Any, BinaryIO, NamedTuple

import msgspec

__all__ = ["BadLine", "Batch", "batches", "read_batches"]

_CHUNK = 64 * 1024


class BadLine(ValueError):
    """A line that is not a JSON object; ``line`` is its number, counted from 1."""

    def __init__(self, line: int, problem: str) -> None:
        self.line = line
        self.problem = problem
        super().__init__(f"line {line}: {problem}")


class Batch(NamedTuple):
    lines: list[int]
    """The line number of each entry."""
    entries: list[dict[str, Any]]


def _readable(fd: int, seconds: float) -> bool:
    ready, _, _ = select.select([fd], [], [], seconds)
    return bool(ready)


def _lines(fd: int, linger: float | None) -> Iterator[bytes | None]:
    """The lines of ``fd`` as they arrive, and None whenever none arrived for ``linger`` seconds."""
    rest = bytearray()
    while True:
        if linger is not None and not _readable(fd, linger):
            yield None
            continue
        chunk = os.read(fd, _CHUNK)
        if not chunk:
            break
        rest += chunk
        if b"\n" in chunk:
            *complete, last = rest.split(b"\n")
            rest = bytearray(last)
            yield from (bytes(line) for line in complete)
    if rest:
        yield bytes(rest)


def _entry(line: bytes, number: int) -> dict[str, Any] | None:
    if not line.strip():
        return None
    try:
        entry = msgspec.json.decode(line)
    except msgspec.DecodeError as exc:
        raise BadLine(number, f"not JSON ({exc})") from None
    if not isinstance(entry, dict):
        raise BadLine(number, f"must be a JSON object, not {type(entry).__name__}")
    return entry


def batches(lines: Iterable[bytes | None], *, size: int = 1000) -> Iterator[Batch]:
    """Batches of at most ``size`` entries from ``lines``; a None in ``lines`` sends the batch begun so far.
    Blank lines are skipped; a line that is not a JSON object raises ``BadLine`` when it is reached, after
    the batches before it were yielded."""
    if size < 1:
        raise ValueError("size must be at least 1")
    numbers: list[int] = []
    entries: list[dict[str, Any]] = []
    number = 0
    for line in lines:
        if line is not None:
            number += 1
            entry = _entry(line, number)
            if entry is None:
                continue
            numbers.append(number)
            entries.append(entry)
        if entries and (line is None or len(entries) == size):
            yield Batch(numbers, entries)
            numbers, entries = [], []
    if entries:
        yield Batch(numbers, entries)


def read_batches(stream: BinaryIO, *, size: int = 1000, linger: float | None = 1.0) -> Iterator[Batch]:
    """``batches`` of a file or pipe, read as it is written: a batch goes when ``size`` entries are in, or
    when no line came for ``linger`` seconds (None: only when full), so that ``tail -f`` piped in is sent
    as it grows. Reads the file descriptor directly: nothing may have been read from ``stream`` before."""
    return batches(_lines(stream.fileno(), linger), size=size)
