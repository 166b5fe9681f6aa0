"""The walk of a search over the cold summaries tests each token filter as the filter itself does."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from logsvc.storage.tiers_reads import _token_test
from logsvc.storage.token_filter import TokenFilter

words = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=12)


@given(
    added=st.lists(words, max_size=300),
    terms=st.lists(st.lists(words, max_size=3), max_size=3),
    held=st.integers(0, 3),
)
def test_the_walks_token_test_answers_as_the_filter(
    added: list[str], terms: list[list[str]], held: int
) -> None:
    """Bytes shared by several places, tokens held or not, terms of no token: the walk's test (every
    place's bit, worked out once, tested with a few calls in C) says what ``may_match`` says."""
    terms = [*terms, added[:held]]  # a term whose tokens the filter holds
    page = TokenFilter.of(added)
    assert _token_test(terms)(page.to_bytes()) == page.may_match(terms)


def test_a_search_of_no_token_admits_every_page() -> None:
    assert _token_test([])(TokenFilter().to_bytes())
    assert _token_test([[]])(TokenFilter().to_bytes())
