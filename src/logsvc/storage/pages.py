"""Cold pages of storage v2 (decision 28): entries in columns, each compressed on its own with zstd.

A page holds up to ``PAGE_ENTRIES`` rows of the hot tier (``sqlite_schema.Row``: arrival number, log_id,
event time, service, level, type, message, metadata, arrival time) and gives them back exactly, in the
order it was given them. Its ``PageSummary`` (times, arrival numbers, services, levels and a token filter)
is what a read prunes pages by without decompressing them.

Layout of a page (``LSP2``, decision 41): ``b"LSP2"``, the entry count, the id of the zstd dictionary of
its message text (0 for none) and its flags as unsigned 32-bit integers, the compressed size of each of
its 14 columns (unsigned 32-bit, 0 for a column the flags leave out), then the columns. Integers are kept
as differences (from the previous row, or from the event time for the arrival time) modulo 2**64,
byte-shuffled (the n-th byte of every value together) before compression, so that the high bytes, nearly
all equal, compress to almost nothing.

- log_ids: when every id of the page is a UUIDv7 (flag ``_UUID7``), its millisecond is kept as its
  difference from the entry's event time (column 13; nearly always 0 or a few ms), and its 74 random bits
  packed: bytes 7 and 9-15 as they are, the version's nibble and the variant's 6 bits in one byte, their
  last 2 bits four to a byte. Otherwise the 16 bytes of each id, byte-shuffled (column 1).
- texts: the message and metadata texts, one after the other separated by NUL bytes, a missing metadata
  written as the byte 0xFF (never in UTF-8), when no text of the column holds a NUL (flags
  ``_MESSAGES_MARKED``, ``_METADATA_MARKED``): zstd codes an end it can predict in less than a length.
  Otherwise a column of UTF-8 byte lengths (-1 for a missing metadata) beside the texts.

The first format (``LSP1``: no flags, 13 columns, ids always byte-shuffled, texts always with lengths, the
dictionary for both texts) is still read: pages are never rewritten to change their format.
"""

from __future__ import annotations

import functools
import itertools
import operator
import struct
from array import array
from collections.abc import Callable, Iterable, Sequence
from typing import Final, cast

import msgspec
import numpy as np
import numpy.typing as npt
import zstandard

from logsvc.domain.queries import Query
from logsvc.scopes import covers
from logsvc.storage.sqlite_schema import Row
from logsvc.storage.token_filter import IdFilter, MarkedEnds, TokenFilter, Tokenizer

__all__ = ["PAGE_ENTRIES", "PageCodec", "PageSummary", "PageView", "Row", "train_dictionary"]

PAGE_ENTRIES: Final = 1024
_MAGIC: Final = b"LSP2"
_FIRST_MAGIC: Final = b"LSP1"
_HEAD: Final = struct.Struct("<4sIII")
_FIRST_HEAD: Final = struct.Struct("<4sII")
_UUID7: Final = 1
_MESSAGES_MARKED: Final = 2
_METADATA_MARKED: Final = 4
_END: Final = b"\0"
_MISSING: Final = b"\xff"  # a missing metadata object among marked texts: never a byte of UTF-8
_LEVEL: Final = 3
# The message and metadata texts, most of a page, at a higher level (decision 38): 2.8 bytes an entry less
# for 1.7 us more of the compactor's CPU an entry; decoding is as fast at any level.
_TEXT_LEVEL: Final = 9
_ID_BYTES: Final = 16
_NULL: Final = -1  # the length of a missing metadata object
_MOD: Final = 1 << 64
_SIGN: Final = 1 << 63
_COLUMNS: Final = 14
_FIRST_COLUMNS: Final = 13
# 64 KiB, trained on messages alone: measured on the template data (decision 41), 19.4 bytes an entry of
# message text against 21.6 without; the metadata does not gain from one (24.9-25.4 against 24.6).
_DICTIONARY_BYTES: Final = 64 * 1024
_MESSAGE_LENGTHS: Final = 9
_MESSAGE_TEXT: Final = 10
_METADATA_LENGTHS: Final = 11
_METADATA_TEXT: Final = 12
_ID_MILLISECONDS: Final = 13
# A read of fewer rows than one in _FEW_ROWS of a page decodes their integers alone, not whole columns.
_FEW_ROWS: Final = 16
# The first few texts read from a column of marked ends are split off alone (from the nearer end); past
# them, the column is split whole once (about 50 us a page).
_ALONE: Final = 4


