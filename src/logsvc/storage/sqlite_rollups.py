"""The embedded store's rollups (decision 24): its entries counted per time slot, so that a histogram
reads a few thousand counts instead of a million entries.

A rollup keeps some of an entry's columns (its keys) and counts the entries per (keys, slot), a slot being
``ts / grain`` (event times are never before 1970, so that is the slot's floor). A histogram reads the
smallest rollup that keeps every column it groups or filters by, at the coarsest grain that divides its
interval (``rollup_for``):

- ``levels_<grain>``: by level, every service together: the histogram of everything, a few rows a slot
  whatever the number of services; kept at five grains, as it costs little (2 minutes: the finest
  interval a day allows in 1,000 buckets);
- ``services_<grain>``: by service: the histogram by service, of all or of some services;
- ``counts_<grain>``: by service, level and type: everything else (a service or scope by level, a type).
  The widest and dearest to keep, so per minute and per hour only.

Rollups with a service keep it first in their key, so that a read of one service, or of the services a
scope covers, reads only their ranges. ``service_counts`` counts each service's entries (``GET
/services``). The counts are in the store's file, so they are exactly as durable as the entries, and
encrypted with them; a trigger takes every deleted entry off again, whatever deletes it (retention,
purge), and drops the counts that reach 0.

The embedded store adds its new rows to the rollups in bulk, ``FOLD_ROWS`` arrival numbers at a time
(decision 55): adding each commit's few rows to thirteen tables wrote a page of each, a fifth of the
writer's time when requests carry one entry each. ``rollups_counted`` holds the newest arrival number
counted; reads use the views ``<table>_all`` (``Rollup.view``), which add the entries after it, counted
on the spot, so that a histogram always counts every entry stored. The delete trigger takes off only
entries that were counted. The tiered store's hot file counts every append in its own transaction; its
views read the tables alone.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Final, NamedTuple

import apsw

__all__ = [
    "FOLD",
    "FOLD_ROWS",
    "FOLD_TRIGGER",
    "FRESH_COUNTS",
    "ROLLUPS",
    "ROLLUP_SCHEMA",
    "ROLLUP_TABLES",
    "ROLLUP_TABLES_SCHEMA",
    "ROLLUP_VIEWS",
    "Rollup",
    "count_new_rows",
    "counting",
    "rollup_for",
    "uncount_trigger",
]

_MINUTE: Final = 60_000_000
_GRAINS: Final = {
    "1d": 1440 * _MINUTE,
    "1h": 60 * _MINUTE,
    "5m": 5 * _MINUTE,
    "2m": 2 * _MINUTE,
    "1m": _MINUTE,
}
_TYPES: Final = {"service": "TEXT", "level": "INTEGER", "log_type": "TEXT"}


class Rollup(NamedTuple):
    table: str
    keys: tuple[str, ...]  # the entry columns kept, in key order after service (which comes first)
    grain_us: int

    @property
    def key_columns(self) -> tuple[str, ...]:
        """The primary key: the service (when kept), the slot, then the other columns."""
        rest = tuple(key for key in self.keys if key != "service")
        return ("service", "slot", *rest) if "service" in self.keys else ("slot", *rest)

    @property
    def view(self) -> str:
        """What a read counts from: the table and, in the embedded store, the entries not yet added."""
        return f"{self.table}_all"


def _rollups(name: str, keys: tuple[str, ...], grains: tuple[str, ...]) -> tuple[Rollup, ...]:
    return tuple(Rollup(f"{name}_{grain}", keys, _GRAINS[grain]) for grain in grains)


ROLLUPS: Final = (
    *_rollups("levels", ("level",), ("1d", "1h", "5m", "2m", "1m")),
    *_rollups("services", ("service",), ("1d", "1h", "5m", "1m")),
    *_rollups("counts", ("service", "level", "log_type"), ("1h", "1m")),
)
ROLLUP_TABLES: Final = (*(rollup.table for rollup in ROLLUPS), "service_counts")


def rollup_for(step_us: int, columns: Collection[str]) -> Rollup | None:
    """The rollup a histogram of ``step_us`` buckets grouping or filtering by ``columns`` reads: the one
    with the fewest keys that keeps them all, at the coarsest grain dividing the interval; None if none."""
    fitting = [r for r in ROLLUPS if set(columns) <= set(r.keys) and step_us % r.grain_us == 0]
    return min(fitting, key=lambda r: (len(r.keys), -r.grain_us), default=None)


def _table(rollup: Rollup) -> str:
    columns = "".join(f"    {key} {_TYPES.get(key, 'INTEGER')} NOT NULL,\n" for key in rollup.key_columns)
    return (
        f"CREATE TABLE IF NOT EXISTS {rollup.table} (\n{columns}    n INTEGER NOT NULL,\n"
        f"    PRIMARY KEY ({', '.join(rollup.key_columns)})\n) STRICT, WITHOUT ROWID;\n"
    )


def _uncount(table: str, condition: str) -> str:
    return (
        f"    UPDATE {table} SET n = n - 1 WHERE {condition};\n"
        f"    DELETE FROM {table} WHERE {condition} AND n = 0;\n"
    )


def _old_key(rollup: Rollup) -> str:
    old = {"slot": f"old.ts / {rollup.grain_us}"}
    return " AND ".join(f"{key} = {old.get(key, f'old.{key}')}" for key in rollup.key_columns)


# The counts' tables alone: the tiered store's hot file keeps them too, its entries in generation tables.
ROLLUP_TABLES_SCHEMA: Final = (
    "".join(_table(rollup) for rollup in ROLLUPS)
    + "CREATE TABLE IF NOT EXISTS service_counts (service TEXT PRIMARY KEY, n INTEGER NOT NULL) STRICT, "
    "WITHOUT ROWID;\n"
)


def uncount_trigger(entries: str, when: str = "") -> str:
    """The trigger that takes every row deleted from the table ``entries`` off the counts (only those
    ``when``, an SQL condition on ``old``, holds for, if given)."""
    return (
        f"CREATE TRIGGER IF NOT EXISTS {entries}_counts_after_delete AFTER DELETE ON {entries} "
        f"{f'WHEN {when} ' if when else ''}BEGIN\n"
        + "".join(_uncount(rollup.table, _old_key(rollup)) for rollup in ROLLUPS)
        + _uncount("service_counts", "service = old.service")
        + "END;\n"
    )


FOLD_ROWS: Final = 1024
_COUNTED: Final = "(SELECT last_seq FROM rollups_counted)"


def _view(table: str, key_columns: tuple[str, ...], grain_us: int, uncounted: str) -> str:
    """``<table>_all``: the table's counts, and, with ``uncounted`` (the condition on ``logs`` that picks
    the entries not yet added), theirs counted on the spot: a key's counts may then be in two rows."""
    columns = ", ".join(key_columns)
    view = f"CREATE VIEW IF NOT EXISTS {table}_all AS SELECT {columns}, n FROM {table}"
    if uncounted:
        # NOT INDEXED: a read's conditions on the view reach this arm too, and SQLite would then find the
        # rows by an index of a column (every entry of a service or a level, or all of them to group by
        # service) instead of by their arrival numbers, the newest few.
        counted = ", ".join(f"ts / {grain_us}" if column == "slot" else column for column in key_columns)
        positions = ", ".join(str(position) for position in range(1, len(key_columns) + 1))
        view += (
            f" UNION ALL SELECT {counted}, count(*) FROM logs NOT INDEXED WHERE {uncounted} "
            f"GROUP BY {positions}"
        )
    return view + ";\n"


