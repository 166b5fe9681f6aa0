"""The embedded store's read paths: the SQL of a query, full-text search newest first, rows as a page."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Final, cast

import apsw
import msgspec

from logsvc.domain.cursors import encode_cursor
from logsvc.domain.entries import Level, LogEntry, entry_bytes, format_log_id
from logsvc.domain.queries import MAX_PAGE_BYTES, Page, Query
from logsvc.domain.timestamps import format_timestamp
from logsvc.scopes import sql_glob
from logsvc.storage.sqlite_schema import BLOCK_SHIFT, COLUMNS, Row

__all__ = [
    "NEWEST_FIRST",
    "attribute_filters",
    "entry",
    "match_expression",
    "recent",
    "search",
    "select_newest",
    "service_scope",
]

NEWEST_FIRST = "ORDER BY ts DESC, seq DESC"
_LEVEL_NAMES: Final = {int(level): level.name for level in Level}


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
    """Full-text matches, newest first by event time, without sorting the whole match set.

    Matches are read in descending arrival order (FTS5's rowid order) in growing chunks. Arrival order
    is not event-time order, but ts_watermarks bounds the event time of every row that arrived earlier
    than a given one: once ``want`` candidates are at least that new, no older row can displace them.
    """
    match = match_expression(query.terms)
    where, args = _filters(query, "l.")
    if query.levels:
        where += f" AND l.level IN ({', '.join('?' * len(query.levels))})"
        args += [int(level) for level in query.levels]
    sql = (
        "SELECT l.ts, l.seq FROM logs_fts f CROSS JOIN logs l ON l.seq = f.rowid "
        f"WHERE logs_fts MATCH ? AND f.rowid < ?{where} ORDER BY f.rowid DESC LIMIT ?"
    )
    candidates: list[tuple[int, int]] = []
    below = (1 << 63) - 1
    chunk = want
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
    seqs = [seq for _, seq in candidates]
    sql = f"SELECT {COLUMNS} FROM logs WHERE seq IN ({', '.join('?' * len(seqs))}) {NEWEST_FIRST}"
    return conn.execute(sql, seqs)


def select_newest(query: Query, want: int) -> tuple[str, list[Any]]:
    """The SQL for a read without full-text search: always an index range walked newest first."""
    where, args = _filters(query, "")
    if query.levels is None or len(query.levels) == 1:
        if query.levels:
            where += " AND level = ?"
            args.append(int(query.levels[0]))
        return f"SELECT {COLUMNS} FROM logs WHERE 1{where} {NEWEST_FIRST} LIMIT ?", [*args, want]
    # One index range per level, each already newest first; only their heads are merged and sorted.
    part = f"SELECT * FROM (SELECT {COLUMNS} FROM logs WHERE level = ?{where} {NEWEST_FIRST} LIMIT ?)"
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


def _filters(query: Query, prefix: str) -> tuple[str, list[Any]]:
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
    """Rows newest first (at most ``limit`` + 1) as a page of up to ``limit`` entries and MAX_PAGE_BYTES
    (with one entry at least), read no further than needed; the cursor is set when rows are left."""
    logs: list[LogEntry] = []
    size = 0
    last: Row | None = None
    for row in rows:
        if last is not None and (len(logs) == limit or size > MAX_PAGE_BYTES):
            return Page(count=len(logs), logs=logs, next_cursor=encode_cursor(last[2], last[0]))
        logs.append(entry(row))
        size += entry_bytes(row[6], row[7])
        last = row
    return Page(count=len(logs), logs=logs, next_cursor=None)


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
