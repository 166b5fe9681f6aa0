"""The token filter of a cold page (storage v2, decision 28): a bloom filter of its messages' tokens.

A search reads a page only when the filter may hold every token of every search term; a page it says
"no" to cannot match. The tokens are those of the hot tier's full-text index, cut by SQLite's own FTS5
tokenizer (``sqlite_schema.FTS_TOKENIZER``): one rule of what a word is, so a page the filter skips is a
page FTS5 would not have matched either (tests/unit/test_token_filter.py checks it against FTS5).
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterable, Sequence
from typing import Final, cast

import apsw

from logsvc.storage.sqlite_schema import FTS_TOKENIZER

__all__ = ["FILTER_BITS", "FILTER_HASHES", "TokenFilter", "Tokenizer"]

# 2**15 bits and 4 hashes: about 1.2 % false positives at 3,300 distinct tokens, what a page of 1,024
# entries of realistic logs holds (the storage-v2 note); 4 KiB per page.
_PLACE_BITS: Final = 15
FILTER_BITS: Final = 1 << _PLACE_BITS
FILTER_HASHES: Final = 4
_PLACE: Final = FILTER_BITS - 1


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


class TokenFilter:
    """A bloom filter of tokens: ``may_contain`` is never False for a token that was added."""

    def __init__(self, bits: bytes | None = None) -> None:
        if bits is not None and len(bits) != FILTER_BITS // 8:
            raise ValueError(f"a token filter has {FILTER_BITS // 8} bytes, not {len(bits)}")
        self._bits = bytearray(bits) if bits is not None else bytearray(FILTER_BITS // 8)

    @classmethod
    def of(cls, tokens: Iterable[str]) -> TokenFilter:
        made = cls()
        made.add_all(set(tokens))
        return made

    def add_all(self, tokens: Iterable[str]) -> None:
        """Sets the bits of ``_places`` of every token, inlined: a page's filter is most of the time of a
        compaction."""
        bits = self._bits
        blake = hashlib.blake2b
        for token in tokens:
            digest = int.from_bytes(blake(token.encode(), digest_size=8).digest(), "little")
            for place in (
                digest & _PLACE,
                digest >> _PLACE_BITS & _PLACE,
                digest >> 2 * _PLACE_BITS & _PLACE,
                digest >> 3 * _PLACE_BITS & _PLACE,
            ):
                bits[place >> 3] |= 1 << (place & 7)

    def may_contain(self, token: str) -> bool:
        bits = self._bits
        return all(bits[place >> 3] & (1 << (place & 7)) for place in _places(token))

    def may_match(self, terms: Sequence[Sequence[str]]) -> bool:
        """Whether an entry holding every term (each given as its query tokens) may be in the page."""
        return all(self.may_contain(token) for term in terms for token in term)

    def to_bytes(self) -> bytes:
        return bytes(self._bits)


def _places(token: str) -> list[int]:
    """The filter's bits of a token: four 15-bit slices of one stable 64-bit digest (Python's ``hash``
    of a string changes from one process to the next, and a filter is read by other processes)."""
    digest = int.from_bytes(hashlib.blake2b(token.encode(), digest_size=8).digest(), "little")
    return [digest >> (_PLACE_BITS * i) & _PLACE for i in range(FILTER_HASHES)]