class PageSummary(msgspec.Struct, frozen=True, array_like=True):
    """What a read knows of a page without opening it. ``services`` are sorted, ``newest`` is the event
    time of each one's newest entry in the page; ``levels`` has bit ``1 << level`` set for every level the
    page holds; ``tokens`` is the ``TokenFilter`` of its messages, ``ids`` the ``IdFilter`` of its
    log_ids, ``low_id`` and ``high_id`` its smallest and largest log_id (empty in a summary stored before
    decision 41)."""

    count: int
    min_ts: int
    max_ts: int
    min_seq: int
    max_seq: int
    services: tuple[str, ...]
    newest: tuple[int, ...]
    levels: int
    tokens: bytes
    ids: bytes
    low_id: bytes = b""
    high_id: bytes = b""

    def to_bytes(self) -> bytes:
        """The summary as stored (decision 41): the token filter compressed, the id filter folded in
        two."""
        packed = msgspec.structs.replace(
            _StoredSummary(*msgspec.structs.astuple(self)),
            tokens=zstandard.ZstdCompressor(level=_LEVEL).compress(self.tokens),
            ids=fold(self.ids),
            form=_PACKED_FILTERS,
        )
        return msgspec.msgpack.encode(packed)

    @classmethod
    def from_bytes(cls, data: bytes) -> PageSummary:
        """A stored summary, its filters at their full size (a summary stored before decision 41 has
        them so)."""
        stored = msgspec.msgpack.decode(data, type=_StoredSummary)
        summary = cls(*msgspec.structs.astuple(stored)[: len(cls.__struct_fields__)])
        if stored.form == _FULL_FILTERS:
            return summary
        if stored.form != _PACKED_FILTERS:
            raise ValueError(f"a page summary of unknown form {stored.form}")
        tokens = zstandard.ZstdDecompressor().decompress(stored.tokens, max_output_size=TokenFilter.size())
        return msgspec.structs.replace(summary, tokens=tokens, ids=stored.ids + stored.ids)

    def token_filter(self) -> TokenFilter:
        return TokenFilter(self.tokens)

    def id_filter(self) -> IdFilter:
        return IdFilter(self.ids)

    def admits(self, query: Query, term_tokens: Sequence[Sequence[str]] = ()) -> bool:
        """Whether the page may hold an entry matching ``query`` (whose search terms are given as their
        query tokens, ``Tokenizer.query``): False only when no entry of the page can match. The type is
        not summarised, so it never rules a page out."""
        if query.since_us is not None and self.max_ts < query.since_us:
            return False
        if query.until_us is not None and self.min_ts >= query.until_us:
            return False
        if query.cursor is not None:
            ts, seq = query.cursor
            if not isinstance(seq, int):
                raise ValueError("a cursor of another store")
            # Some row is before (ts, seq): its time is below ts, or equal with a smaller arrival number.
            if not (self.min_ts < ts or (self.min_ts == ts and self.min_seq < seq)):
                return False
        if query.service_name is not None and query.service_name not in self.services:
            return False
        if query.service_patterns and not any(covers(query.service_patterns, s) for s in self.services):
            return False
        if query.levels is not None and not any(self.levels >> level & 1 for level in query.levels):
            return False
        return not term_tokens or self.token_filter().may_match(term_tokens)


_FULL_FILTERS: Final = 0
_PACKED_FILTERS: Final = 1


class _StoredSummary(PageSummary, frozen=True, array_like=True):
    """``PageSummary`` as stored: its fields, then the form of its filters (none before decision 41: full
    size; ``_PACKED_FILTERS``: the token filter zstd-compressed, the id filter folded by ``fold``)."""

    form: int = _FULL_FILTERS


def fold(bits: bytes) -> bytes:
    """A bloom filter of 2**n bits folded into 2**(n-1): bit ``p`` of the half set when ``p`` or
    ``p + 2**(n-1)`` is set in the whole. The half twice over is a filter of 2**n bits that holds every key
    the whole holds (a superset of its bits, so no false negative), with the false positives of a filter
    of 2**(n-1) bits: the 2 KiB id filter is stored in 1 KiB (2.4 % false positives a page instead of
    0.24 %, which only ids that are not UUIDv7 pay: a UUIDv7 is looked for among the pages of its
    range of ids first)."""
    half = len(bits) // 2
    return (int.from_bytes(bits[:half], "little") | int.from_bytes(bits[half:], "little")).to_bytes(
        half, "little"
    )


