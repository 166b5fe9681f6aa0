"""Cold pages of storage v2 (decision 28): entries in columns, each compressed on its own with zstd.

A page holds up to ``PAGE_ENTRIES`` rows of the hot tier (``sqlite_schema.Row``: arrival number, log_id,
event time, service, level, type, message, metadata, arrival time) and gives them back exactly, in the
order it was given them. Its ``PageSummary`` (times, arrival numbers, services, levels and a token filter)
is what a read prunes pages by without decompressing them.

Layout of a page: ``b"LSP1"``, the entry count and the id of the zstd dictionary (0 for none) as two
unsigned 32-bit integers, the compressed size of each column (unsigned 32-bit), then the columns.
Integers are kept as differences (from the previous row, or from the event time for the arrival time)
modulo 2**64, byte-shuffled (the n-th byte of every value together) before compression, so that the
high bytes, nearly all equal, compress to almost nothing; a log_id (16 bytes, a UUIDv7 whose first 6 bytes
are its millisecond) is shuffled the same way. Texts are a column of UTF-8 byte lengths and a column of the
texts end to end; the message and metadata texts are compressed with the dictionary when there is one.
"""

from __future__ import annotations

import functools
import struct
from array import array
from collections.abc import Iterable, Sequence
from typing import Final, cast

import msgspec
import numpy as np
import numpy.typing as npt
import zstandard

from logsvc.domain.queries import Query
from logsvc.scopes import covers
from logsvc.storage.sqlite_schema import Row
from logsvc.storage.token_filter import IdFilter, TokenFilter, Tokenizer

__all__ = ["PAGE_ENTRIES", "PageCodec", "PageSummary", "PageView", "Row", "train_dictionary"]

PAGE_ENTRIES: Final = 1024
_MAGIC: Final = b"LSP1"
_HEAD: Final = struct.Struct("<4sII")
_LEVEL: Final = 3
# The message and metadata texts, most of a page, at a higher level (decision 38): 2.8 bytes an entry less
# for 1.7 us more of the compactor's CPU an entry; decoding is as fast at any level.
_TEXT_LEVEL: Final = 9
_ID_BYTES: Final = 16
_NULL: Final = -1  # the length of a missing metadata object
_MOD: Final = 1 << 64
_SIGN: Final = 1 << 63
_COLUMNS: Final = 13
_DICTIONARY_BYTES: Final = 112 * 1024
_MESSAGE_TEXT: Final = 10
_METADATA_TEXT: Final = 12
# A read of fewer rows than one in _FEW_ROWS of a page decodes their integers alone, not whole columns.
_FEW_ROWS: Final = 16


class PageSummary(msgspec.Struct, frozen=True, array_like=True):
    """What a read knows of a page without opening it. ``services`` are sorted, ``newest`` is the event
    time of each one's newest entry in the page; ``levels`` has bit ``1 << level`` set for every level the
    page holds; ``tokens`` is the ``TokenFilter`` of its messages, ``ids`` the ``IdFilter`` of its
    log_ids."""

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

    def to_bytes(self) -> bytes:
        return msgspec.msgpack.encode(self)

    @classmethod
    def from_bytes(cls, data: bytes) -> PageSummary:
        return msgspec.msgpack.decode(data, type=cls)

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


