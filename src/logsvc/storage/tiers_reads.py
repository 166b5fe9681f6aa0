"""The reads of the LogStore port over both files of storage v2 (decisions 28 and 34).

Each function takes a ``HotFile`` and a ``ColdFile`` usable from the calling thread and returns exactly
what ``SQLiteStore`` returns for the same entries: the same entries, order and cursors, converted by
``sqlite_reads``' own code.

**Hot first, then cold.** A read takes the hot tier in one snapshot, then the cold tier in another: a
generation compacted in between is in both (its pages are committed before its table is dropped) and is
counted once, by arrival number; read the other way round it could be in neither.

**The cold tier is pruned in memory.** The pages' summaries are held in memory, shared by every
connection of the process (``_index``), and refreshed only when the cold file changed (SQLite's
``data_version``): a read neither lists nor decodes them. Only the pages a summary admits are read, and of
those only the columns the read looks at (``pages.PageView``): a search first finds in the message column
the rows that may hold its words (``token_filter.rows_that_may_hold``) and cuts into tokens only those.
"""

from __future__ import annotations

import bisect
import heapq
import operator
import threading
import weakref
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from typing import Any, Final, NamedTuple, cast

from logsvc.domain.context import Context, fit_context
from logsvc.domain.cursors import Position
from logsvc.domain.entries import LogEntry, entry_bytes
from logsvc.domain.queries import MAX_PAGE_BYTES, Page, Query
from logsvc.domain.stats import ServiceTotal
from logsvc.scopes import covers
from logsvc.storage.pages import PageSummary, PageView
from logsvc.storage.port import Arrival, Arrivals
from logsvc.storage.sqlite_reads import (
    _page,
    entry,
    match_expression,
    own_cursor,
    own_position,
    row_filters,
    service_scope,
)
from logsvc.storage.sqlite_schema import COLUMNS, Row
from logsvc.storage.tiers import ColdFile, HotFile, _newest_first, _select_newest
from logsvc.storage.token_filter import IdFilter, TokenFilter, Tokenizer, rows_that_may_hold

__all__ = ["arrivals", "contains", "context", "get", "newest", "recent", "services", "warm"]

_FOREVER: Final = (1 << 63) - 1


# ---- the port's reads --------------------------------------------------------------------------------


def recent(hot: HotFile, cold: ColdFile, query: Query, tokenizer: Tokenizer) -> Page:
    """``LogStore.recent``: a page of matching entries newest first, and the cursor of the next."""
    own_cursor(query)
    if query.levels == ():
        return Page(count=0, logs=[], next_cursor=None)
    return _page(iter(newest(hot, cold, query, query.limit + 1, tokenizer)), query.limit)


def get(hot: HotFile, cold: ColdFile, log_id: bytes) -> list[LogEntry]:
    """``LogStore.get``: every entry with this id, newest first."""
    return [entry(row) for row in sorted(_with_id(hot, cold, log_id), key=_newest_first)]


def context(
    hot: HotFile, cold: ColdFile, log_id: bytes, service: str, *, before: int, after: int
) -> Context | None:
    """``LogStore.context``: the entry and its service's entries just older and just newer."""
    found = [row for row in _with_id(hot, cold, log_id) if row[3] == service]
    if not found:
        return None
    row = found[0]
    older = newest(hot, cold, Query(service_name=service, cursor=(row[2], row[0])), before)
    newer = _oldest_after(hot, cold, service, (row[2], row[0]), after)
    return fit_context(entry(row), [entry(r) for r in older], [entry(r) for r in newer])


def services(
    hot: HotFile, cold: ColdFile, patterns: tuple[str, ...], *, after: str | None, limit: int | None
) -> list[ServiceTotal]:
    """``LogStore.services``: each service's count from the hot file's ``service_counts`` (which counts the
    entries of both tiers), and its newest event time from both tiers."""
    where, args = service_scope("", patterns, ())
    with hot.reading() as live:
        counted = hot.select(
            f"SELECT service, n FROM service_counts WHERE service > ?{where} ORDER BY service LIMIT ?",
            [after or "", *args, -1 if limit is None else limit],
        )
        newest_ts: dict[str, int] = {}
        for _generation, table, _sealed in live:
            for service, ts in hot.select(f"SELECT service, max(ts) FROM {table} GROUP BY service"):
                if newest_ts.get(service, -_FOREVER - 1) < ts:
                    newest_ts[service] = ts
    wanted = {service for service, _n in counted}
    with cold.snapshot():
        for page in _index(cold).by_max_ts:
            if wanted and all(page.max_ts <= newest_ts.get(s, -_FOREVER - 1) for s in wanted):
                break  # no page from here on holds anything newer of any service asked for
            summary = page.summary
            for service, ts in zip(summary.services, summary.newest, strict=True):
                if service in wanted and newest_ts.get(service, -_FOREVER - 1) < ts:
                    newest_ts[service] = ts
    return [ServiceTotal(service, n, newest_ts.get(service)) for service, n in counted]


