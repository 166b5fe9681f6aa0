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
/services``). The writer adds each transaction's new rows to every rollup in that transaction
(``count_new_rows``), so the counts are exactly as durable as the entries, and encrypted with them; a
trigger takes every deleted entry off again, whatever deletes it (retention, purge), and drops the counts
that reach 0.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Final, NamedTuple

import apsw

__all__ = [
    "FRESH_COUNTS",
    "ROLLUPS",
    "ROLLUP_SCHEMA",
    "ROLLUP_TABLES",
    "ROLLUP_TABLES_SCHEMA",
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


def uncount_trigger(entries: str) -> str:
    """The trigger that takes every row deleted from the table ``entries`` off the counts."""
    return (
        f"CREATE TRIGGER IF NOT EXISTS {entries}_counts_after_delete AFTER DELETE ON {entries} BEGIN\n"
        + "".join(_uncount(rollup.table, _old_key(rollup)) for rollup in ROLLUPS)
        + _uncount("service_counts", "service = old.service")
        + "END;\n"
    )


ROLLUP_SCHEMA: Final = ROLLUP_TABLES_SCHEMA + uncount_trigger("logs")

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


def count_new_rows(conn: apsw.Connection, last_seq: int, entries: str = "logs") -> None:
    """Add the rows of the table ``entries`` after ``last_seq`` to every rollup, in the caller's
    transaction."""
    conn.execute(FRESH_COUNTS)
    for statement in counting(entries, ":last_seq"):
        conn.execute(statement, {"last_seq": last_seq} if ":last_seq" in statement else None)