class PageCodec:
    """Encodes and decodes pages. Pages are encoded with one zstd dictionary for the message text (or
    none); a page names its dictionary, and one this codec does not hold is asked of ``dictionaries``
    (the cold file's, decision 41), so that pages written with any dictionary of the file read.

    One per thread: zstd's compression contexts are not shared between threads.
    """

    def __init__(
        self, dictionary: bytes | None = None, dictionaries: Callable[[int], bytes | None] | None = None
    ) -> None:
        self.dictionary = dictionary
        self._plain = zstandard.ZstdCompressor(level=_LEVEL)
        self._unpack = zstandard.ZstdDecompressor()
        self._dictionary_id = 0
        self._text = zstandard.ZstdCompressor(level=_TEXT_LEVEL)
        self._message_text = self._text
        self._untexts: dict[int, zstandard.ZstdDecompressor] = {0: self._unpack}
        self._dictionaries = dictionaries
        if dictionary is not None:
            trained = zstandard.ZstdCompressionDict(dictionary)
            self._dictionary_id = trained.dict_id()
            self._message_text = zstandard.ZstdCompressor(level=_TEXT_LEVEL, dict_data=trained)
            self._untexts[self._dictionary_id] = zstandard.ZstdDecompressor(dict_data=trained)
        self._tokenizer = Tokenizer()

    @property
    def dictionary_id(self) -> int:
        """The id of the dictionary pages are encoded with (zstd's own), 0 for none."""
        return self._dictionary_id

    def encode(self, rows: Sequence[Row]) -> tuple[bytes, PageSummary]:
        """The page of ``rows`` (1 to PAGE_ENTRIES, any order, kept) and its summary."""
        if not 0 < len(rows) <= PAGE_ENTRIES:
            raise ValueError(f"a page holds 1 to {PAGE_ENTRIES} entries, not {len(rows)}")
        seqs, ids, times, services, levels, types, messages, metadata, received = zip(*rows, strict=True)
        if any(len(log_id) != _ID_BYTES for log_id in ids):
            raise ValueError(f"a log_id has {_ID_BYTES} bytes")
        service_names, service_codes = _dictionary_coded(services)
        type_names, type_codes = _dictionary_coded(types)
        flags = 0
        plain = self._plain.compress
        packed = _packed_ids(b"".join(ids), times)
        if packed is not None:
            flags |= _UUID7
            id_column, milliseconds = plain(packed[0]), plain(_shuffle(packed[1], 8))
        else:
            id_column, milliseconds = plain(_shuffle(b"".join(ids), _ID_BYTES)), b""
        message_lengths, message_text = _marked(messages)
        if message_lengths is None:
            flags |= _MESSAGES_MARKED
        metadata_lengths, metadata_text = _marked(metadata)
        if metadata_lengths is None:
            flags |= _METADATA_MARKED
        columns = [
            plain(_shuffle(array("Q", _deltas(seqs)).tobytes(), 8)),
            id_column,
            plain(_shuffle(array("Q", _deltas(times)).tobytes(), 8)),
            plain(_shuffle(array("Q", _offsets(received, times)).tobytes(), 8)),
            plain(_names(service_names)),
            plain(service_codes),
            plain(bytes(levels)),
            plain(_names(type_names)),
            plain(type_codes),
            plain(_shuffle(message_lengths, 4)) if message_lengths is not None else b"",
            self._message_text.compress(message_text),
            plain(_shuffle(metadata_lengths, 4)) if metadata_lengths is not None else b"",
            self._text.compress(metadata_text),
            milliseconds,
        ]
        head = _HEAD.pack(_MAGIC, len(rows), self._dictionary_id, flags)
        head += array("I", map(len, columns)).tobytes()
        newest: dict[str, int] = {}
        for service, time in zip(services, times, strict=True):
            if newest.setdefault(service, time) < time:
                newest[service] = time
        named = sorted(newest)
        summary = PageSummary(
            count=len(rows),
            min_ts=min(times),
            max_ts=max(times),
            min_seq=min(seqs),
            max_seq=max(seqs),
            services=tuple(named),
            newest=tuple(newest[service] for service in named),
            levels=_level_bits(levels),
            tokens=TokenFilter.of(self._tokenizer.page(messages)).to_bytes(),
            ids=IdFilter.of(ids).to_bytes(),
            low_id=min(ids),
            high_id=max(ids),
        )
        return head + b"".join(columns), summary

    def decode(self, page: bytes) -> list[Row]:
        """The rows of a page, in the order they were encoded."""
        view = self.view(page)
        return view.rows(range(view.count))

    def view(self, page: bytes) -> PageView:
        """The page's columns, each decoded when first asked for."""
        dictionary_id = _FIRST_HEAD.unpack_from(page)[2] if len(page) >= _FIRST_HEAD.size else 0
        return PageView(page, self._unpack, self._untext(dictionary_id), dictionary_id)

    def _untext(self, dictionary_id: int) -> zstandard.ZstdDecompressor:
        """The decompressor of texts written with this dictionary, asked of the file when not held."""
        untext = self._untexts.get(dictionary_id)
        if untext is None:
            found = self._dictionaries(dictionary_id) if self._dictionaries is not None else None
            if found is None:
                raise ValueError(f"the page needs zstd dictionary {dictionary_id}, not {self._dictionary_id}")
            trained = zstandard.ZstdCompressionDict(found)
            if trained.dict_id() != dictionary_id:
                raise ValueError(f"zstd dictionary {dictionary_id} is stored with id {trained.dict_id()}")
            untext = self._untexts[dictionary_id] = zstandard.ZstdDecompressor(dict_data=trained)
        return untext

    def close(self) -> None:
        self._tokenizer.close()