def arrivals(
    hot: HotFile,
    cold: ColdFile,
    after: Position | None,
    *,
    limit: int,
    searches: Sequence[tuple[str, ...]] = (),
    tokenizer: Tokenizer,
) -> Arrivals:
    """``LogStore.arrivals``: entries by arrival number (the commit order) after ``after``, up to ``limit``
    and MAX_PAGE_BYTES; ``found`` holds the arrivals each search matches, by the cold pages' rule (FTS5's
    tokens, each term a phrase), the rule every search of both tiers agrees with."""
    own_position(after)
    if after is None:
        return Arrivals(entries=[], position=(_head(hot, cold), ""))
    since = int(after[0])
    rows: dict[int, Row] = {}
    with hot.reading() as live:
        for _generation, table, _sealed in live:
            sql = f"SELECT {COLUMNS} FROM {table} WHERE seq > ? ORDER BY seq LIMIT ?"
            rows.update((row[0], cast(Row, row)) for row in hot.select(sql, (since, limit)))
    with cold.snapshot():
        for page in _index(cold).by_min_seq:
            if page.max_seq <= since:
                continue
            if len(rows) >= limit and page.min_seq > sorted(rows)[limit - 1]:
                break  # this page and every later one hold only later arrivals than the first ``limit``
            view = cold.view(page.page_id)
            if view is None:
                continue
            seqs = view.seqs
            rows.update((row[0], row) for row in view.rows(i for i, s in enumerate(seqs) if s > since))
    found: list[Arrival] = []
    size = 0
    for seq in sorted(rows)[:limit]:
        row = rows[seq]
        found.append(Arrival(position=(seq, ""), ts_us=row[2], level=row[4], entry=entry(row)))
        size += entry_bytes(row[6], row[7])
        if size > MAX_PAGE_BYTES:
            break
    if not found:
        return Arrivals(entries=[], position=after)
    matched: dict[tuple[str, ...], frozenset[Position]] = {}
    if searches:
        tokens = tokenizer.documents([arrival.entry.message for arrival in found])
        for terms in searches:
            phrases = [tokenizer.query(term) for term in terms]
            matched[terms] = frozenset(
                arrival.position
                for arrival, words in zip(found, tokens, strict=True)
                if _holds_all(words, phrases)
            )
    more = len(found) == limit or size > MAX_PAGE_BYTES
    return Arrivals(entries=found, position=(found[-1].position[0], ""), more=more, found=matched)


def contains(hot: HotFile, cold: ColdFile, keys: Sequence[tuple[bytes, str, int]]) -> set[tuple[bytes, str]]:
    """Which ``(log_id, service)`` of new entries the COLD tier already holds: the append's idempotency
    across tiers (the hot tier is checked by ``HotFile`` itself, so ``hot`` is not read).

    The event time given with each key is not used: an entry with neither a timestamp nor a UUIDv7 id is
    dated by its arrival (decision 12), so its retry comes with a later time than the entry stored. The
    pages that may hold an id are found instead through their id filters, bit-sliced in memory
    (``_IdSlices``); of those that also hold the service, only the id and service columns are decoded."""
    del hot  # in the signature so that every read of the two tiers is called alike
    asked: defaultdict[int, list[tuple[bytes, str]]] = defaultdict(list)
    held: set[tuple[bytes, str]] = set()
    with cold.snapshot():
        index = _index(cold)
        slices = _id_slices(cold, index)
        for log_id, service, _ts in keys:
            for page in slices.candidates(log_id):
                if service in page.summary.services:
                    asked[page.page_id].append((log_id, service))
        for page_id, pairs in asked.items():
            view = cold.view(page_id)
            if view is not None:
                stored = set(zip(view.ids, view.services, strict=True))
                held.update(pair for pair in pairs if pair in stored)
    return held


