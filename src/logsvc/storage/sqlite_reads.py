"""The embedded store's read paths: the SQL of a query, full-text search newest first, rows as a page, and
a page as JSON from the entries' kept encodings."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, Final, cast

import apsw
import msgspec

from logsvc.domain.cursors import Position, encode_cursor
from logsvc.domain.entries import Level, LogEntry, entry_bytes, format_log_id
from logsvc.domain.queries import MAX_PAGE_BYTES, Page, Query, encoded_page
from logsvc.domain.timestamps import format_timestamp
from logsvc.errors import FieldError, ValidationFailed
from logsvc.scopes import sql_glob
from logsvc.storage.encoded import Encoded, EncodedEntries
from logsvc.storage.port import Arrival, Arrivals
from logsvc.storage.sqlite_schema import BLOCK_SHIFT, COLUMNS, Row

__all__ = [
    "NEWEST_FIRST",
    "arrivals",
    "attribute_filters",
    "entry",
    "match_expression",
    "own_cursor",
    "own_position",
    "recent",
    "recent_json",
    "row_filters",
    "search",
    "select_newest",
    "service_scope",
]

NEWEST_FIRST = "ORDER BY ts DESC, seq DESC"
_FIRST_CHUNK: Final = 256
_LEVEL_NAMES: Final = {int(level): level.name for level in Level}
_ENCODER: Final = msgspec.json.Encoder()


def recent(conn: apsw.Connection, query: Query) -> Page:
    want = query.limit + 1
    if query.levels == ():
        return Page(count=0, logs=[], next_cursor=None)
    if query.terms:
        rows = search(conn, query, want)
    else:
        sql, args = select_newest(query, want)
        rows = conn.execute(sql, args)
    try:
        return _page(cast(Iterator[Row], rows), query.limit)
    finally:
        rows.close()  # a page cut short by size leaves rows unread


def search(conn: apsw.Connection, query: Query, want: int) -> apsw.Cursor:
    """Full-text matches (``searched``), newest first, as rows."""
    return _by_number(conn, [seq for _, seq in searched(conn, query, want)])


def searched(conn: apsw.Connection, query: Query, want: int) -> list[tuple[int, int]]:
    """The ``(ts, seq)`` of the newest ``want`` full-text matches, newest first, without sorting the whole
    match set.

    Matches are read in descending arrival order (FTS5's rowid order) in growing chunks. Arrival order
    is not event-time order, but ts_watermarks bounds the event time of every row that arrived earlier
    than a given one: once ``want`` candidates are at least that new, no older row can displace them.
    """
    match = match_expression(query.terms)
    where, args = row_filters(query, "l.")
    if query.levels:
        where += f" AND l.level IN ({', '.join('?' * len(query.levels))})"
        args += [int(level) for level in query.levels]
    sql = (
        "SELECT l.ts, l.seq FROM logs_fts f CROSS JOIN logs l ON l.seq = f.rowid "
        f"WHERE logs_fts MATCH ? AND f.rowid < ?{where} ORDER BY f.rowid DESC LIMIT ?"
    )
    candidates: list[tuple[int, int]] = []
    below = (1 << 63) - 1
    # A full-text query costs about as much to start as reading 300 matches, and the first chunk rarely
    # ends the walk (its last match must lie below a watermark block): a larger first chunk saves queries.
    chunk = max(2 * want, _FIRST_CHUNK)
    while True:
        found = cast(list[tuple[int, int]], conn.execute(sql, [match, below, *args, chunk]).fetchall())
        candidates = sorted(candidates + found, reverse=True)[:want]
        if len(found) < chunk:
            break
        below = found[-1][1]
        watermark = conn.execute(
            "SELECT max_ts FROM ts_watermarks WHERE block <= ? ORDER BY block DESC LIMIT 1",
            (below >> BLOCK_SHIFT,),
        ).fetchone()
        if watermark is None:
            break
        watermark_ts = cast(int, watermark[0])
        if len(candidates) == want and candidates[-1][0] >= watermark_ts:
            break
        if query.since_us is not None and watermark_ts < query.since_us:
            break
        chunk = min(chunk * 2, 10_000)
    return candidates


_HEAD = (
    "SELECT max((SELECT coalesce(max(seq), 0) FROM logs), (SELECT coalesce(max(last_seq), 0) FROM commits))"
)


def arrivals(
    conn: apsw.Connection, after: Position | None, limit: int, searches: tuple[tuple[str, ...], ...]
) -> Arrivals:
    """Rows by arrival number (the commit order: one writer at a time numbers them) after ``after``, up to
    ``limit`` and MAX_PAGE_BYTES, and each search as the full-text index matches the same rows."""
    with conn:  # one snapshot for every query
        found = _arrivals(conn, after, limit, searches)
    return found  # noqa: RET504 (returned inside, mypy takes apsw's __exit__ for one that may swallow)


def _arrivals(
    conn: apsw.Connection, after: Position | None, limit: int, searches: tuple[tuple[str, ...], ...]
) -> Arrivals:
    if after is None:
        return Arrivals(entries=[], position=(cast(int, conn.execute(_HEAD).get), ""))
    rows = conn.execute(f"SELECT {COLUMNS} FROM logs WHERE seq > ? ORDER BY seq LIMIT ?", (after[0], limit))
    found: list[Arrival] = []
    size = 0
    for row in cast(Iterator[Row], rows):
        found.append(Arrival(position=(row[0], ""), ts_us=row[2], level=row[4], entry=entry(row)))
        size += entry_bytes(row[6], row[7])
        if size > MAX_PAGE_BYTES:
            break
    rows.close()
    if not found:
        return Arrivals(entries=[], position=after)
    last = found[-1].position[0]
    matched = {
        terms: frozenset(
            (seq, "")
            for (seq,) in conn.execute(
                "SELECT rowid FROM logs_fts WHERE logs_fts MATCH ? AND rowid > ? AND rowid <= ?",
                (match_expression(terms), after[0], last),
            )
        )
        for terms in searches
    }
    more = len(found) == limit or size > MAX_PAGE_BYTES
    return Arrivals(entries=found, position=(last, ""), more=more, found=matched)


def select_newest(query: Query, want: int, columns: str = COLUMNS) -> tuple[str, list[Any]]:
    """The SQL for a read without full-text search: always an index range walked newest first."""
    where, args = row_filters(query, "")
    if query.levels is None or len(query.levels) == 1:
        if query.levels:
            where += " AND level = ?"
            args.append(int(query.levels[0]))
        return f"SELECT {columns} FROM logs WHERE 1{where} {NEWEST_FIRST} LIMIT ?", [*args, want]
    # One index range per level, each already newest first; only their heads are merged and sorted.
    part = f"SELECT * FROM (SELECT {columns} FROM logs WHERE level = ?{where} {NEWEST_FIRST} LIMIT ?)"
    union_args: list[Any] = []
    for level in query.levels:
        union_args += [int(level), *args, want]
    sql = " UNION ALL ".join([part] * len(query.levels)) + f" {NEWEST_FIRST} LIMIT ?"
    return sql, [*union_args, want]


def service_scope(prefix: str, include: tuple[str, ...], exclude: tuple[str, ...]) -> tuple[str, list[Any]]:
    where = ""
    if include:
        where += " AND (" + " OR ".join(f"{prefix}service GLOB ?" for _ in include) + ")"
    if exclude:
        where += " AND NOT (" + " OR ".join(f"{prefix}service GLOB ?" for _ in exclude) + ")"
    return where, [sql_glob(pattern) for pattern in (*include, *exclude)]


def match_expression(terms: tuple[str, ...]) -> str:
    """An FTS5 query for entries holding every term: each a quoted phrase, so nothing in it is syntax."""
    return " ".join('"' + term.replace('"', '""') + '"' for term in terms)


def attribute_filters(query: Query, prefix: str) -> tuple[str, list[Any]]:
    """The conditions (each starting with AND) on service, scope and type, and their arguments: the same
    columns in the entries and in their rollups."""
    where = ""
    args: list[Any] = []
    if query.service_name is not None:
        where += f" AND {prefix}service = ?"
        args.append(query.service_name)
    if query.service_patterns:
        scope, scope_args = service_scope(prefix, query.service_patterns, ())
        where += scope
        args += scope_args
    if query.log_type is not None:
        where += f" AND {prefix}log_type = ?"
        args.append(query.log_type)
    return where, args


def row_filters(query: Query, prefix: str) -> tuple[str, list[Any]]:
    """The WHERE conditions (each starting with AND) shared by every read path, and their arguments."""
    where, args = attribute_filters(query, prefix)
    if query.since_us is not None:
        where += f" AND {prefix}ts >= ?"
        args.append(query.since_us)
    if query.until_us is not None:
        where += f" AND {prefix}ts < ?"
        args.append(query.until_us)
    if query.cursor is not None:
        where += f" AND ({prefix}ts, {prefix}seq) < (?, ?)"
        args += list(query.cursor)
    return where, args


def _page(rows: Iterator[Row], limit: int) -> Page:
    """Rows newest first (at most ``limit`` + 1) as a page (``_fill``)."""
    read: list[Row] = []

    def sizes() -> Iterator[int]:
        for row in rows:
            read.append(row)
            yield entry_bytes(row[6], row[7])

    count, more = _fill(sizes(), limit)
    next_cursor = encode_cursor(read[count - 1][2], read[count - 1][0]) if more else None
    return Page(count=count, logs=[entry(row) for row in read[:count]], next_cursor=next_cursor)


def _fill(sizes: Iterable[int], limit: int) -> tuple[int, bool]:
    """How many entries (newest first, of these sizes as ``entry_bytes`` counts them) a page holds: up to
    ``limit``, and none after the one that took it past MAX_PAGE_BYTES (one at least), read no further
    than needed; and whether any were left, so that the page gets a cursor."""
    count = 0
    total = 0
    for size in sizes:
        if count and (count == limit or total > MAX_PAGE_BYTES):
            return count, True
        count += 1
        total += size
    return count, False


# With this many entries of a page not kept or fewer (a page read again after new entries came), they are
# read by their numbers. With more, a read of one index range reads the page's rows as ``recent`` does, in
# order, taking no more of a large page than it holds; the others (several levels, a search) sort their
# rows in any case, so they read only those missing, by their numbers.
_FEW_MISSING: Final = 16


def recent_json(conn: apsw.Connection, query: Query, kept: EncodedEntries) -> bytes:
    """The JSON of ``recent``'s page, byte for byte.

    A first page (no cursor) is the one read again and again (a dashboard, the viewer's first screen): it
    is made from the page's positions and the kept JSON of its entries, and only the entries not kept are
    built and encoded (then kept). A later page is read once as a rule (a client paging back through
    history): it is made as ``recent`` makes it, and keeping its entries would only cost time.
    """
    if query.cursor is not None or query.levels == ():
        return _ENCODER.encode(recent(conn, query))
    with conn:  # the positions and the entries from one snapshot
        answer = _recent_json(conn, query, kept)
    return answer  # noqa: RET504 (returned inside, mypy takes apsw's __exit__ for one that may swallow)


def _recent_json(conn: apsw.Connection, query: Query, kept: EncodedEntries) -> bytes:
    want = query.limit + 1
    if query.terms:
        positions = searched(conn, query, want)
    else:
        sql, args = select_newest(query, want, "ts, seq")
        positions = cast(list[tuple[int, int]], conn.execute(sql, args).fetchall())
    find = kept.find
    found = [find(seq) for _, seq in positions]
    try:
        hits = cast(list[Encoded], found[: found.index(None)])
    except ValueError:
        hits = cast(list[Encoded], found)
    count, more = _fill([size for _, size in hits], query.limit)
    if more or len(hits) == len(found):  # the page ends before the first entry not kept
        json = [encoded for encoded, _ in hits[:count]]
    else:
        json, count, more = _read_missing(conn, query, positions, found, kept)
    next_cursor = encode_cursor(*positions[count - 1]) if more else None
    return encoded_page(json, next_cursor)


def _read_missing(
    conn: apsw.Connection,
    query: Query,
    positions: list[tuple[int, int]],
    found: list[Encoded | None],
    kept: EncodedEntries,
) -> tuple[list[bytes], int, bool]:
    """The page's JSON, its length and whether entries were left, reading the entries not kept."""
    missing = [seq for (_, seq), hit in zip(positions, found, strict=True) if hit is None]
    one_range = not query.terms and (query.levels is None or len(query.levels) == 1)
    every = one_range and len(missing) > _FEW_MISSING
    rows = conn.execute(*select_newest(query, query.limit + 1)) if every else _by_number(conn, missing)
    json: list[bytes] = []
    made: list[tuple[int, Encoded]] = []

    def sizes(next_row: Callable[[], Row]) -> Iterator[int]:
        for hit in found:
            row = next_row() if every else None  # every row of the page, in its order
            encoded = hit
            if encoded is None:
                row = row or next_row()  # the missing rows, in the page's order
                encoded = (_ENCODER.encode(entry(row)), entry_bytes(row[6], row[7]))
                made.append((row[0], encoded))
            json.append(encoded[0])
            yield encoded[1]

    try:
        count, more = _fill(sizes(rows.__next__), query.limit)
    finally:
        rows.close()  # a page cut short by size leaves rows unread
    kept.keep(made)
    return json[:count], count, more


def _by_number(conn: apsw.Connection, seqs: list[int]) -> apsw.Cursor:
    """The rows of these arrival numbers, newest first."""
    return conn.execute(
        f"SELECT {COLUMNS} FROM logs WHERE seq IN ({', '.join('?' * len(seqs))}) {NEWEST_FIRST}", seqs
    )


def entry(row: Row) -> LogEntry:
    _seq, log_id, ts, service, level, log_type, message, metadata, received = row
    return LogEntry(
        log_id=format_log_id(log_id),
        service_name=service,
        timestamp=format_timestamp(ts),
        level=_LEVEL_NAMES[level],
        log_type=log_type,
        message=message,
        metadata=msgspec.Raw(metadata) if metadata is not None else None,
        received_at=format_timestamp(received),
    )


def own_cursor(query: Query) -> Query:
    """The query, unless its cursor was made by another kind of store (ValidationFailed naming it)."""
    if query.cursor is not None and not isinstance(query.cursor[1], int):
        raise ValidationFailed([FieldError("cursor", "belongs to another store")])
    return query


def own_position(after: Position | None) -> None:
    """ValidationFailed unless ``after`` is a position of an embedded store (a number, no shard)."""
    if after is not None and after[1]:
        raise ValidationFailed([FieldError("cursor", "belongs to another store")])