class PageCodec:
    """Encodes and decodes pages, with one zstd dictionary (or none) for the message and metadata texts.

    One per thread: zstd's compression contexts are not shared between threads.
    """

    def __init__(self, dictionary: bytes | None = None) -> None:
        self.dictionary = dictionary
        self._plain = zstandard.ZstdCompressor(level=_LEVEL)
        self._unpack = zstandard.ZstdDecompressor()
        self._dictionary_id = 0
        self._text = zstandard.ZstdCompressor(level=_TEXT_LEVEL)
        self._untext = self._unpack
        if dictionary is not None:
            trained = zstandard.ZstdCompressionDict(dictionary)
            self._dictionary_id = trained.dict_id()
            self._text = zstandard.ZstdCompressor(level=_TEXT_LEVEL, dict_data=trained)
            self._untext = zstandard.ZstdDecompressor(dict_data=trained)
        self._tokenizer = Tokenizer()

    def encode(self, rows: Sequence[Row]) -> tuple[bytes, PageSummary]:
        """The page of ``rows`` (1 to PAGE_ENTRIES, any order, kept) and its summary."""
        if not 0 < len(rows) <= PAGE_ENTRIES:
            raise ValueError(f"a page holds 1 to {PAGE_ENTRIES} entries, not {len(rows)}")
        seqs, ids, times, services, levels, types, messages, metadata, received = zip(*rows, strict=True)
        if any(len(log_id) != _ID_BYTES for log_id in ids):
            raise ValueError(f"a log_id has {_ID_BYTES} bytes")
        service_names, service_codes = _dictionary_coded(services)
        type_names, type_codes = _dictionary_coded(types)
        message_lengths, message_text = _texts(messages)
        metadata_lengths, metadata_text = _texts(metadata)
        plain = self._plain.compress
        columns = [
            plain(_shuffle(array("Q", _deltas(seqs)).tobytes(), 8)),
            plain(_shuffle(b"".join(ids), _ID_BYTES)),
            plain(_shuffle(array("Q", _deltas(times)).tobytes(), 8)),
            plain(_shuffle(array("Q", _offsets(received, times)).tobytes(), 8)),
            plain(_names(service_names)),
            plain(service_codes),
            plain(bytes(levels)),
            plain(_names(type_names)),
            plain(type_codes),
            plain(_shuffle(message_lengths, 4)),
            self._text.compress(message_text),
            plain(_shuffle(metadata_lengths, 4)),
            self._text.compress(metadata_text),
        ]
        head = _HEAD.pack(_MAGIC, len(rows), self._dictionary_id) + array("I", map(len, columns)).tobytes()
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
        )
        return head + b"".join(columns), summary

    def decode(self, page: bytes) -> list[Row]:
        """The rows of a page, in the order they were encoded."""
        view = self.view(page)
        return view.rows(range(view.count))

    def view(self, page: bytes) -> PageView:
        """The page's columns, each decoded when first asked for."""
        return PageView(page, self._unpack, self._untext, self._dictionary_id)

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
        magic, count, page_dictionary = _HEAD.unpack_from(page)
        if magic != _MAGIC:
            raise ValueError("not a logsvc page")
        if page_dictionary != dictionary_id:
            raise ValueError(f"the page needs zstd dictionary {page_dictionary}, not {dictionary_id}")
        sizes = array("I")
        start = _HEAD.size
        sizes.frombytes(page[start : start + 4 * _COLUMNS])
        start += 4 * _COLUMNS
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
        unpack = self._untext if index in (_MESSAGE_TEXT, _METADATA_TEXT) else self._unpack
        return unpack.decompress(self._page[start:end])

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
        blob = _unshuffle(self._raw(1), _ID_BYTES)
        if len(blob) != self.count * _ID_BYTES:
            raise ValueError("a page column does not hold its entry count")
        return blob

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
    def message_text(self) -> bytes:
        """The UTF-8 messages end to end (``message_ends`` says where each ends)."""
        return self._raw(_MESSAGE_TEXT)

    @functools.cached_property
    def message_ends(self) -> Sequence[int]:
        # read unsigned: a length is never negative, so with the total checked every end is in the text
        raw = self._raw(9)
        if len(raw) != 4 * self.count:
            raise ValueError("a page's column misses a text")
        lengths = _planes(raw, 4, self.count).T.ravel().view("<u4")
        ends = cast(list[int], lengths.cumsum(dtype=np.int64).tolist())
        if (ends[-1] if ends else 0) != len(self.message_text):
            raise ValueError("a page's texts do not add up to their lengths")
        return ends

    def message(self, index: int) -> str:
        ends = self.message_ends
        return self.message_text[ends[index - 1] if index else 0 : ends[index]].decode()

    @functools.cached_property
    def _metadata(self) -> tuple[npt.NDArray[np.int32], bytes]:
        """The metadata lengths (-1 for none) and texts."""
        raw = self._raw(11)
        if len(raw) != 4 * self.count:
            raise ValueError("a page column does not hold its entry count")
        return _planes(raw, 4, self.count).T.ravel().view("<i4"), self._raw(_METADATA_TEXT)

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
        return [
            (
                seqs[n],
                self.log_id(i),
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
    """A zstd dictionary for the message and metadata texts, trained on a sample of rows."""
    samples: list[bytes | bytearray | memoryview[int]] = [row[6].encode() for row in rows]
    samples += [row[7].encode() for row in rows if row[7] is not None]
    return zstandard.train_dictionary(_DICTIONARY_BYTES, samples, level=_LEVEL).as_bytes()


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
