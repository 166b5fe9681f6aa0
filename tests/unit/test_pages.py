"""The cold page encoding gives back every field of every row exactly (storage v2, decision 28)."""

from __future__ import annotations

import json
import struct
from array import array
from pathlib import Path

import msgspec
import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from logsvc.domain.entries import Level
from logsvc.domain.queries import Query
from logsvc.scopes import covers
from logsvc.storage.pages import _FEW_ROWS, PAGE_ENTRIES, PageCodec, PageSummary, Row, train_dictionary
from logsvc.storage.token_filter import Tokenizer, rows_that_may_hold

int64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
texts = st.text(max_size=200)  # any unicode outside the surrogates, the empty text too
rows = st.tuples(
    int64,
    st.binary(min_size=16, max_size=16),
    int64,
    st.text(min_size=1, max_size=128),
    st.sampled_from([int(level) for level in Level]),
    st.text(max_size=64),
    texts,
    st.none() | texts,
    int64,
)


def _check(codec: PageCodec, page: list[Row]) -> PageSummary:
    blob, summary = codec.encode(page)
    assert codec.decode(blob) == page
    # stored and read back: the same but for the id filter, folded in two, whose bits are a superset
    stored = PageSummary.from_bytes(summary.to_bytes())
    assert msgspec.structs.replace(stored, ids=summary.ids) == summary
    whole, kept = int.from_bytes(summary.ids, "little"), int.from_bytes(stored.ids, "little")
    assert whole & kept == whole
    assert len(stored.ids) == len(summary.ids)
    assert all(stored.id_filter().may_contain_key(r[1]) for r in page)
    # each column alone, as a read decodes it, and rows picked out of order
    view = codec.view(blob)
    assert list(view.seqs) == [r[0] for r in page]
    assert list(view.times) == [r[2] for r in page]
    assert [view.message(i) for i in range(len(page))] == [r[6] for r in page]
    # the message column as the search's prefilter reads it: message i ends at message_ends[i]
    text, ends = view.message_text, view.message_ends
    marked = view.column_sizes()[9] == 0  # no length column: a NUL after each message but the last
    starts = [0] + [end + marked for end in list(ends)[:-1]]
    assert [text[start:end].decode() for start, end in zip(starts, ends, strict=True)] == [r[6] for r in page]
    assert [view.metadata(i) for i in range(len(page))] == [r[7] for r in page]
    assert view.rows(reversed(range(len(page)))) == page[::-1]
    # a few rows alone, from a view that decoded no whole column (prefix sums of the differences)
    for place in {0, len(page) // 2, len(page) - 1}:
        alone = codec.view(blob)
        assert alone.rows([place]) == [page[place]]
        if len(page) > _FEW_ROWS:
            assert "times" not in alone.__dict__
            assert "seqs" not in alone.__dict__
            assert "_offsets" not in alone.__dict__  # the row's arrival offset read from its own bytes
            assert "_metadata_starts" not in alone.__dict__
    # the log_ids whole and one by one (a UUIDv7's are rebuilt from its event time and packed bits)
    assert codec.view(blob).ids == [r[1] for r in page]
    assert [codec.view(blob).log_id(i) for i in range(len(page))] == [r[1] for r in page]
    picked = [i for i in range(len(page)) if i % 3 == 0][::-1]
    assert codec.view(blob).times_at(picked) == [page[i][2] for i in picked]
    assert codec.view(blob).seqs_at(picked) == [page[i][0] for i in picked]
    with pytest.raises(IndexError):
        codec.view(blob).times_at([len(page)])
    # the summary's id filter holds every id, and each service's newest time is its entries' newest
    assert all(summary.id_filter().may_contain_key(r[1]) for r in page)
    assert dict(zip(summary.services, summary.newest, strict=True)) == {
        service: max(r[2] for r in page if r[3] == service) for service in {r[3] for r in page}
    }
    return summary


@settings(max_examples=300)
@given(page=st.lists(rows, min_size=1, max_size=40))
def test_every_field_of_every_row_reads_back_exactly_in_its_order(page: list[Row]) -> None:
    codec = PageCodec()
    try:
        summary = _check(codec, page)
    finally:
        codec.close()
    assert summary.count == len(page)
    assert (summary.min_ts, summary.max_ts) == (min(r[2] for r in page), max(r[2] for r in page))
    assert (summary.min_seq, summary.max_seq) == (min(r[0] for r in page), max(r[0] for r in page))
    assert set(summary.services) == {r[3] for r in page}
    assert {level for level in Level if summary.levels >> level & 1} == {r[4] for r in page}


@settings(max_examples=60)
@given(
    values=st.lists(st.tuples(int64, int64, int64), min_size=_FEW_ROWS + 1, max_size=300),
    metadata=st.lists(st.none() | texts, min_size=1, max_size=8),
)
def test_a_few_rows_read_alone_equal_the_whole_columns(
    values: list[tuple[int, int, int]], metadata: list[str | None]
) -> None:
    """Pages long enough that a row is read alone (prefix sums, one metadata text): any int64 values,
    so the sums wrap, and missing metadata before the row."""
    page: list[Row] = [
        (seq, i.to_bytes(16, "big"), ts, f"s{i % 3}", 9, "t", f"m{i}", metadata[i % len(metadata)], at)
        for i, (seq, ts, at) in enumerate(values)
    ]
    codec = PageCodec()
    try:
        _check(codec, page)
    finally:
        codec.close()


@given(message=texts)
def test_a_page_finds_the_words_of_its_messages(message: str) -> None:
    codec = PageCodec()
    tokenizer = Tokenizer()
    try:
        _blob, summary = codec.encode([(1, bytes(16), 0, "svc", 9, "application", message, None, 0)])
        assert summary.token_filter().may_match([tokenizer.document(message)])
        stored = PageSummary.from_bytes(summary.to_bytes())  # its filter compressed, then read back
        assert stored.token_filter().may_match([tokenizer.document(message)])
    finally:
        codec.close()
        tokenizer.close()


def _realistic(count: int) -> list[Row]:
    return [
        (
            i + 1,
            i.to_bytes(16, "big"),
            1_764_460_800_000_000 + i * 1000,
            f"svc-{i % 7}",
            int(list(Level)[i % 6]),
            "application",
            f"GET /api/v1/orders/{i * 7919 % 100_000} 200 {i % 400}ms "
            f"from 10.0.{i % 250}.{i % 97} user-{i % 1000}",
            json.dumps({"host": f"ip-10-0-{i % 9}", "took_ms": i % 300}),
            1_764_460_800_000_000 + i * 1000 + 1500,
        )
        for i in range(count)
    ]


def test_a_full_page_with_huge_metadata_and_empty_messages() -> None:
    page = _realistic(PAGE_ENTRIES)
    huge = json.dumps({"blob": "é" * 500_000, "nested": {"k": ["v"] * 1000}})
    page[3] = (*page[3][:6], "", huge, page[3][8])
    page[7] = (*page[7][:6], "x" * 1_000_000, None, page[7][8])
    codec = PageCodec()
    try:
        _check(codec, page)
    finally:
        codec.close()


def test_a_dictionary_page_needs_its_dictionary() -> None:
    page = _realistic(PAGE_ENTRIES)
    with_dictionary = PageCodec(train_dictionary(page))
    without = PageCodec()
    try:
        _check(with_dictionary, page)
        blob, _summary = with_dictionary.encode(page)
        with pytest.raises(ValueError, match="dictionary"):
            without.decode(blob)
    finally:
        with_dictionary.close()
        without.close()


def test_pages_of_no_entries_too_many_or_bad_ids_are_refused() -> None:
    codec = PageCodec()
    row = _realistic(1)[0]
    try:
        with pytest.raises(ValueError, match="1 to 1024"):
            codec.encode([])
        with pytest.raises(ValueError, match="1 to 1024"):
            codec.encode([row] * (PAGE_ENTRIES + 1))
        with pytest.raises(ValueError, match="16 bytes"):
            codec.encode([(row[0], b"short", *row[2:])])
        with pytest.raises(ValueError, match="not a logsvc page"):
            codec.decode(b"XXXX" + codec.encode([row])[0][4:])
    finally:
        codec.close()


def _with_column(page: bytes, index: int, raw: bytes) -> bytes:
    """The page (format LSP2) with one column replaced by ``raw`` (compressed as the codec does, no
    dictionary)."""
    head = 16 + 4 * 14
    sizes = list(struct.unpack_from("<14I", page, 16))
    columns, start = [], head
    for size in sizes:
        columns.append(page[start : start + size])
        start += size
    columns[index] = zstandard.ZstdCompressor(level=3).compress(raw)
    return page[:16] + struct.pack("<14I", *map(len, columns)) + b"".join(columns)


def test_a_page_whose_texts_do_not_add_up_is_refused_whole_and_row_by_row() -> None:
    """A metadata length past the texts (or below -1) is an error, not a wrong text, whether one row is
    read alone (its start from the lengths before it) or every row (every start summed). A metadata
    holding a NUL makes the page keep the lengths of its metadata texts."""
    page = _realistic(PAGE_ENTRIES)
    page[0] = (*page[0][:7], '{"nul":"\u0000 \x00"}', page[0][8])
    codec = PageCodec()
    try:
        blob, _summary = codec.encode(page)
        assert codec.decode(blob) == page
        # the last row's own length wrong, or one of the lengths before a row read alone
        for place, bad in ((PAGE_ENTRIES - 1, 10**6), (PAGE_ENTRIES - 1, -2), (3, -5)):
            lengths = array("i", [len((row[7] or "").encode()) for row in page])
            lengths[place] = bad
            broken = _with_column(blob, 11, _shuffled(lengths.tobytes(), 4))
            with pytest.raises(ValueError, match=r"texts|negative"):
                codec.view(broken).metadata(PAGE_ENTRIES - 1)
            with pytest.raises(ValueError, match=r"texts|negative"):
                codec.decode(broken)
    finally:
        codec.close()


def _shuffled(data: bytes, width: int) -> bytes:
    return b"".join(data[i::width] for i in range(width))


small_rows = st.tuples(
    st.integers(1, 50),
    st.just(bytes(16)),
    st.integers(0, 20),
    st.sampled_from(["api", "auth", "auth-v2", "db"]),
    st.sampled_from([int(level) for level in Level]),
    st.sampled_from(["application", "audit"]),
    st.sampled_from(["db timeout", "Timeout at db", "user logged in", "zeppelin seen", ""]),
    st.none(),
    st.just(0),
)
queries = st.builds(
    Query,
    service_name=st.none() | st.sampled_from(["api", "auth", "web"]),
    levels=st.none() | st.lists(st.sampled_from(list(Level)), min_size=1, unique=True).map(tuple),
    log_type=st.none() | st.sampled_from(["application", "audit"]),
    since_us=st.none() | st.integers(0, 20),
    until_us=st.none() | st.integers(0, 21),
    terms=st.lists(st.sampled_from(["timeout", "db", "zeppelin", "logged in", "absent"]), max_size=2).map(
        tuple
    ),
    cursor=st.none() | st.tuples(st.integers(0, 21), st.integers(0, 51)),
    service_patterns=st.lists(st.sampled_from(["auth*", "a??", "d?", "web*"]), max_size=2).map(tuple),
)


def _matches(row: Row, query: Query, tokenizer: Tokenizer) -> bool:
    """The rule of the hot tier's reads, row by row (the terms by FTS5's tokens, as a phrase each)."""
    seq, _id, ts, service, level, log_type, message, _metadata, _received = row
    tokens = tokenizer.document(message)

    def holds(term: str) -> bool:
        phrase = tokenizer.query(term)
        return any(tokens[i : i + len(phrase)] == phrase for i in range(len(tokens) - len(phrase) + 1))

    return (
        (query.since_us is None or ts >= query.since_us)
        and (query.until_us is None or ts < query.until_us)
        and (query.cursor is None or (ts, seq) < query.cursor)
        and (query.service_name is None or service == query.service_name)
        and covers(query.service_patterns, service)
        and (query.levels is None or level in query.levels)
        and (query.log_type is None or log_type == query.log_type)
        and all(holds(term) for term in query.terms)
    )


@settings(max_examples=400)
@given(page=st.lists(small_rows, min_size=1, max_size=12), query=queries)
def test_a_page_holding_a_matching_entry_is_never_pruned(page: list[Row], query: Query) -> None:
    codec = PageCodec()
    tokenizer = Tokenizer()
    try:
        _blob, summary = codec.encode(page)
        if any(_matches(row, query, tokenizer) for row in page):
            assert summary.admits(query, [tokenizer.query(term) for term in query.terms])
    finally:
        codec.close()
        tokenizer.close()


def test_pages_outside_a_query_are_pruned() -> None:
    codec = PageCodec()
    tokenizer = Tokenizer()
    page = [(5, bytes(16), 100, "api", int(Level.INFO), "application", "user logged in", None, 0)]
    try:
        _blob, summary = codec.encode(page)
        for query in (
            Query(),
            Query(cursor=(100, 6)),
            Query(cursor=(101, 0)),
            Query(since_us=100, until_us=101),
        ):
            assert summary.admits(query), query
        for query in (
            Query(since_us=101),
            Query(until_us=100),
            Query(cursor=(100, 5)),
            Query(service_name="auth"),
            Query(service_patterns=("db*",)),
            Query(levels=(Level.ERROR, Level.FATAL)),
        ):
            assert not summary.admits(query), query
        assert not summary.admits(Query(terms=("zeppelin",)), [tokenizer.query("zeppelin")])
    finally:
        codec.close()
        tokenizer.close()


def _uuid7(millisecond: int, random: int) -> bytes:
    """A UUIDv7 (RFC 9562) of this millisecond and 74 random bits."""
    value = millisecond << 80 | 0x7 << 76 | (random >> 62) << 64 | 0b10 << 62 | random & (1 << 62) - 1
    return value.to_bytes(16, "big")


uuid7_rows = st.builds(
    lambda row, millisecond, random: (row[0], _uuid7(millisecond, random), *row[2:]),
    rows,
    st.integers(0, 2**48 - 1) | st.integers(1_764_460_800_000, 1_764_460_800_100),
    st.integers(0, 2**74 - 1) | st.sampled_from([0, 2**74 - 1]),
)


@settings(max_examples=300, deadline=None)
@given(page=st.lists(uuid7_rows, min_size=1, max_size=40), other=st.none() | rows)
def test_uuid7_ids_are_packed_and_read_back_exactly(page: list[Row], other: Row | None) -> None:
    """UUIDv7 ids whose millisecond is anything against the event time (any int64, also far from it),
    and a page with one id that is not a UUIDv7 among them (kept whole)."""
    if other is not None:
        page = [*page, other]
    codec = PageCodec()
    try:
        _check(codec, page)
    finally:
        codec.close()


def test_packed_ids_take_their_random_bits_and_texts_no_lengths() -> None:
    """On the template-like page, the ids take 74 bits and a byte of milliseconds' offsets at most, and
    the texts' ends are marked (no length columns): NUL-free texts."""
    page = [
        (*row[:1], _uuid7(row[2] // 1000, row[0] * 0x9E3779B97F4A7C15 % 2**74), *row[2:])
        for row in _realistic(PAGE_ENTRIES)
    ]
    codec = PageCodec()
    try:
        _check(codec, page)
        blob = codec.encode(page)[0]
        sizes = codec.view(blob).column_sizes()
        assert sizes[1] < PAGE_ENTRIES * 9.3 + 64
        assert sizes[13] < 64
        assert sizes[9] == sizes[11] == 0
        page[5] = (*page[5][:6], "a NUL \x00 in a message", None, page[5][8])
        sizes = codec.view(codec.encode(page)[0]).column_sizes()
        assert sizes[9] > 0
        assert sizes[11] == 0
        _check(codec, page)
    finally:
        codec.close()


searched_texts = st.builds(
    lambda head, run, word: head + "=" * run + word,
    texts.filter(lambda text: "\x00" not in text),
    st.sampled_from([0, 0, 6_000]),
    st.sampled_from(["", "", " timeout", " TIMEOUT é"]),
)


@settings(max_examples=60, deadline=None)
@given(
    page=st.lists(uuid7_rows, min_size=1, max_size=30),
    messages=st.lists(searched_texts, min_size=1, max_size=30),
    metadata=st.lists(st.none() | searched_texts, min_size=1, max_size=30),
)
def test_the_rows_a_search_keeps_read_back_exactly_from_marked_texts(
    page: list[Row], messages: list[str], metadata: list[str | None]
) -> None:
    """A marked page (NUL-separated messages and metadata, any unicode, empty texts, missing metadata,
    long texts: one row or many) read as a search reads it: the prefilter's rows, then those rows alone
    (their messages from the spans it found, their ids from their own bytes) equal the rows written."""
    page = [
        (*row[:6], messages[i % len(messages)], metadata[i % len(metadata)], row[8])
        for i, row in enumerate(page)
    ]
    codec = PageCodec()
    tokenizer = Tokenizer()
    try:
        blob = codec.encode(page)[0]
        view = codec.view(blob)
        assert view.column_sizes()[9] == view.column_sizes()[11] == 0  # both texts marked
        kept = rows_that_may_hold(view.message_text, view.message_ends, tokenizer.query("timeout"))
        assert kept is not None
        assert kept >= {i for i, row in enumerate(page) if "timeout" in tokenizer.document(row[6])}
        places = sorted(kept, reverse=True)
        assert [view.message(i) for i in places] == [page[i][6] for i in places]
        assert view.rows(places) == [page[i] for i in places]
        assert codec.view(blob).rows(places) == [page[i] for i in places]  # no prefilter: split off
    finally:
        codec.close()
        tokenizer.close()


_LSP1 = Path(__file__).parents[1] / "fixtures" / "tiered_lsp1"


def test_a_page_of_the_first_format_still_reads() -> None:
    """A page and its summary written by the LSP1 encoder (commit 033f68f) read back as they were
    written, by any codec (one with a dictionary too: the page has none)."""
    expected = [
        (seq, bytes.fromhex(log_id), *rest)
        for seq, log_id, *rest in json.loads((_LSP1 / "rows.json").read_text())
    ]
    blob = (_LSP1 / "page.bin").read_bytes()
    assert blob[:4] == b"LSP1"
    summary = PageSummary.from_bytes((_LSP1 / "summary.bin").read_bytes())
    for codec in (PageCodec(), PageCodec(train_dictionary(_realistic(PAGE_ENTRIES)))):
        try:
            assert codec.decode(blob) == expected
            view = codec.view(blob)
            assert view.ids == [row[1] for row in expected]
            assert [view.log_id(i) for i in range(len(expected))] == [row[1] for row in expected]
            assert view.message_text == "".join(row[6] for row in expected).encode()
            assert codec.view(blob).rows([7, 3]) == [expected[7], expected[3]]
        finally:
            codec.close()
    assert summary.count == len(expected)
    assert all(summary.id_filter().may_contain_key(row[1]) for row in expected)
    assert summary.token_filter().may_match([["orders"], ["timeout"]])