class PageView:
    """A page's columns, each decompressed and decoded on first use: a read decodes only the columns it
    looks at (a search the messages first, a level filter the levels), and builds rows only for the
    entries it keeps."""

    def __init__(
        self,
        page: bytes,
        unpack: zstandard.ZstdDecompressor,
        untext: zstandard.ZstdDecompressor,
        dictionary_id: int,
    ) -> None:
        magic = page[:4]
        if magic == _MAGIC:
            _magic, count, page_dictionary, flags = _HEAD.unpack_from(page)
            columns, start = _COLUMNS, _HEAD.size
            self._with_dictionary: tuple[int, ...] = (_MESSAGE_TEXT,)
        elif magic == _FIRST_MAGIC:
            _magic, count, page_dictionary = _FIRST_HEAD.unpack_from(page)
            flags, columns, start = 0, _FIRST_COLUMNS, _FIRST_HEAD.size
            self._with_dictionary = (_MESSAGE_TEXT, _METADATA_TEXT)
        else:
            raise ValueError("not a logsvc page")
        if flags & ~(_UUID7 | _MESSAGES_MARKED | _METADATA_MARKED):
            raise ValueError(f"a page of unknown flags {flags:#x}")
        if page_dictionary != dictionary_id:
            raise ValueError(f"the page needs zstd dictionary {page_dictionary}, not {dictionary_id}")
        self._flags: int = flags
        self._message_reads = self._metadata_reads = 0
        sizes = array("I")
        sizes.frombytes(page[start : start + 4 * columns])
        start += 4 * columns
        self._spans: list[tuple[int, int]] = []
        for size in sizes:
            self._spans.append((start, start + size))
            start += size
        self._page = memoryview(page)  # the columns sliced without copies
        self._unpack = unpack
        self._untext = untext
        self.count: int = count

    def _raw(self, index: int) -> bytes:
        start, end = self._spans[index]
        unpack = self._untext if index in self._with_dictionary else self._unpack
        return unpack.decompress(self._page[start:end])

    def column_sizes(self) -> list[int]:
        """The stored (compressed) size of each column, in the order of the format (0: left out)."""
        return [end - start for start, end in self._spans]

    # Integer columns are differences modulo 2**64, summed by numpy (``_undeltas``: unsigned 64-bit sums
    # wrap modulo 2**64, so each sum is the value, read signed). A read keeping a few rows of a page (a
    # rare word) takes only their values, without making a Python list of the whole column.

    @functools.cached_property
    def _seq_values(self) -> npt.NDArray[np.int64]:
        return _undeltas(_unshuffled_ints(self._raw(0), self.count))

    @functools.cached_property
    def seqs(self) -> Sequence[int]:
        return cast(list[int], self._seq_values.tolist())

    def seqs_at(self, indexes: Sequence[int]) -> list[int]:
        """The arrival numbers of these rows (each index in range), without decoding the whole column
        when they are few."""
        if "seqs" in self.__dict__ or len(indexes) * _FEW_ROWS > self.count:
            seqs = self.seqs
            return [seqs[i] for i in indexes]
        return _values_at(self._seq_values, indexes)

    @functools.cached_property
    def _id_blob(self) -> bytes:
        if self._flags & _UUID7:
            return _unpacked_ids(self._packed_ids, self.times, self._id_milliseconds)
        blob = _unshuffle(self._raw(1), _ID_BYTES)
        if len(blob) != self.count * _ID_BYTES:
            raise ValueError("a page column does not hold its entry count")
        return blob

    @functools.cached_property
    def _packed_ids(self) -> bytes:
        packed = self._raw(1)
        if len(packed) != _packed_size(self.count):
            raise ValueError("a page column does not hold its entry count")
        return packed

    @functools.cached_property
    def _id_milliseconds(self) -> npt.NDArray[np.uint64]:
        """Each UUIDv7 id's millisecond less its event time's, modulo 2**64."""
        return _unshuffled_ints(self._id_millisecond_planes, self.count)

    @functools.cached_property
    def _id_millisecond_planes(self) -> bytes:
        planes = self._raw(_ID_MILLISECONDS)
        if len(planes) != self.count * 8:
            raise ValueError("a page column does not hold its entry count")
        return planes

    def _id_millisecond(self, index: int) -> int:
        """One UUIDv7 id's millisecond less its event time's (modulo 2**64), read from its own 8 bytes of
        the byte-shuffled column (as ``_offset``), without unshuffling the column."""
        if "_id_milliseconds" in self.__dict__:
            return int(self._id_milliseconds[index])
        if not 0 <= index < self.count:
            raise IndexError(index)
        return int.from_bytes(self._id_millisecond_planes[index :: self.count], "little")

    @functools.cached_property
    def ids(self) -> list[bytes]:
        blob = self._id_blob
        return [blob[i : i + _ID_BYTES] for i in range(0, len(blob), _ID_BYTES)]

    @functools.cached_property
    def _id_planes(self) -> bytes:
        planes = self._raw(1)
        if len(planes) != self.count * _ID_BYTES:
            raise ValueError("a page column does not hold its entry count")
        return planes

    def log_id(self, index: int) -> bytes:
        if "_id_blob" in self.__dict__:
            return self._id_blob[index * _ID_BYTES : (index + 1) * _ID_BYTES]
        if not 0 <= index < self.count:
            raise IndexError(index)
        if self._flags & _UUID7:
            (time,) = self.times_at([index])
            return _unpacked_id(self._packed_ids, self.count, index, time, self._id_millisecond(index))
        # byte-shuffled: the n-th byte of every id together, so an id's bytes are one in every ``count``
        return self._id_planes[index :: self.count]

    @functools.cached_property
    def _time_values(self) -> npt.NDArray[np.int64]:
        return _undeltas(_unshuffled_ints(self._raw(2), self.count))

    @functools.cached_property
    def times(self) -> Sequence[int]:
        return cast(list[int], self._time_values.tolist())

    def times_at(self, indexes: Sequence[int]) -> list[int]:
        """The event times of these rows (each index in range), as ``seqs_at``."""
        if "times" in self.__dict__ or len(indexes) * _FEW_ROWS > self.count:
            times = self.times
            return [times[i] for i in indexes]
        return _values_at(self._time_values, indexes)

    @functools.cached_property
    def _offset_planes(self) -> bytes:
        planes = self._raw(3)
        if len(planes) != self.count * 8:
            raise ValueError("a page column does not hold its entry count")
        return planes

    @functools.cached_property
    def _offsets(self) -> list[int]:
        return cast(list[int], _unshuffled_ints(self._offset_planes, self.count).tolist())

    def _offset(self, index: int) -> int:
        """The arrival time's offset from the event time of one row: its 8 bytes are one in every
        ``count`` of the byte-shuffled column (as a log_id's), read without unshuffling the column."""
        if "_offsets" in self.__dict__:
            return self._offsets[index]
        if not 0 <= index < self.count:
            raise IndexError(index)
        return int.from_bytes(self._offset_planes[index :: self.count], "little")

    @functools.cached_property
    def _service_codes(self) -> tuple[list[str], array[int]]:
        return _unnames(self._raw(4)), _codes(self._raw(5), self.count)

    @functools.cached_property
    def services(self) -> list[str]:
        names, codes = self._service_codes
        return [names[code] for code in codes]

    def service(self, index: int) -> str:
        names, codes = self._service_codes
        return names[codes[index]]

    def services_at(self, indexes: Sequence[int]) -> list[str]:
        names, codes = self._service_codes
        return [names[codes[i]] for i in indexes]

    @functools.cached_property
    def levels(self) -> bytes:
        levels = self._raw(6)
        if len(levels) != self.count:
            raise ValueError("a page column does not hold its entry count")
        return levels

    @functools.cached_property
    def _type_codes(self) -> tuple[list[str], array[int]]:
        return _unnames(self._raw(7)), _codes(self._raw(8), self.count)

    @functools.cached_property
    def types(self) -> list[str]:
        names, codes = self._type_codes
        return [names[code] for code in codes]

    def log_type(self, index: int) -> str:
        names, codes = self._type_codes
        return names[codes[index]]

    def types_at(self, indexes: Sequence[int]) -> list[str]:
        names, codes = self._type_codes
        return [names[codes[i]] for i in indexes]

    @functools.cached_property
    def _message_parts(self) -> list[bytes]:
        """Each message's UTF-8 text, of a page whose message ends are marked."""
        return _split(self._raw(_MESSAGE_TEXT), self.count)

    @functools.cached_property
    def message_text(self) -> bytes:
        """The UTF-8 messages one after the other, message ``i`` ending at ``message_ends[i]`` (and
        starting at the previous end; in a page whose message ends are marked, one byte after it: a NUL
        follows each message but the last, in no message)."""
        return self._raw(_MESSAGE_TEXT)

    @functools.cached_property
    def message_ends(self) -> Sequence[int]:
        if self._flags & _MESSAGES_MARKED:
            # where each NUL is, worked out only if asked: the search's prefilter counts them instead
            return MarkedEnds(self.message_text, self.count)
        # read unsigned: a length is never negative, so with the total checked every end is in the text
        raw = self._raw(_MESSAGE_LENGTHS)
        if len(raw) != 4 * self.count:
            raise ValueError("a page's column misses a text")
        lengths = _planes(raw, 4, self.count).T.ravel().view("<u4")
        ends = cast(list[int], lengths.cumsum(dtype=np.int64).tolist())
        if (ends[-1] if ends else 0) != len(self.message_text):
            raise ValueError("a page's texts do not add up to their lengths")
        return ends

    def message(self, index: int) -> str:
        if self._flags & _MESSAGES_MARKED:
            ends = self.message_ends
            if isinstance(ends, MarkedEnds) and (span := ends.found.get(index)) is not None:
                return self.message_text[span[0] : span[1]].decode()  # a row the search's prefilter kept
            self._message_reads += 1
            if self._message_reads > _ALONE or "_message_parts" in self.__dict__:
                return self._message_parts[index].decode()
            return _nth(self.message_text, index, self.count).decode()
        ends = self.message_ends
        return self.message_text[ends[index - 1] if index else 0 : ends[index]].decode()

    @functools.cached_property
    def _metadata(self) -> tuple[npt.NDArray[np.int32], bytes]:
        """The metadata lengths (-1 for none) and texts."""
        raw = self._raw(_METADATA_LENGTHS)
        if len(raw) != 4 * self.count:
            raise ValueError("a page column does not hold its entry count")
        return _planes(raw, 4, self.count).T.ravel().view("<i4"), self._raw(_METADATA_TEXT)

    @functools.cached_property
    def _metadata_parts(self) -> list[bytes]:
        """Each metadata's UTF-8 text (``_MISSING`` for none), of a page whose metadata ends are marked."""
        return _split(self._raw(_METADATA_TEXT), self.count)

    @functools.cached_property
    def _metadata_starts(self) -> list[int]:
        lengths, text = self._metadata
        if self.count and int(lengths.min()) < _NULL:
            raise ValueError("a page's column has a negative length")
        starts = [0, *cast(list[int], np.maximum(lengths, 0).cumsum(dtype=np.int64).tolist())]
        if starts[-1] != len(text):
            raise ValueError("a page's texts do not add up to their lengths")
        return starts

    def metadata(self, index: int, *, many: bool = False) -> str | None:
        """The metadata of one entry; ``many``: the caller reads many, so every start is summed at once
        (else only this one's, from the lengths before it)."""
        if self._flags & _METADATA_MARKED:
            self._metadata_reads += 1
            if many or self._metadata_reads > _ALONE or "_metadata_parts" in self.__dict__:
                part = self._metadata_parts[index]
            else:
                part = _nth(self._raw(_METADATA_TEXT), index, self.count)
            return None if part == _MISSING else part.decode()
        lengths, text = self._metadata
        length = int(lengths[index])
        if length == _NULL:
            return None
        if many or "_metadata_starts" in self.__dict__:
            start = self._metadata_starts[index]
        else:
            before = lengths[:index]
            # a missing text (-1) takes no byte; ufunc reductions, not numpy's Python-level wrappers
            start = int(np.add.reduce(np.maximum(before, 0), dtype=np.int64))
            if length < 0 or (index and int(np.minimum.reduce(before)) < _NULL) or start + length > len(text):
                raise ValueError("a page's texts do not add up to their lengths")
        return text[start : start + length].decode()

    def rows(self, indexes: Iterable[int]) -> list[Row]:
        """The rows at these places of the page, in the order given."""
        places = list(indexes)
        many = len(places) * _FEW_ROWS > self.count
        seqs, times = self.seqs_at(places), self.times_at(places)
        levels = self.levels
        offsets = self._offsets if many else None
        if self._flags & _UUID7 and "_id_blob" not in self.__dict__ and len(places) * 4 <= self.count:
            # each id rebuilt alone from its row's time (a read keeps 100 rows of 1,024 at most), not all
            packed = self._packed_ids
            ids = [
                _unpacked_id(packed, self.count, i, times[n], self._id_millisecond(i))
                for n, i in enumerate(places)
            ]
        elif many:
            blob = self._id_blob
            ids = [blob[i * _ID_BYTES : (i + 1) * _ID_BYTES] for i in places]
        else:
            ids = [self.log_id(i) for i in places]
        if many and self._flags & _MESSAGES_MARKED:
            self._message_reads = _ALONE  # the whole column at once, not a few texts first
        return [
            (
                seqs[n],
                ids[n],
                times[n],
                self.service(i),
                levels[i],
                self.log_type(i),
                self.message(i),
                self.metadata(i, many=many),
                _signed((times[n] + (offsets[i] if offsets is not None else self._offset(i))) % _MOD),
            )
            for n, i in enumerate(places)
        ]


