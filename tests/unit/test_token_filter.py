"""The token filter of a cold page never says "no" to a page FTS5 would match, and the message prefilter
never leaves out a row FTS5 matches (storage v2, decisions 28 and 34); the id filter holds every id.

The reference is SQLite's FTS5 itself: a table with the hot tier's tokenizer, queried with the hot tier's
own match expression.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import apsw
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from logsvc.storage.sqlite_reads import match_expression
from logsvc.storage.sqlite_schema import FTS_TOKENIZE
from logsvc.storage.token_filter import (
    FILTER_BITS,
    IdFilter,
    MarkedEnds,
    TokenFilter,
    Tokenizer,
    rows_that_may_hold,
)

# Words and separators of several scripts, with case and diacritics that FTS5 folds.
words = st.sampled_from(
    [
        "timeout",
        "TimeOut",
        "zeppelin",
        "héllo",
        "HELLO",
        "straße",
        "İstanbul",
        "ǅemal",
        "数据库",
        "ошибка",
        "42",
    ]
) | st.text(min_size=1, max_size=12)
separators = st.sampled_from([" ", "\n", "-", ", ", "/", "=", "\t", ": ", '"', "\u3000"])


@st.composite
def messages(draw: st.DrawFn) -> str:
    parts = draw(st.lists(st.tuples(words, separators), max_size=12))
    return "".join(word + separator for word, separator in parts)


@pytest.fixture
def tokenizer() -> Iterator[Tokenizer]:
    made = Tokenizer()
    yield made
    made.close()


@pytest.fixture
def fts() -> Iterator[apsw.Connection]:
    conn = apsw.Connection(":memory:")
    conn.execute(f"CREATE VIRTUAL TABLE page USING fts5(message, tokenize='{FTS_TOKENIZE}')")
    yield conn
    conn.close()


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(page=st.lists(messages(), min_size=1, max_size=20), data=st.data())
def test_a_page_that_fts5_matches_is_never_skipped(
    tokenizer: Tokenizer, fts: apsw.Connection, page: list[str], data: st.DataObject
) -> None:
    fts.execute("DELETE FROM page")
    fts.executemany("INSERT INTO page(message) VALUES (?)", [(message,) for message in page])
    # Terms cut out of the page's messages (phrases, parts of words) and arbitrary ones.
    chosen = data.draw(st.sampled_from(page))
    start = data.draw(st.integers(0, len(chosen)))
    end = data.draw(st.integers(start, len(chosen)))
    terms = (chosen[start:end], data.draw(words | messages()))
    assume(not any("\x00" in term for term in terms))  # refused by the query's validation
    filter_ = TokenFilter.of(tokenizer.page(page))
    for searched in ((terms[0],), (terms[1],), terms):
        (matches,) = fts.execute(
            "SELECT count(*) FROM page WHERE page MATCH ?", (match_expression(searched),)
        ).fetchone()
        if matches:
            assert filter_.may_match([tokenizer.query(term) for term in searched]), searched


@given(tokens=st.lists(st.text(min_size=1), max_size=200))
def test_every_added_token_may_be_contained(tokens: list[str]) -> None:
    filter_ = TokenFilter.of(tokens)
    assert all(filter_.may_contain(token) for token in tokens)
    again = TokenFilter(filter_.to_bytes())
    assert all(again.may_contain(token) for token in tokens)


@given(token=st.text(min_size=1))
def test_an_empty_filter_holds_nothing(token: str) -> None:
    assume(token)
    assert not TokenFilter().may_contain(token)


def test_false_positives_stay_near_the_design_rate_at_a_realistic_page() -> None:
    """3,300 distinct tokens, what a page of 1,024 realistic entries holds: about 1.2 % by design. The
    hash is stable, so this is the same figure on every run."""
    filter_ = TokenFilter.of(f"token{i}" for i in range(3_300))
    false = sum(filter_.may_contain(f"absent{i}") for i in range(20_000))
    assert false / 20_000 < 0.025


def test_a_filter_of_the_wrong_size_is_refused() -> None:
    with pytest.raises(ValueError, match=str(FILTER_BITS // 8)):
        TokenFilter(b"\x00" * 10)


@given(page=st.lists(messages() | st.text(), max_size=20))
def test_the_tokens_of_a_page_are_those_of_its_messages(page: list[str]) -> None:
    tokenizer = Tokenizer()
    try:
        assert tokenizer.page(page) == {token for message in page for token in tokenizer.document(message)}
    finally:
        tokenizer.close()


@given(texts=st.lists(messages() | st.text(), max_size=20))
def test_the_tokens_of_many_texts_cut_at_once_are_each_texts_own(texts: list[str]) -> None:
    tokenizer = Tokenizer()
    try:
        assert tokenizer.documents(texts) == [tokenizer.document(text) for text in texts]
    finally:
        tokenizer.close()


def test_the_tokenizer_folds_as_the_full_text_index_does(tokenizer: Tokenizer) -> None:
    assert tokenizer.document("Héllo WORLD, connection-timeout") == [
        "hello",
        "world",
        "connection",
        "timeout",
    ]
    assert tokenizer.query('"TimeOut"') == ["timeout"]


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(page=st.lists(messages() | st.text(), min_size=1, max_size=20), data=st.data())
def test_the_prefilter_never_leaves_out_a_row_that_fts5_matches(
    tokenizer: Tokenizer, fts: apsw.Connection, page: list[str], data: st.DataObject
) -> None:
    fts.execute("DELETE FROM page")
    fts.executemany("INSERT INTO page(rowid, message) VALUES (?, ?)", list(enumerate(page)))
    chosen = data.draw(st.sampled_from(page))
    start = data.draw(st.integers(0, len(chosen)))
    end = data.draw(st.integers(start, len(chosen)))
    terms = (chosen[start:end], data.draw(words | messages()))
    assume(not any("\x00" in term for term in terms))
    encoded = [message.encode() for message in page]
    ends = list(itertools.accumulate(len(message) for message in encoded))
    for searched in ((terms[0],), (terms[1],), terms):
        matched = {
            int(rowid)
            for (rowid,) in fts.execute(
                "SELECT rowid FROM page WHERE page MATCH ?", (match_expression(searched),)
            )
        }
        tokens = [token for term in searched for token in tokenizer.query(term)]
        kept = rows_that_may_hold(b"".join(encoded), ends, tokens)
        assert kept is None or matched <= kept, searched
        if not any(b"\x00" in message for message in encoded):
            # a page's messages separated by NUL bytes (decision 41): the same rows, found by counting
            marked = b"\x00".join(encoded)
            assert rows_that_may_hold(marked, MarkedEnds(marked, len(page)), tokens) == kept, searched


def test_the_prefilter_keeps_few_rows_of_an_ascii_page() -> None:
    page = [b"GET /orders 200", b"database Timeout after 30s", b"", b"timeouts", b"caf\xc3\xa9 timeout"]
    ends = list(itertools.accumulate(map(len, page)))
    assert rows_that_may_hold(b"".join(page), ends, ["timeout"]) == {1, 3, 4}
    assert rows_that_may_hold(b"".join(page), ends, ["zeppelin"]) == {4}  # not ASCII: always kept
    assert rows_that_may_hold(b"".join(page), ends, ["ошибка"]) is None
    marked = b"\x00".join(page)
    ends = MarkedEnds(marked, len(page))
    assert rows_that_may_hold(marked, ends, ["timeout"]) == {1, 3, 4}
    assert rows_that_may_hold(marked, ends, ["zeppelin"]) == {4}
    assert [marked[(ends[i - 1] + 1 if i else 0) : ends[i]] for i in range(len(page))] == page


# Texts of a marked column (no NUL), any unicode, empty ones, and long runs: the NULs before a hit far
# from the previous one are counted by numpy, near ones by ``bytes.count``.
long_texts = st.builds(
    lambda head, run, word, tail: head + "-" * run + word + tail,
    st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=20),
    st.sampled_from([0, 0, 3, 5_000]),
    st.sampled_from(["", "", " timeout ", "TimeOut", "timeouts", "é timeout"]),
    st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=20),
)


@settings(max_examples=150)
@given(page=st.lists(long_texts, min_size=1, max_size=24), token=st.sampled_from(["timeout", "timeo", "-"]))
def test_marked_texts_give_the_rows_and_spans_of_the_lengths(page: list[str], token: str) -> None:
    """NUL-marked texts: the rows the prefilter keeps are those it keeps of the same texts with their
    lengths, each text it kept is where ``found`` says, and every end is where the lengths put it."""
    encoded = [text.encode() for text in page]
    lengths_ends = list(itertools.accumulate(len(text) for text in encoded))
    marked = b"\x00".join(encoded)
    ends = MarkedEnds(marked, len(page))
    kept = rows_that_may_hold(marked, ends, [token])
    assert kept == rows_that_may_hold(b"".join(encoded), lengths_ends, [token])
    assert kept is not None
    assert set(ends.found) >= {row for row in kept if encoded[row].isascii()}
    assert all(marked[start:end] == encoded[row] for row, (start, end) in ends.found.items())
    assert list(ends) == [end + row for row, end in enumerate(lengths_ends)]
    with pytest.raises(ValueError, match="misses a text"):
        MarkedEnds(marked, len(page) + 1)[0]


@given(ids=st.lists(st.binary(min_size=16, max_size=16), max_size=1024))
def test_every_added_id_is_held(ids: list[bytes]) -> None:
    filter_ = IdFilter.of(ids)
    again = IdFilter(filter_.to_bytes())
    assert all(again.may_contain_key(log_id) for log_id in ids)
    assert all(IdFilter.holds(filter_.to_bytes(), IdFilter.places(log_id)) for log_id in ids)


def test_id_false_positives_stay_near_the_design_rate_at_a_full_page() -> None:
    """1,024 ids: about 0.24 % by design (2**14 bits, 4 hashes)."""
    filter_ = IdFilter.of(i.to_bytes(16, "big") for i in range(1_024))
    false = sum(filter_.may_contain_key((i + 10**6).to_bytes(16, "big")) for i in range(20_000))
    assert false / 20_000 < 0.006
    with pytest.raises(ValueError, match="2048"):
        IdFilter(b"\x00" * 10)
