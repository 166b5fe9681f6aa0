"""The token filter of a cold page (storage v2, decision 28): a bloom filter of its messages' tokens.

A search reads a page only when the filter may hold every token of every search term; a page it says
"no" to cannot match. The tokens are those of the hot tier's full-text index, cut by SQLite's own FTS5
tokenizer (``sqlite_schema.FTS_TOKENIZER``): one rule of what a word is, so a page the filter skips is a
page FTS5 would not have matched either (tests/unit/test_token_filter.py checks it against FTS5).
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
from collections.abc import Iterable, Sequence
from typing import ClassVar, Final, cast, overload

import apsw
import numpy as np

from logsvc.storage.sqlite_schema import FTS_TOKENIZER

__all__ = [
    "FILTER_BITS",
    "FILTER_HASHES",
    "IdFilter",
    "MarkedEnds",
    "TokenFilter",
    "Tokenizer",
    "rows_that_may_hold",
]

# 2**15 bits and 4 hashes: about 1.2 % false positives at 3,300 distinct tokens, what a page of 1,024
# entries of realistic logs holds (the storage-v2 note); 4 KiB per page.
_PLACE_BITS: Final = 15
FILTER_BITS: Final = 1 << _PLACE_BITS
FILTER_HASHES: Final = 4


class Tokenizer:
    """FTS5's tokenizer of the hot tier, outside any table: the tokens of a message or of a search term.

    One per thread: it holds an in-memory SQLite connection.
    """

    def __init__(self) -> None:
        self._conn = apsw.Connection(":memory:")
        name, arguments = FTS_TOKENIZER
        self._tokenize = self._conn.fts5_tokenizer(name, list(arguments))

    def document(self, text: str) -> list[str]:
        """The tokens the full-text index holds for a message."""
        return self._run(text, apsw.FTS5_TOKENIZE_DOCUMENT)

    def page(self, messages: Iterable[str]) -> set[str]:
        """The distinct tokens of many messages, cut in one call: a newline separates tokens, so the
        tokens of the messages joined by newlines are those of each message."""
        return set(self.document("\n".join(set(messages))))

    def documents(self, texts: Sequence[str]) -> list[list[str]]:
        """The tokens of each text, cut in one call: the texts joined by newlines (a separator), each
        token given back to the text its byte offset falls in."""
        encoded = [text.encode() for text in texts]
        ends = list(itertools.accumulate(len(text) + 1 for text in encoded))
        out: list[list[str]] = [[] for _ in texts]
        index = 0
        spans = self._tokenize(
            b"\n".join(encoded),
            apsw.FTS5_TOKENIZE_DOCUMENT,
            None,
            include_offsets=True,
            include_colocated=False,
        )
        for start, _end, token in cast(list[tuple[int, int, str]], spans):
            while start >= ends[index]:
                index += 1
            out[index].append(str(token))
        return out

    def query(self, term: str) -> list[str]:
        """The tokens a quoted search term (a phrase) must all match."""
        return self._run(term, apsw.FTS5_TOKENIZE_QUERY)

    def _run(self, text: str, reason: int) -> list[str]:
        tokens = self._tokenize(text.encode(), reason, None, include_offsets=False, include_colocated=False)
        return [str(token) for token in tokens]

    def close(self) -> None:
        self._conn.close()


class _Bloom:
    """A bloom filter of byte strings: ``may_contain`` is never False for a key that was added. Each key's
    places are four ``place_bits``-bit slices of one BLAKE2b-64 digest: stable across processes (Python's
    ``hash`` of a string changes from one process to the next, and a filter is read by other processes)."""

    place_bits: ClassVar[int]

    @classmethod
    def size(cls) -> int:
        """The filter's bytes."""
        return (1 << cls.place_bits) // 8

    def __init__(self, bits: bytes | None = None) -> None:
        size = self.size()
        if bits is not None and len(bits) != size:
            raise ValueError(f"a {type(self).__name__} has {size} bytes, not {len(bits)}")
        self._bits = bytearray(bits) if bits is not None else bytearray(size)

    def add_keys(self, keys: Iterable[bytes]) -> None:
        """Sets the bits of every key; ``places`` inlined, as a page's filters are much of a compaction."""
        bits = self._bits
        blake = hashlib.blake2b
        width = self.place_bits
        mask = (1 << width) - 1
        for key in keys:
            digest = int.from_bytes(blake(key, digest_size=8).digest(), "little")
            for place in (
                digest & mask,
                digest >> width & mask,
                digest >> 2 * width & mask,
                digest >> 3 * width & mask,
            ):
                bits[place >> 3] |= 1 << (place & 7)

    @classmethod
    def places(cls, key: bytes) -> tuple[int, ...]:
        """The key's bits: a read works them out once and tests them on many pages' filters (``holds``)."""
        width = cls.place_bits
        mask = (1 << width) - 1
        digest = int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little")
        return tuple(digest >> (width * i) & mask for i in range(FILTER_HASHES))

    @staticmethod
    def holds(bits: bytes | bytearray, places: Iterable[int]) -> bool:
        """Whether the filter whose bytes are ``bits`` may hold the key of these ``places``."""
        return all(bits[place >> 3] & (1 << (place & 7)) for place in places)

    def may_contain_key(self, key: bytes) -> bool:
        return self.holds(self._bits, self.places(key))

    def to_bytes(self) -> bytes:
        return bytes(self._bits)