def _views(uncounted: str) -> str:
    return "".join(_view(r.table, r.key_columns, r.grain_us, uncounted) for r in ROLLUPS) + _view(
        "service_counts", ("service",), 0, uncounted
    )


# The hot file's: its tables count every entry.
ROLLUP_VIEWS: Final = _views("")
# The newest arrival number the rollups count (one row, made with the table: every entry stored before
# is counted, by the rollups' triggers or, in a store made before them, by the migration); the writer's
# TEMP trigger (``FOLD_TRIGGER``) adds the entries after it once there are FOLD_ROWS of them.
ROLLUP_SCHEMA: Final = (
    ROLLUP_TABLES_SCHEMA
    + "CREATE TABLE IF NOT EXISTS rollups_counted (last_seq INTEGER NOT NULL) STRICT;\n"
    + "INSERT INTO rollups_counted SELECT coalesce(max(seq), 0) FROM logs "
    + "WHERE NOT EXISTS (SELECT * FROM rollups_counted);\n"
    + _views(f"seq > {_COUNTED}")
    + uncount_trigger("logs", f"old.seq <= {_COUNTED}")
)

# The new rows are grouped once, by minute, into a table of the connection's own (in memory: the writer
# keeps temp_store=MEMORY), and every rollup is added from that. Only what was stored is counted, not the
# duplicates ON CONFLICT skipped. (Each INSERT ... SELECT has a WHERE: it settles SQLite's parsing
# ambiguity with ON CONFLICT.)
FRESH_COUNTS: Final = (
    "CREATE TEMP TABLE IF NOT EXISTS fresh_counts "
    "(service TEXT, slot INTEGER, level INTEGER, log_type TEXT, n INTEGER)"
)
_GROUP_NEW_ROWS = (
    "INSERT INTO fresh_counts SELECT service, ts / 60000000, level, log_type, count(*) FROM {entries} "
    "WHERE seq > {after} GROUP BY 1, 2, 3, 4"
)