def newest(
    hot: HotFile, cold: ColdFile, query: Query, want: int, tokenizer: Tokenizer | None = None
) -> list[Row]:
    """Up to ``want`` entries of both tiers matching ``query``, newest first by (event time, arrival),
    after its cursor (a ``tokenizer`` is needed for a search). Pages are read newest first, skipped when
    their summary rules every entry out, and not read at all once ``want`` entries are newer than
    anything a page can hold."""
    if want <= 0:
        return []
    if query.terms and tokenizer is None:
        raise ValueError("a search needs a tokenizer")
    terms = [tokenizer.query(term) for term in query.terms] if tokenizer is not None else []
    holds_tokens = _token_test(terms)
    found = {row[0]: row for row in _hot_newest(hot, query, want)}
    best = sorted(found.values(), key=_newest_first)[:want]
    with cold.snapshot():
        for page in _index(cold).by_max_ts:
            if len(best) == want and page.max_ts < best[-1][2]:
                break  # every page from here on holds only older entries
            summary = page.summary
            if not holds_tokens(summary.tokens) or not summary.admits(query):
                continue  # the search's tokens first: they rule most pages out
            view = cold.view(page.page_id)
            if view is None:
                continue  # deleted since the listing (retention): its entries are gone
            kept = _matching(view, query, terms, tokenizer, found, want)
            if len(best) == want:
                worst = best[-1][2], best[-1][0]
                kept = [place for place in kept if place[:2] > worst]
            if kept:
                # only the rows that may rank among the newest ``want`` are built
                newer = heapq.nlargest(want, kept)
                for row in view.rows([i for _ts, _seq, i in newer]):
                    found[row[0]] = row  # never there already: ``_matching`` skips the rows found
                    bisect.insort(best, row, key=_newest_first)
                del best[want:]
    return best


def _token_test(terms: list[list[str]]) -> Callable[[bytes], bool]:
    """Whether a page's token filter (its bytes) may hold every query token: the filter's bits of the
    tokens worked out once, then tested on each summary with a few calls in C (the walk of a rare word
    tests the ~2,000 newest summaries at 10M entries)."""
    bits: dict[int, int] = {}  # byte of the filter: the bits of it that must be set
    for term in terms:
        for token in term:
            for place in TokenFilter.places(token.encode()):
                bits[place >> 3] = bits.get(place >> 3, 0) | 1 << (place & 7)
    if not bits:
        return lambda _tokens: True
    places = list(bits)
    pick = operator.itemgetter(*places, places[0])  # one more, so that it always gives a tuple
    need = int.from_bytes(bytes([*bits.values(), 0]), "little")
    return lambda tokens: int.from_bytes(bytes(pick(tokens)), "little") & need == need


# ---- the hot tier ------------------------------------------------------------------------------------


def _hot_newest(hot: HotFile, query: Query, want: int) -> list[Row]:
    """Up to ``want`` rows of the hot generations matching ``query``, newest first, in one snapshot: the
    newest generation first, and an older one not read once ``want`` rows are newer than its newest."""
    rows: list[Row] = []
    with hot.reading() as live:
        for _generation, table, _sealed in reversed(live):
            if len(rows) == want:
                (top,) = hot.select(f"SELECT max(ts) FROM {table}")[0]
                if top is None or top < rows[-1][2]:
                    continue
            found = (
                _hot_search(hot, table, query, want) if query.terms else _hot_select(hot, table, query, want)
            )
            rows = sorted(rows + found, key=_newest_first)[:want]
    return rows


def _hot_select(hot: HotFile, table: str, query: Query, want: int) -> list[Row]:
    sql, args = _select_newest(table, query, want)
    return [cast(Row, row) for row in hot.select(sql, args)]


