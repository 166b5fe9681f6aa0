"""The embedded store's overview reads: histograms from the rollups (or counted, within a bound), the
services and their counts, and an entry in its context (decision 24)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Final, cast

import apsw

from logsvc.domain.context import Context, fit_context
from logsvc.domain.entries import LogEntry, entry_bytes
from logsvc.domain.queries import MAX_PAGE_BYTES, Query
from logsvc.domain.stats import ServiceTotal, StatsQuery
from logsvc.errors import FieldError, ValidationFailed
from logsvc.storage.sqlite_reads import attribute_filters, entry, match_expression, service_scope
from logsvc.storage.sqlite_rollups import rollup_for
from logsvc.storage.sqlite_schema import BLOCK_SHIFT, COLUMNS, Row

__all__ = [
    "KEYS",
    "check_countable_minutes",
    "context",
    "histogram",
    "rollup_histogram",
    "services",
    "too_many_matches",
]

_MINUTE: Final = 60_000_000
KEYS: Final = {"level": "level", "service_name": "service"}


def histogram(conn: apsw.Connection, request: tuple[StatsQuery, int]) -> list[tuple[int, int | str, int]]:
    """``(bucket, key, count)`` rows: from the rollup that answers the query (``rollup_for``; the window is
    whole intervals, so whole slots of its grain), else counted from the entries, at most ``limit`` of them
    (MAX_COUNTED but in tests)."""
    query, limit = request
    if query.filters.levels == ():
        return []
    key = KEYS[query.by]
    if query.filters.terms:
        return _counted_matches(conn, query, key, limit)
    counted = rollup_histogram(conn, query)
    return _counted(conn, query, key, limit) if counted is None else counted


def rollup_histogram(conn: apsw.Connection, query: StatsQuery) -> list[tuple[int, int | str, int]] | None:
    """The histogram of a query without search terms from the rollup that answers it; None when none
    does (an interval that is not whole minutes)."""
    key = KEYS[query.by]
    rollup = rollup_for(query.step_us, {key} | _filtered_columns(query.filters))
    if rollup is None:
        return None
    where, args = _rollup_filters(query.filters)
    # Summed per bucket and key by SQLite: a slot lies in one bucket, (slot - first slot) / slots per bucket
    # (StatsQuery.bucket_of, in slots).
    sql = (
        f"SELECT (slot - ?) / ?, {key}, sum(n) FROM {rollup.view} WHERE {where} AND slot >= ? AND slot < ? "
        "GROUP BY 1, 2"
    )
    us = rollup.grain_us
    first, last = query.since_us // us, query.until_us // us
    rows = conn.execute(sql, [first, query.step_us // us, *args, first, last])
    return cast(list[tuple[int, int | str, int]], rows.fetchall())


def _filtered_columns(filters: Query) -> set[str]:
    """The columns a read filters on (but time and text)."""
    columns = set()
    if filters.service_name is not None or filters.service_patterns:
        columns.add("service")
    if filters.levels is not None:
        columns.add("level")
    if filters.log_type is not None:
        columns.add("log_type")
    return columns


def _rollup_filters(filters: Query) -> tuple[str, list[Any]]:
    """The conditions on a rollup that keeps the filtered columns (no time bounds): the service named or
    those the scope covers (each one's range of the key), the levels, the type."""
    where, args = "1", []
    if filters.service_name is not None:
        where, args = "service = ?", [filters.service_name]
    elif filters.service_patterns:
        scope, args = service_scope("", filters.service_patterns, ())
        where = f"service IN (SELECT service FROM service_counts_all WHERE 1{scope})"
    levels, level_args = _levels(filters)
    where += levels
    args += level_args
    if filters.log_type is not None:
        where += " AND log_type = ?"
        args.append(filters.log_type)
    return where, args


def _levels(query: Query, prefix: str = "") -> tuple[str, list[Any]]:
    if query.levels is None:
        return "", []
    marks = ", ".join("?" * len(query.levels))
    return f" AND {prefix}level IN ({marks})", [int(level) for level in query.levels]


def _counted(
    conn: apsw.Connection, query: StatsQuery, key: str, limit: int
) -> list[tuple[int, int | str, int]]:
    """An interval that is not a whole number of minutes: the entries counted one by one, once the minute
    rollup said that the window's whole minutes hold at most ``limit`` entries of the services read."""
    check_countable_minutes(conn, query, limit)
    where, args = _entry_filters(query.filters)
    sql = f"SELECT (ts - ?) / ?, {key}, count(*) FROM logs WHERE ts >= ? AND ts < ?{where} GROUP BY 1, 2"
    step, since = query.step_us, query.since_us
    return cast(
        list[tuple[int, int | str, int]],
        conn.execute(sql, [since, step, since, query.until_us, *args]).fetchall(),
    )


def check_countable_minutes(conn: apsw.Connection, query: StatsQuery, limit: int) -> None:
    """ValidationFailed (naming ``interval``) unless the minute rollup says that the window's whole minutes
    hold at most ``limit`` entries of the services read: the bound of counting them one by one."""
    filters = query.filters
    scope = Query(service_name=filters.service_name, service_patterns=filters.service_patterns)
    minutes = rollup_for(_MINUTE, _filtered_columns(scope))
    assert minutes is not None  # a minute rollup keeps the service
    table = minutes.view
    where, args = _rollup_filters(scope)
    last_minute = -(-query.until_us // _MINUTE)
    held = cast(
        int,
        conn.execute(
            f"SELECT coalesce(sum(n), 0) FROM {table} WHERE {where} AND slot >= ? AND slot < ?",
            [*args, query.since_us // _MINUTE, last_minute],
        ).get,
    )
    if held > limit:
        raise ValidationFailed(
            [
                FieldError(
                    "interval",
                    f"an interval that is not a whole number of minutes counts the entries one by one, at "
                    f"most {limit:,}; this window holds {held:,}: use whole minutes (60s, 5m, 1h) or "
                    "a shorter window",
                )
            ]
        )


def _entry_filters(query: Query, prefix: str = "") -> tuple[str, list[Any]]:
    """A read's conditions on the entries but for the time: service, scope, type and level."""
    where, args = attribute_filters(query, prefix)
    levels, level_args = _levels(query, prefix)
    return where + levels, args + level_args


def _counted_matches(
    conn: apsw.Connection, query: StatsQuery, key: str, limit: int
) -> list[tuple[int, int | str, int]]:
    """Full-text ``q``: the matches counted one by one. The rollups know nothing of words; the full-text
    index gives matches in arrival order, and the watermarks (see ``sqlite_reads.search``) tell from which
    arrival on an entry can be in the window. Refused when more than ``limit`` matches arrived since."""
    first_block = conn.execute(
        "SELECT min(block) FROM ts_watermarks WHERE max_ts >= ?", (query.since_us,)
    ).get
    if first_block is None:
        return []  # every entry is older than the window
    low_seq = cast(int, first_block) << BLOCK_SHIFT
    match = match_expression(query.filters.terms)
    examined = cast(
        int,
        conn.execute(
            "SELECT count(*) FROM (SELECT rowid FROM logs_fts WHERE logs_fts MATCH ? AND rowid >= ? LIMIT ?)",
            (match, low_seq, limit + 1),
        ).get,
    )
    if examined > limit:
        raise too_many_matches(limit)
    where, args = _entry_filters(query.filters, "l.")
    sql = (
        f"SELECT (l.ts - ?) / ?, l.{key}, count(*) FROM logs_fts f CROSS JOIN logs l ON l.seq = f.rowid "
        f"WHERE logs_fts MATCH ? AND f.rowid >= ? AND l.ts >= ? AND l.ts < ?{where} GROUP BY 1, 2"
    )
    since = query.since_us
    return cast(
        list[tuple[int, int | str, int]],
        conn.execute(sql, [since, query.step_us, match, low_seq, since, query.until_us, *args]).fetchall(),
    )


def too_many_matches(limit: int) -> ValidationFailed:
    """The refusal of a full-text histogram whose matches are more than ``limit``, counted one by one."""
    return ValidationFailed(
        [
            FieldError(
                "q",
                f"counting a full-text search examines every match since the window's start, at most "
                f"{limit:,}; this one has more: use a shorter window or rarer words",
            )
        ]
    )


def services(
    conn: apsw.Connection, request: tuple[tuple[str, ...], str | None, int | None]
) -> list[ServiceTotal]:
    """Each service's count from its rollup, and its newest event time from the (service, ts) index: a range
    of the rollup's primary key from ``after``, ``limit`` long (-1: no limit)."""
    patterns, after, limit = request
    where, args = service_scope("s.", patterns, ())
    sql = (
        "SELECT s.service, sum(s.n), (SELECT max(ts) FROM logs WHERE service = s.service) "
        f"FROM service_counts_all s WHERE s.service > ?{where} GROUP BY s.service ORDER BY s.service LIMIT ?"
    )
    bounds = (after or "", *args, -1 if limit is None else limit)
    return [ServiceTotal(*row) for row in conn.execute(sql, bounds)]


def context(conn: apsw.Connection, request: tuple[bytes, str, int, int]) -> Context | None:
    log_id, service, before, after = request
    # fetchall: a statement left unfinished would hold its read transaction, and later reads its snapshot.
    found = conn.execute(
        f"SELECT {COLUMNS} FROM logs WHERE log_id = ? AND service = ?", (log_id, service)
    ).fetchall()
    if not found:
        return None
    row = cast(Row, found[0])
    ts, seq = row[2], row[0]
    older = conn.execute(
        f"SELECT {COLUMNS} FROM logs WHERE service = ? AND (ts, seq) < (?, ?) ORDER BY ts DESC, seq DESC "
        "LIMIT ?",
        (service, ts, seq, before),
    )
    newer = conn.execute(
        f"SELECT {COLUMNS} FROM logs WHERE service = ? AND (ts, seq) > (?, ?) ORDER BY ts, seq LIMIT ?",
        (service, ts, seq, after),
    )
    return fit_context(entry(row), _nearest(older), _nearest(newer))


def _nearest(rows: apsw.Cursor) -> list[LogEntry]:
    """Rows nearest first, read until they pass MAX_PAGE_BYTES: ``fit_context`` takes none beyond."""
    taken: list[LogEntry] = []
    size = 0
    try:
        for row in cast(Iterator[Row], rows):
            taken.append(entry(row))
            size += entry_bytes(row[6], row[7])
            if size > MAX_PAGE_BYTES:
                break
    finally:
        rows.close()
    return taken