def _add(table: str, columns: tuple[str, ...], selected: tuple[str, ...]) -> str:
    grouped = ", ".join(str(position) for position in range(1, len(columns) + 1))
    return (
        f"INSERT INTO {table}({', '.join(columns)}, n) SELECT {', '.join(selected)}, sum(n) "
        f"FROM fresh_counts WHERE true GROUP BY {grouped} ON CONFLICT DO UPDATE SET n = n + excluded.n"
    )


_ADD: Final = (
    *(
        _add(
            rollup.table,
            rollup.key_columns,
            tuple(f"slot / {rollup.grain_us // _MINUTE}" if c == "slot" else c for c in rollup.key_columns),
        )
        for rollup in ROLLUPS
    ),
    _add("service_counts", ("service",), ("service",)),
)


def counting(entries: str, after: str) -> tuple[str, ...]:
    """The statements, in order, that add the rows of the table ``entries`` numbered after ``after`` (a
    parameter, or a trigger's ``new.`` column) to every rollup; ``FRESH_COUNTS`` must have been made."""
    return ("DELETE FROM fresh_counts", _GROUP_NEW_ROWS.format(entries=entries, after=after), *_ADD)


# The writer's own (TEMP) trigger, and the statement of its group's trigger that fires it: once the store
# holds FOLD_ROWS arrival numbers after the newest one counted, ``rollups_counted`` moves to its newest,
# and the entries in between are added to every rollup. FRESH_COUNTS must have been made.
FOLD_TRIGGER: Final = (
    "CREATE TEMP TRIGGER IF NOT EXISTS rollups_fold AFTER UPDATE ON rollups_counted BEGIN\n"
    + "".join(f"    {statement};\n" for statement in counting("logs", "old.last_seq"))
    + "END"
)
_NEWEST = "(SELECT max(seq) FROM logs)"
FOLD: Final = f"UPDATE rollups_counted SET last_seq = {_NEWEST} WHERE {_NEWEST} >= last_seq + {FOLD_ROWS}"


def count_new_rows(conn: apsw.Connection, last_seq: int, entries: str = "logs") -> None:
    """Add the rows of the table ``entries`` after ``last_seq`` to every rollup, in the caller's
    transaction."""
    conn.execute(FRESH_COUNTS)
    for statement in counting(entries, ":last_seq"):
        conn.execute(statement, {"last_seq": last_seq} if ":last_seq" in statement else None)