def _hot_search(hot: HotFile, table: str, query: Query, want: int) -> list[Row]:
    """A generation's newest full-text matches without sorting them all: the matches in descending arrival
    order (FTS5's rowid order) in growing chunks, until ``want`` of them are at least as new as anything
    that arrived earlier (the generation's watermarks), as today's store walks its index (decision 1)."""
    conditions, values = _row_conditions(query, "l.")
    sql = (
        f"SELECT l.ts, l.seq FROM {table}_fts f CROSS JOIN {table} l ON l.seq = f.rowid "
        f"WHERE {table}_fts MATCH ? AND f.rowid < ?{conditions} ORDER BY f.rowid DESC LIMIT ?"
    )
    match = match_expression(query.terms)
    marks = _watermarks(hot, table)
    candidates: list[tuple[int, int]] = []
    below = _FOREVER
    chunk = want
    while True:
        found = cast(list[tuple[int, int]], hot.select(sql, [match, below, *values, chunk]))
        candidates = sorted(candidates + found, reverse=True)[:want]
        if len(found) < chunk:
            break
        below = found[-1][1]
        # the newest event time of any row that arrived before ``below``
        mark = marks[min(below >> _BLOCK_SHIFT, len(marks) - 1)] if marks else None
        if mark is None or (len(candidates) == want and candidates[-1][0] >= mark):
            break
        if query.since_us is not None and mark < query.since_us:
            break
        chunk = min(chunk * 2, 10_000)
    if not candidates:
        return []
    seqs = [seq for _ts, seq in candidates]
    rows = hot.select(f"SELECT {COLUMNS} FROM {table} WHERE seq IN ({', '.join('?' * len(seqs))})", seqs)
    return [cast(Row, row) for row in rows]


def _row_conditions(query: Query, prefix: str) -> tuple[str, list[Any]]:
    """The conditions of ``_select_newest`` but the search, on a table named by ``prefix``."""
    where, args = row_filters(query, prefix)
    if query.levels is not None:
        where += f" AND {prefix}level IN ({', '.join('?' for _ in query.levels)})"
        args += [int(level) for level in query.levels]
    return where, args


# Per hot generation table: the largest event time of the rows numbered below the end of each block of
# 2**_BLOCK_SHIFT arrival numbers (a running maximum), for the blocks no append adds to any more (numbers
# are never given twice, so a block below the newest number is complete). Kept in memory: the hot file's
# schema is the writer's, and a deletion only lowers a maximum, which leaves the mark an upper bound.
_BLOCK_SHIFT: Final = 8
_MARKS: dict[tuple[str, str], list[int]] = {}


def _watermarks(hot: HotFile, table: str) -> list[int]:
    """The running maxima of ``table`` by block, the last one (the newest, perhaps incomplete) read now."""
    key = (str(hot.path), table)
    with _LOCK:
        done = list(_MARKS.get(key, []))
    start = len(done) << _BLOCK_SHIFT
    fresh = hot.select(
        f"SELECT seq >> {_BLOCK_SHIFT}, max(ts) FROM {table} WHERE seq >= ? GROUP BY 1 ORDER BY 1", (start,)
    )
    marks = list(done)
    running = marks[-1] if marks else None
    for block, top in fresh:
        while len(marks) < block:  # blocks of no row (all deleted, or before the generation's first)
            marks.append(running if running is not None else top)
        running = top if running is None else max(running, top)
        marks.append(running)
    if fresh:
        with _LOCK:
            _MARKS[key] = marks[:-1]  # the newest block may still grow
    return marks


def _with_id(hot: HotFile, cold: ColdFile, log_id: bytes) -> list[Row]:
    """Every row of both tiers with this log_id (any service), once each."""
    rows: dict[int, Row] = {}
    with hot.reading() as live:
        for _generation, table, _sealed in live:
            sql = f"SELECT {COLUMNS} FROM {table} WHERE log_id = ?"
            rows.update((row[0], cast(Row, row)) for row in hot.select(sql, (log_id,)))
    places = IdFilter.places(log_id)
    with cold.snapshot():
        for page in _index(cold).by_max_ts:
            low, high = page.summary.low_id, page.summary.high_id
            if (low and not low <= log_id <= high) or not IdFilter.holds(page.summary.ids, places):
                continue  # the range first: a summary stored since decision 41 has one
            view = cold.view(page.page_id)
            if view is not None:
                kept = [i for i, found in enumerate(view.ids) if found == log_id]
                rows.update((row[0], row) for row in view.rows(kept) if row[0] not in rows)
    return list(rows.values())


