"""Entries as the JSON of an answer, kept by arrival number for the reads that come again."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Final

__all__ = ["DEFAULT_ENCODED_BYTES", "Encoded", "EncodedEntries"]

# About 20,000 entries of a few hundred bytes: the newest pages of every filter a team's dashboards poll.
DEFAULT_ENCODED_BYTES: Final = 8 * 1024 * 1024
# What keeping one costs besides its bytes: the dict slot, the tuple, the bytes and int objects.
_OVERHEAD: Final = 150

# An entry's JSON (``msgspec.json.encode`` of its LogEntry) and its size as a page counts it
# (``entry_bytes``).
Encoded = tuple[bytes, int]


class EncodedEntries:
    """The JSON of entries by arrival number, up to ``max_bytes`` (the first kept is the first dropped).

    An entry never changes once stored, and an arrival number is never given to another entry, also after
    a deletion (decision 23): what is kept cannot go stale. A deleted entry's JSON stays until it is
    dropped, but no read finds its number any more. The newest entries are the ones read again and again
    (a dashboard's page, the viewer's first screen); a read of kept entries costs a lookup each instead of
    building and encoding them (decision 30).

    Lookups take no lock (one dict read is atomic under the GIL); the reads that run in threads add under one.
    """

    def __init__(self, max_bytes: int = DEFAULT_ENCODED_BYTES) -> None:
        self._max_bytes = max_bytes
        self._kept: OrderedDict[int, Encoded] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    @property
    def find(self) -> Callable[[int], Encoded | None]:
        """The JSON and size of the entry of this arrival number, if kept."""
        return self._kept.get

    def keep(self, encoded: list[tuple[int, Encoded]]) -> None:
        """Keep these entries' JSON, dropping the first kept while over the budget."""
        if self._max_bytes <= 0:
            return
        kept = self._kept
        with self._lock:
            for seq, value in encoded:
                if seq not in kept:
                    kept[seq] = value
                    self._bytes += len(value[0]) + _OVERHEAD
            while self._bytes > self._max_bytes and kept:
                _, (dropped, _) = kept.popitem(last=False)
                self._bytes -= len(dropped) + _OVERHEAD