def train_dictionary(rows: Sequence[Row]) -> bytes:
    """A zstd dictionary for the message text, trained on the messages of these rows (zstandard.ZstdError
    when they are too few or too alike to train one)."""
    samples: list[bytes | bytearray | memoryview[int]] = [row[6].encode() for row in rows]
    return zstandard.train_dictionary(_DICTIONARY_BYTES, samples, level=_LEVEL).as_bytes()


# The 74 random bits of a UUIDv7 (RFC 9562: 48 bits of milliseconds, version 7 in the high nibble of
# byte 6, the variant 0b10 in the top two bits of byte 8), packed without the 6 fixed bits: byte 6's low
# nibble and byte 8's top four random bits in one byte, byte 8's last two bits four to a byte.
_VERSION_NIBBLE: Final = bytes(x >> 4 for x in range(256))
_VARIANT_BITS: Final = bytes(x >> 6 for x in range(256))
_NIBBLE_UP: Final = bytes((x & 0xF) << 4 for x in range(256))
_SIX_DOWN: Final = bytes((x & 0x3F) >> 2 for x in range(256))
_LAST_TWO: Final = bytes(x & 3 for x in range(256))
_TWO_UP: Final = tuple(bytes((x & 3) << 2 * k for x in range(256)) for k in range(4))
_TWO_DOWN: Final = tuple(bytes(x >> 2 * k & 3 for x in range(256)) for k in range(4))
_TO_VERSION: Final = bytes(0x70 | x >> 4 for x in range(256))
_TO_VARIANT: Final = bytes(0x80 | (x & 0xF) << 2 for x in range(256))
_RANDOM_PLANES: Final = (9, 10, 11, 12, 13, 14, 15)
_THOUSANDS: Final = itertools.repeat(1000)