def _oldest_after(hot: HotFile, cold: ColdFile, service: str, after: tuple[int, int], want: int) -> list[Row]:
    """Up to ``want`` rows of the service just after ``(ts, seq)``, oldest first (a context's newer side)."""
    if want <= 0:
        return []
    found: dict[int, Row] = {}
    with hot.reading() as live:
        for _generation, table, _sealed in live:
            sql = (
                f"SELECT {COLUMNS} FROM {table} WHERE service = ? AND (ts, seq) > (?, ?) "
                "ORDER BY ts, seq LIMIT ?"
            )
            found.update((row[0], cast(Row, row)) for row in hot.select(sql, (service, *after, want)))
    best = sorted(found.values(), key=_oldest_first)[:want]
    with cold.snapshot():
        for page in _index(cold).by_min_ts:
            if len(best) == want and page.min_ts > best[-1][2]:
                break  # every page from here on holds only newer entries
            if page.max_ts < after[0] or service not in page.summary.services:
                continue
            view = cold.view(page.page_id)
            if view is None:
                continue
            times, seqs, names = view.times, view.seqs, view.services
            kept = [
                i
                for i in range(view.count)
                if names[i] == service and (times[i], seqs[i]) > after and seqs[i] not in found
            ]
            if kept:
                found.update((row[0], row) for row in view.rows(kept))
                best = sorted(found.values(), key=_oldest_first)[:want]
    return best


def _head(hot: HotFile, cold: ColdFile) -> int:
    """The newest arrival number given (a tail starts after it): the newest commit record, or row."""
    with hot.reading() as live:
        tops = [cast(int | None, hot.select("SELECT max(last_seq) FROM commits")[0][0])]
        tops += [cast(int | None, hot.select(f"SELECT max(seq) FROM {table}")[0][0]) for _, table, _ in live]
    with cold.snapshot():
        tops.append(_index(cold).max_seq)
    return max((top for top in tops if top is not None), default=0)


# ---- the cold tier -----------------------------------------------------------------------------------


def _matching(
    view: PageView,
    query: Query,
    terms: list[list[str]],
    tokenizer: Tokenizer | None,
    skip: Collection[int],
    want: int,
) -> list[tuple[int, int, int]]:
    """The event time, arrival number and place in the page of the entries matching ``query`` (its search
    terms given as their query tokens) that are not in ``skip``, at least the newest ``want`` of them:
    the rule of ``_select_newest`` on the page's columns, each decoded only when a filter asks for it,
    the search's prefilter first (it keeps fewest)."""
    kept: Iterable[int] = range(view.count)
    if terms:
        maybe = rows_that_may_hold(view.message_text, view.message_ends, [t for term in terms for t in term])
        if maybe is not None:
            kept = sorted(maybe)
            if not kept:
                return []
    if isinstance(kept, range):  # every row: the whole columns
        times, seqs = view.times, view.seqs
    else:
        kept = list(kept)
        times, seqs = view.times_at(kept), view.seqs_at(kept)
    since = query.since_us if query.since_us is not None else -_FOREVER - 1
    until = query.until_us if query.until_us is not None else _FOREVER + 1
    cursor = query.cursor or (_FOREVER + 1, 0)
    places = [
        (ts, seq, i)
        for i, ts, seq in zip(kept, times, seqs, strict=True)
        if since <= ts < until and (ts, seq) < cursor and seq not in skip
    ]
    if places and (query.service_name is not None or query.service_patterns):
        names = view.services_at([i for _ts, _seq, i in places])
        admitted = {
            name: (query.service_name is None or name == query.service_name)
            and covers(query.service_patterns, name)
            for name in set(names)
        }
        places = [place for place, name in zip(places, names, strict=True) if admitted[name]]
    if places and query.levels is not None:
        levels, allowed = view.levels, {int(level) for level in query.levels}
        places = [place for place in places if levels[place[2]] in allowed]
    if places and query.log_type is not None:
        types = view.types_at([i for _ts, _seq, i in places])
        places = [place for place, name in zip(places, types, strict=True) if name == query.log_type]
    if places and terms and tokenizer is not None:
        places = _holding(view, sorted(places, reverse=True), terms, tokenizer, want)
    return places


def _holding(
    view: PageView,
    places: list[tuple[int, int, int]],
    terms: list[list[str]],
    tokenizer: Tokenizer,
    want: int,
) -> list[tuple[int, int, int]]:
    """Of ``places`` (newest first), the newest ``want`` whose message holds every term: cut into tokens
    newest first, in chunks, not beyond the ``want``-th match (a common word: the rows the prefilter keeps
    are hundreds, the newest of them are enough)."""
    found: list[tuple[int, int, int]] = []
    start = 0
    while start < len(places) and len(found) < want:
        chunk = places[start : start + max(2 * (want - len(found)), _TOKENIZED_AT_LEAST)]
        tokens = tokenizer.documents([view.message(i) for _ts, _seq, i in chunk])
        found += [place for place, words in zip(chunk, tokens, strict=True) if _holds_all(words, terms)]
        start += len(chunk)
    return found[:want]


