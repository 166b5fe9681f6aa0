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
from logsvc.storage.sqlite_schema import BLOCK_SHIFT, COLUMNS, ROLLUPS, Row

__all__ = ["context", "histogram", "services"]

_MINUTE: Final = 60_000_000


def histogram(conn: apsw.Connection, request: tuple[StatsQuery, int]) -> list[tuple[int, int | str, int]]:
    """``(bucket, key, count)`` rows: from the coarsest rollup whose grain divides the interval (the window
    is whole intervals, so whole slots of it), else counted from the entries, at most ``limit`` of them
    (MAX_COUNTED but in tests)."""
    query, limit = request
    if query.filters.levels == ():
        return []
    key = "level" if query.by == "level" else "service"
    if query.filters.terms:
        return _counted_matches(conn, query, key, limit)
    for grain, table in ROLLUPS:
        if query.step_us % grain == 0:
            return _from_rollup(conn, query, key, grain, table)
    return _counted(conn, query, key, limit)


def _rollup_filters(query: Query, prefix: str = "") -> tuple[str, list[Any]]:
    """The read's conditions on the columns the rollups keep: service, scope, type and level."""
    where, args = attribute_filters(query, prefix)
    if query.levels is not None:
        where += f" AND {prefix}level IN ({', '.join('?' * len(query.levels))})"
        args += [int(level) for level in query.levels]
    return where, args


def _from_rollup(
    conn: apsw.Connection, query: StatsQuery, key: str, grain: int, table: str
) -> list[tuple[int, int | str, int]]:
    # Grouped by slot in the key's order, so SQLite sums as it walks (no sort); the slots are then folded
    # into buckets here: at most (slots in the window) x (keys) rows.
    where, args = _rollup_filters(query.filters)
    sql = f"SELECT slot, {key}, sum(n) FROM {table} WHERE slot >= ? AND slot < ?{where} GROUP BY slot, {key}"
    rows = conn.execute(sql, [query.since_us // grain, query.until_us // grain, *args])
    return [(query.bucket_of(slot * grain), name, count) for slot, name, count in rows]


def _counted(
    conn: apsw.Connection, query: StatsQuery, key: str, limit: int
) -> list[tuple[int, int | str, int]]:
    """An interval that is not a whole number of minutes: the entries counted one by one, once the minute
    rollup said that the window's whole minutes hold at most ``limit`` entries of the services read."""
    filters = query.filters
    scope = Query(service_name=filters.service_name, service_patterns=filters.service_patterns)
    where, args = _rollup_filters(scope)
    last_minute = -(-query.until_us // _MINUTE)
    held = cast(
        int,
        conn.execute(
            f"SELECT coalesce(sum(n), 0) FROM counts_minute WHERE slot >= ? AND slot < ?{where}",
            [query.since_us // _MINUTE, last_minute, *args],
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
    where, args = _rollup_filters(filters)
    sql = f"SELECT (ts - ?) / ?, {key}, count(*) FROM logs WHERE ts >= ? AND ts < ?{where} GROUP BY 1, 2"
    step, since = query.step_us, query.since_us
    return cast(
        list[tuple[int, int | str, int]],
        conn.execute(sql, [since, step, since, query.until_us, *args]).fetchall(),
    )


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
        raise ValidationFailed(
            [
                FieldError(
                    "q",
                    f"counting a full-text search examines every match since the window's start, at most "
                    f"{limit:,}; this one has more: use a shorter window or rarer words",
                )
            ]
        )
    where, args = _rollup_filters(query.filters, "l.")
    sql = (
        f"SELECT (l.ts - ?) / ?, l.{key}, count(*) FROM logs_fts f CROSS JOIN logs l ON l.seq = f.rowid "
        f"WHERE logs_fts MATCH ? AND f.rowid >= ? AND l.ts >= ? AND l.ts < ?{where} GROUP BY 1, 2"
    )
    since = query.since_us
    return cast(
        list[tuple[int, int | str, int]],
        conn.execute(sql, [since, query.step_us, match, low_seq, since, query.until_us, *args]).fetchall(),
    )


def services(conn: apsw.Connection, patterns: tuple[str, ...]) -> list[ServiceTotal]:
    """Each service's count from its rollup, and its newest event time from the (service, ts) index."""
    where, args = service_scope("s.", patterns, ())
    sql = (
        "SELECT s.service, s.n, (SELECT max(ts) FROM logs WHERE service = s.service) "
        f"FROM service_counts s WHERE 1{where} ORDER BY s.service"
    )
    return [ServiceTotal(*row) for row in conn.execute(sql, args)]


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
