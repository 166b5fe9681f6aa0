"""Reads over both files of storage v2 (decision 28, 34): the newest-first read of ``GET /logs``.

The hot tier is read in SQL (``HotFile``), the cold one page by page, pruned by the pages' summaries.
"""

from __future__ import annotations

from logsvc.domain.queries import Query
from logsvc.scopes import covers
from logsvc.storage.sqlite_schema import Row
from logsvc.storage.tiers import ColdFile, HotFile, _newest_first
from logsvc.storage.token_filter import Tokenizer

__all__ = ["newest"]


def newest(hot: HotFile, cold: ColdFile, query: Query, want: int, tokenizer: Tokenizer) -> list[Row]:
    """Up to ``want`` entries of both tiers matching ``query``, newest first by (event time, arrival),
    after its cursor: the read of ``GET /logs`` over the two files.

    The hot tier is read first, then the cold one: a generation compacted in between is in both reads
    (its cold pages were committed before its hot table was dropped) and is counted once, by arrival
    number; read the other way round it could be in neither. Pages are read newest first, skipped when
    their summary rules every entry out, and not read at all once ``want`` entries are newer than
    anything a page can hold.
    """
    found = {row[0]: row for row in hot.newest(query, want)}
    best = sorted(found.values(), key=_newest_first)[:want]
    terms = [tokenizer.query(term) for term in query.terms]
    with cold.snapshot():
        for page_id, max_ts, summary in cold.newest_pages():
            if len(best) == want and max_ts < best[-1][2]:
                break  # every page from here on holds only older entries
            if not summary.admits(query, terms):
                continue
            rows = [row for row in cold.page(page_id) if row[0] not in found and _admits(row, query)]
            if terms:
                tokens = tokenizer.documents([row[6] for row in rows])
                rows = [row for row, words in zip(rows, tokens, strict=True) if _holds_all(words, terms)]
            found.update((row[0], row) for row in rows)
            best = sorted(found.values(), key=_newest_first)[:want]
    return best


def _admits(row: Row, query: Query) -> bool:
    """The rule of ``_select_newest`` but the search terms, for a decoded row."""
    seq, _log_id, ts, service, level, log_type, _message, _metadata, _received = row
    return (
        (query.since_us is None or ts >= query.since_us)
        and (query.until_us is None or ts < query.until_us)
        and (query.cursor is None or (ts, seq) < query.cursor)
        and (query.service_name is None or service == query.service_name)
        and covers(query.service_patterns, service)
        and (query.levels is None or level in query.levels)
        and (query.log_type is None or log_type == query.log_type)
    )


def _holds_all(tokens: list[str], terms: list[list[str]]) -> bool:
    """The search rule of ``_select_newest`` for a message's tokens: every term, each a phrase."""
    return all(_holds(tokens, phrase) for phrase in terms)


def _holds(tokens: list[str], phrase: list[str]) -> bool:
    """Whether the phrase's tokens occur one after the other; a phrase of no token matches nothing, as
    in FTS5."""
    width = len(phrase)
    return width > 0 and any(tokens[i : i + width] == phrase for i in range(len(tokens) - width + 1))