_TOKENIZED_AT_LEAST: Final = 16


class _Page(NamedTuple):
    page_id: int
    min_ts: int
    max_ts: int
    min_seq: int
    max_seq: int
    size: int  # of the body: with the id, what tells a page from its rewritten self
    summary: PageSummary


class _Index:
    """A cold file's pages as of one version of it, in the orders the reads walk them."""

    def __init__(self, pages: list[_Page]) -> None:
        self.by_max_ts = sorted(pages, key=lambda page: (-page.max_ts, -page.max_seq))
        self.by_min_ts = sorted(pages, key=lambda page: (page.min_ts, page.min_seq))
        self.by_min_seq = sorted(pages, key=lambda page: page.min_seq)
        self.max_seq = max((page.max_seq for page in pages), default=None)
        self.pages = pages


# Summaries by cold file and page listing (id, event time and arrival ranges, body size), shared by the
# connections of the process (one copy of each, 6 KiB a page); the index of each ColdFile object by the
# version of the file it was made at. A page rewritten (retention) has another body size, and a page id
# given again (the newest page purged) other arrival numbers, never given twice: neither is taken for the
# page it replaced.
_SUMMARIES: dict[str, dict[tuple[int, int, int, int, int, int], PageSummary]] = {}
_INDEXES: weakref.WeakKeyDictionary[ColdFile, tuple[tuple[int, int], _Index]] = weakref.WeakKeyDictionary()
_FETCHING: dict[str, threading.Lock] = {}
_LOCK = threading.Lock()


def warm(cold: ColdFile) -> None:
    """Load the cold file's page summaries into memory (the store does it at open, on a read thread): else
    the first read of a process fetches them all (about 6 KiB a page: 0.3-1.5 s at 10M entries, loaded)."""
    with cold.snapshot():
        _index(cold)


def _index(cold: ColdFile) -> _Index:
    """The pages of the cold file as its open read transaction sees them (call within ``snapshot``)."""
    version = cold.version()
    with _LOCK:  # a weak dictionary shared by the read threads
        made = _INDEXES.get(cold)
    if made is not None and made[0] == version:
        return made[1]
    keys = cold.listing()
    path = str(cold.path)
    with _LOCK:
        fetching = _FETCHING.setdefault(path, threading.Lock())
    # One thread fetches the summaries not held yet; the others (the first reads after a start, or the
    # warm-up and a read) wait for it and find them held, instead of fetching them all again.
    with fetching:
        with _LOCK:
            known = _SUMMARIES.setdefault(path, {})
            have = {key: known[key] for key in keys if key in known}
        fetched = cold.summaries_of([key[0] for key in keys if key not in have])
        for key in keys:
            if key not in have:
                have[key] = fetched[key[0]]
        with _LOCK:
            known.clear()  # pages gone from the file leave the cache
            known.update(have)
    index = _Index([_Page(*key, have[key]) for key in keys])
    with _LOCK:
        _INDEXES[cold] = (version, index)
    return index