def _packed_size(count: int) -> int:
    return 9 * count + (count + 3) // 4


def _packed_ids(blob: bytes, times: Sequence[int]) -> tuple[bytes, bytes] | None:
    """The random bits of every id (16 bytes each, end to end) and each id's millisecond less its event
    time's (unsigned 64-bit integers, modulo 2**64); None unless every id is a UUIDv7."""
    count = len(times)
    planes = [blob[k::_ID_BYTES] for k in range(_ID_BYTES)]
    if planes[6].translate(_VERSION_NIBBLE).count(7) != count:
        return None
    if planes[8].translate(_VARIANT_BITS).count(2) != count:
        return None
    wide = bytearray(8 * count)  # each millisecond as a big-endian 64-bit integer
    for k in range(6):
        wide[2 + k :: 8] = planes[k]
    milliseconds = array("q")
    milliseconds.frombytes(wide)
    milliseconds.byteswap()
    # each difference fits an int64 (a millisecond is 48 bits, an event time's millisecond 54): stored as
    # its two's complement, the bytes of the difference modulo 2**64
    offsets = array("q", map(operator.sub, milliseconds, map(operator.floordiv, times, _THOUSANDS)))
    high = int.from_bytes(planes[6].translate(_NIBBLE_UP), "little")
    high |= int.from_bytes(planes[8].translate(_SIX_DOWN), "little")
    twos = planes[8].translate(_LAST_TWO) + bytes(-count % 4)
    low = 0
    for k in range(4):
        low |= int.from_bytes(twos[k::4].translate(_TWO_UP[k]), "little")
    packed = b"".join(
        [planes[7], high.to_bytes(count, "little"), *(planes[k] for k in _RANDOM_PLANES)]
    ) + low.to_bytes((count + 3) // 4, "little")
    return packed, offsets.tobytes()


def _unpacked_ids(packed: bytes, times: Sequence[int], offsets: npt.NDArray[np.uint64]) -> bytes:
    """The ids of ``_packed_ids``, end to end."""
    count = len(times)
    high = packed[count : 2 * count]
    twos = bytearray((count + 3) // 4 * 4)
    low = packed[9 * count :]
    for k in range(4):
        twos[k::4] = low.translate(_TWO_DOWN[k])
    variant = int.from_bytes(high.translate(_TO_VARIANT), "little") | int.from_bytes(twos[:count], "little")
    thousands = map(operator.floordiv, times, _THOUSANDS)
    # the stored differences (each an int64, see _packed_ids) add back up to 48-bit milliseconds
    milliseconds = array("q", map(operator.add, thousands, offsets.view(np.int64).tolist()))
    milliseconds.byteswap()
    wide = milliseconds.tobytes()
    blob = bytearray(_ID_BYTES * count)
    for k in range(6):
        blob[k::_ID_BYTES] = wide[2 + k :: 8]
    blob[6::_ID_BYTES] = high.translate(_TO_VERSION)
    blob[7::_ID_BYTES] = packed[:count]
    blob[8::_ID_BYTES] = variant.to_bytes(count, "little")
    for n, k in enumerate(_RANDOM_PLANES):
        blob[k::_ID_BYTES] = packed[(2 + n) * count : (3 + n) * count]
    return bytes(blob)


def _unpacked_id(packed: bytes, count: int, index: int, time: int, offset: int) -> bytes:
    """One id of ``_packed_ids`` (the index in range), without unpacking the others."""
    high = packed[count + index]
    low = packed[9 * count + index // 4] >> 2 * (index % 4) & 3
    millisecond = (time // 1000 + offset) % _MOD
    return (
        millisecond.to_bytes(6, "big")
        + bytes((0x70 | high >> 4, packed[index], 0x80 | (high & 0xF) << 2 | low))
        + packed[2 * count + index : 9 * count : count]
    )


def _marked(values: Sequence[str | None]) -> tuple[bytes | None, bytes]:
    """The texts separated by NUL bytes (``_MISSING`` for None), and no lengths, when no text holds a NUL;
    else the lengths (``_texts``) and the texts end to end."""
    encoded = [value.encode() if value is not None else _MISSING for value in values]
    if any(_END in text for text in encoded):
        return _texts(values)
    return None, _END.join(encoded)


def _nth(text: bytes, index: int, count: int) -> bytes:
    """Text ``index`` of ``count`` separated by NUL bytes, split off from the nearer end: a read of the
    newest rows of a page (its last) splits off a few texts, not all of them."""
    if not 0 <= index < count:
        raise IndexError(index)
    if index < count // 2:
        parts = text.split(_END, index + 1)
        if len(parts) < index + 2 - (index + 1 == count):
            raise ValueError("a page's column misses a text")
        return parts[index]
    parts = text.rsplit(_END, count - index)
    if len(parts) < count - index + (index > 0):
        raise ValueError("a page's column misses a text")
    return parts[index - count]


def _split(text: bytes, count: int) -> list[bytes]:
    parts = text.split(_END)
    if len(parts) != count:
        raise ValueError("a page's column misses a text")
    return parts


def _deltas(values: Sequence[int]) -> list[int]:
    previous = 0
    out = []
    for value in values:
        out.append((value - previous) % _MOD)
        previous = value
    return out


def _undeltas(deltas: npt.NDArray[np.uint64]) -> npt.NDArray[np.int64]:
    """The values of differences taken modulo 2**64: their unsigned 64-bit running sums (which wrap
    modulo 2**64, so each is congruent to the value) read as signed ones, which is the value as every
    value is an int64."""
    return deltas.cumsum(dtype=np.uint64).view(np.int64)


def _values_at(values: npt.NDArray[np.int64], indexes: Sequence[int]) -> list[int]:
    """The values at ``indexes`` (each in range: numpy would read a negative one from the end)."""
    outside = [index for index in indexes if not 0 <= index < len(values)]
    if outside:
        raise IndexError(outside[0])
    return cast(list[int], values[list(indexes)].tolist())


def _offsets(values: Sequence[int], bases: Sequence[int]) -> list[int]:
    return [(value - base) % _MOD for value, base in zip(values, bases, strict=True)]


def _signed(value: int) -> int:
    return value - _MOD if value >= _SIGN else value


def _shuffle(data: bytes, width: int) -> bytes:
    return b"".join(data[i::width] for i in range(width))


def _planes(data: bytes, width: int, count: int) -> npt.NDArray[np.uint8]:
    """A byte-shuffled column as its ``width`` byte planes of ``count`` bytes each."""
    return np.frombuffer(data, np.uint8).reshape(width, count)


def _unshuffle(data: bytes, width: int) -> bytes:
    return _planes(data, width, len(data) // width).T.tobytes()


def _unshuffled_ints(data: bytes, count: int) -> npt.NDArray[np.uint64]:
    if len(data) != 8 * count:
        raise ValueError("a page column does not hold its entry count")
    return _planes(data, 8, count).T.ravel().view("<u8")


def _dictionary_coded(values: Sequence[str]) -> tuple[list[str], bytes]:
    """The distinct values in order of first use, and each value's number (two bytes)."""
    numbers: dict[str, int] = {}
    codes = array("H", [numbers.setdefault(value, len(numbers)) for value in values])
    return list(numbers), codes.tobytes()


def _codes(data: bytes, count: int) -> array[int]:
    codes = array("H")
    codes.frombytes(data)
    if len(codes) != count:
        raise ValueError("a page column does not hold its entry count")
    return codes


def _names(names: list[str]) -> bytes:
    lengths, text = _texts(names)
    return struct.pack("<I", len(names)) + lengths + text


def _unnames(data: bytes) -> list[str]:
    (count,) = struct.unpack_from("<I", data)
    lengths = data[4 : 4 + 4 * count]
    return _present(_untexts(lengths, data[4 + 4 * count :]))


def _texts(values: Sequence[str | None]) -> tuple[bytes, bytes]:
    """The UTF-8 byte lengths (-1 for None) as 32-bit integers, and the texts end to end."""
    encoded = [value.encode() if value is not None else None for value in values]
    lengths = array("i", [len(value) if value is not None else _NULL for value in encoded])
    return lengths.tobytes(), b"".join(value for value in encoded if value is not None)


def _untexts(lengths_data: bytes, text: bytes) -> list[str | None]:
    lengths = array("i")
    lengths.frombytes(lengths_data)
    out: list[str | None] = []
    start = 0
    for length in lengths:
        if length == _NULL:
            out.append(None)
            continue
        out.append(text[start : start + length].decode())
        start += length
    if start != len(text):
        raise ValueError("a page's texts do not add up to their lengths")
    return out


def _present(texts: list[str | None]) -> list[str]:
    """Texts of a column that has no missing value (only metadata may be missing)."""
    present = [text for text in texts if text is not None]
    if len(present) != len(texts):
        raise ValueError("a page's column misses a text")
    return present


def _level_bits(levels: Sequence[int]) -> int:
    bits = 0
    for level in set(levels):
        bits |= 1 << level
    return bits