class TokenFilter(_Bloom):
    """A bloom filter of a page's tokens."""

    place_bits = _PLACE_BITS

    @classmethod
    def of(cls, tokens: Iterable[str]) -> TokenFilter:
        made = cls()
        made.add_all(set(tokens))
        return made

    def add_all(self, tokens: Iterable[str]) -> None:
        self.add_keys(token.encode() for token in tokens)

    def may_contain(self, token: str) -> bool:
        return self.may_contain_key(token.encode())

    def may_match(self, terms: Sequence[Sequence[str]]) -> bool:
        """Whether an entry holding every term (each given as its query tokens) may be in the page."""
        return all(self.may_contain(token) for term in terms for token in term)


class IdFilter(_Bloom):
    """A bloom filter of a page's log_ids: 2**14 bits and 4 hashes, about 0.24 % false positives at 1,024
    ids (2 KiB a page), so that ``get`` and the append's idempotency open almost only the pages that hold
    an id. Stored folded to 1 KiB since decision 41 (``pages.fold``: 2.4 % false positives), read back at
    this size; the page's range of ids, in its summary too, rules out most pages first."""

    place_bits = 14

    @classmethod
    def of(cls, ids: Iterable[bytes]) -> IdFilter:
        made = cls()
        made.add_keys(ids)
        return made


_MARK: Final = b"\0"


class MarkedEnds(Sequence[int]):
    """Where each of ``count`` texts ends in ``text``, where a NUL byte follows each but the last (a
    page's message column since decision 41): text ``i`` is ``text[ends[i - 1] + 1 : ends[i]]``. The
    positions are worked out on first use (numpy finds every NUL); ``rows_that_may_hold`` needs none of
    them, as it counts the NULs before a hit instead, and keeps in ``found`` where each text it kept
    starts and ends (found on the way), so that reading those texts splits nothing."""

    def __init__(self, text: bytes, count: int) -> None:
        self.text = text
        self.found: dict[int, tuple[int, int]] = {}
        self._count = count
        self._ends: list[int] | None = None

    def __len__(self) -> int:
        return self._count

    @overload
    def __getitem__(self, index: int) -> int: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[int]: ...

    def __getitem__(self, index: int | slice) -> int | Sequence[int]:
        if self._ends is None:
            marks = np.flatnonzero(np.frombuffer(self.text, np.uint8) == 0)
            if len(marks) + 1 != self._count:
                raise ValueError("a page's column misses a text")
            self._ends = [*marks.tolist(), len(self.text)]
        return self._ends[index]


# Past this many bytes, numpy counts the NULs before a hit (about 4 us for 50 KB) rather than
# ``bytes.count`` (a byte at a time: about 17 us); below it numpy's call costs more than it saves.
_COUNTED_BY_NUMPY: Final = 4096


def _marked_rows(text: bytes, needle: bytes, found: dict[int, tuple[int, int]]) -> set[int]:
    """The texts of a NUL-separated ``text`` that hold ``needle`` (which holds no NUL): each hit's text
    is the count of NULs before it, counted on from the previous hit. Where each of them starts and ends
    is put in ``found``."""
    rows: set[int] = set()
    row, counted = 0, 0
    at = text.find(needle)
    marks = np.frombuffer(text, np.uint8) if len(text) > _COUNTED_BY_NUMPY else None
    while at >= 0:
        if marks is not None and at - counted > _COUNTED_BY_NUMPY:
            marked = int(np.count_nonzero(marks[counted:at] == 0))
        else:
            marked = text.count(_MARK, counted, at)
        row += marked
        rows.add(row)
        start = text.rfind(_MARK, counted, at) + 1 if marked else counted
        end = text.find(_MARK, at)  # on from the end of this text: one hit is enough for it
        found[row] = start, end if end >= 0 else len(text)
        if end < 0:
            break
        row, counted = row + 1, end + 1
        at = text.find(needle, counted)
    return rows


def rows_that_may_hold(text: bytes, ends: Sequence[int], tokens: Iterable[str]) -> set[int] | None:
    """The rows of a page's message column (``text``, the UTF-8 messages end to end, row ``i`` ending at
    ``ends[i]``) that may hold every one of ``tokens`` (query tokens, as ``Tokenizer.query`` cuts them);
    None when any row may (a token that is not ASCII).

    So that a search cuts into tokens only the few messages that may match: the tokens of an ASCII message
    are runs of its ASCII letters and digits, lower-cased (FTS5's ``unicode61`` folds nothing else in
    ASCII), so each is found in the message's lower-cased bytes; a message that is not ASCII (whose
    letters may fold or lose diacritics) is always kept. No row holding every token is ever left out
    (tests/unit/test_token_filter.py checks it against FTS5)."""
    wanted = set(tokens)
    if any(not token.isascii() for token in wanted):
        return None
    lowered = text.lower()  # bytes: only ASCII letters change, UTF-8 sequences are left as they are
    found: set[int] | None = None
    for token in wanted:
        needle = token.encode()
        if isinstance(ends, MarkedEnds):
            rows = _marked_rows(lowered, needle, ends.found)
        else:
            rows = set()
            at = lowered.find(needle)
            while at >= 0:
                row = bisect.bisect_right(ends, at)
                rows.add(row)
                # on from the end of this row: one hit is enough for it
                at = lowered.find(needle, ends[row]) if row < len(ends) else -1
        found = rows if found is None else found & rows
        if not found:
            break
    kept = found if found is not None else set(range(len(ends)))
    if not lowered.isascii():
        start = 0
        for row, end in enumerate(ends):
            if not text[start:end].isascii():
                kept.add(row)
            start = end
    return kept