class _IdSlices:
    """The id filters of a cold file's pages, bit-sliced: for each bit place, the set of pages (by their
    ordinal here, one bit each) whose filter has it set. The pages that may hold an id are the AND of its
    four places' slices: a few operations on integers of one bit per page, whatever the number of pages,
    where testing every page's filter would cost a loop over the pages for every id of every append.
    Kept up to date with the index: new pages are added, pages gone are forgotten (their bits stay, their
    ordinal leads nowhere). One bit per page for each of the 2**14 places: 20 MB at 10,000 pages; made on
    the first append after a start.

    Each page's smallest and largest log_id are kept too (from its summary; read once from its id column
    for a page stored before decision 41), and a page is a candidate only if the id falls between them:
    the filters are stored folded since then (2.4 % false positives a page). A filter's false positives
    alone (0.24 % a page, before the fold) made every id of an append open about 2.4 pages at 1,000 pages
    and 24 at 10,000, whatever the id: ingest slowed as the store grew. UUIDv7 ids (the server's, the
    SDK's, the shippers' derived ones) begin with their millisecond and a page holds about a millisecond
    of entries, so its range is narrow; random ids are still found, through the filters alone."""

    def __init__(self) -> None:
        self.index: _Index | None = None
        self._pages: list[_Page | None] = []
        self._ranges: list[tuple[bytes, bytes]] = []
        self._ordinals: dict[tuple[int, int], int] = {}
        self._slices = [bytearray() for _ in range(1 << IdFilter.place_bits)]
        # Every page's ids lie within these (kept as wide as every page ever added: a page gone only
        # makes them wider than needed). A new UUIDv7 (the server's, the SDK's) is newer than every
        # compacted entry, so most appended ids are answered here without hashing (decision 38).
        self._lowest: bytes | None = None
        self._highest = b""

    def update(self, index: _Index, ids_of: Callable[[int], list[bytes]]) -> None:
        """Add the pages of ``index`` not known yet; ``ids_of`` reads a page's log_ids (empty: gone)."""
        live = {(page.page_id, page.size): page for page in index.pages}
        for key in [key for key in self._ordinals if key not in live]:
            self._pages[self._ordinals.pop(key)] = None
        slices = self._slices
        for key, page in live.items():
            if key in self._ordinals:
                continue
            # a summary stored since decision 41 has the range; an older page's ids are read for it
            low, high = page.summary.low_id, page.summary.high_id
            ids = [low, high] if low else ids_of(page.page_id)
            ordinal = len(self._pages)
            self._ordinals[key] = ordinal
            self._pages.append(page if ids else None)
            self._ranges.append((min(ids), max(ids)) if ids else (b"", b""))
            if ids:
                self._lowest = min(self._ranges[-1][0], self._lowest or self._ranges[-1][0])
                self._highest = max(self._ranges[-1][1], self._highest)
            if ordinal >> 3 >= len(slices[0]):
                grow = bytes(max(len(slices[0]), 64))
                for piece in slices:
                    piece.extend(grow)
            at, mask = ordinal >> 3, 1 << (ordinal & 7)
            for byte_at, byte in enumerate(page.summary.ids):
                for bit in _BITS[byte]:
                    slices[byte_at << 3 | bit][at] |= mask
        self.index = index

    def candidates(self, log_id: bytes) -> Iterator[_Page]:
        """The live pages whose id filter may hold ``log_id``."""
        if self._lowest is None or not self._lowest <= log_id <= self._highest:
            return
        places = IdFilter.places(log_id)
        common = int.from_bytes(self._slices[places[0]], "little")
        for place in places[1:]:
            common &= int.from_bytes(self._slices[place], "little")
        while common:
            lowest = common & -common
            ordinal = lowest.bit_length() - 1
            page = self._pages[ordinal]
            low, high = self._ranges[ordinal]
            if page is not None and low <= log_id <= high:
                yield page
            common ^= lowest


_BITS: Final = [tuple(bit for bit in range(8) if byte >> bit & 1) for byte in range(256)]
_SLICES: weakref.WeakKeyDictionary[ColdFile, _IdSlices] = weakref.WeakKeyDictionary()


def _id_slices(cold: ColdFile, index: _Index) -> _IdSlices:
    """The bit-sliced id filters of the cold file's pages in ``index`` (kept per ColdFile object: only the
    writer, which appends, asks for them)."""
    with _LOCK:
        slices = _SLICES.get(cold)
        if slices is None:
            slices = _SLICES[cold] = _IdSlices()
    if slices.index is not index:
        slices.update(index, lambda page_id: view.ids if (view := cold.view(page_id)) is not None else [])
    return slices


# ---- the search rule of a decoded message ------------------------------------------------------------


def _oldest_first(row: Row) -> tuple[int, int]:
    return row[2], row[0]


def _holds_all(tokens: list[str], terms: list[list[str]]) -> bool:
    """The search rule of ``_select_newest`` for a message's tokens: every term, each a phrase."""
    return all(_holds(tokens, phrase) for phrase in terms)


def _holds(tokens: list[str], phrase: list[str]) -> bool:
    """Whether the phrase's tokens occur one after the other; a phrase of no token matches nothing, as
    in FTS5."""
    width = len(phrase)
    return width > 0 and any(tokens[i : i + width] == phrase for i in range(len(tokens) - width + 1))
