"""The embedded store's rollups (decision 24): its entries counted per minute and per hour, so that a
histogram reads a few thousand counts instead of a million entries.

Per grain, two tables:

- ``counts_<grain>``: entries per (service, slot, level, log_type), service first, so that a read of one
  service, or of the services a scope covers, reads only their ranges;
- ``levels_<grain>``: entries per (slot, level) of every service together, for the histogram of everything
  by level (no service, scope or type filter): one row per level and slot, whatever the number of services.

And ``service_counts``: entries per service (``GET /services``). A slot is ``ts / grain``: event times are
never before 1970, so that is the slot's floor.

The writer adds each transaction's new rows to every rollup in that transaction (``count_new_rows``), so
the counts are exactly as durable as the entries, and encrypted with them; a trigger takes every deleted
entry off again, whatever deletes it (retention, purge), and drops the counts that reach 0.
"""

from __future__ import annotations

from typing import Final

import apsw

__all__ = ["GRAINS", "ROLLUP_SCHEMA", "ROLLUP_TABLES", "count_new_rows"]

# Coarsest first: a histogram reads the coarsest grain that divides its interval.
GRAINS: Final = (("hour", 3_600_000_000), ("minute", 60_000_000))
ROLLUP_TABLES: Final = (
    *(f"{shape}_{grain}" for grain, _ in GRAINS for shape in ("counts", "levels")),
    "service_counts",
)
_COUNTS_KEY = (
    "service = old.service AND slot = old.ts / {us} AND level = old.level AND log_type = old.log_type"
)
_LEVELS_KEY = "slot = old.ts / {us} AND level = old.level"
_UNCOUNT = """
    UPDATE {table} SET n = n - 1 WHERE {key};
    DELETE FROM {table} WHERE {key} AND n = 0;"""


def _tables() -> str:
    ddl = ""
    for grain, _ in GRAINS:
        ddl += f"""
CREATE TABLE IF NOT EXISTS counts_{grain} (
    service TEXT NOT NULL,
    slot INTEGER NOT NULL,
    level INTEGER NOT NULL,
    log_type TEXT NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (service, slot, level, log_type)
) STRICT, WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS levels_{grain} (
    slot INTEGER NOT NULL,
    level INTEGER NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (slot, level)
) STRICT, WITHOUT ROWID;"""
    return ddl


def _trigger() -> str:
    body = ""
    for grain, us in GRAINS:
        body += _UNCOUNT.format(table=f"counts_{grain}", key=_COUNTS_KEY.format(us=us))
        body += _UNCOUNT.format(table=f"levels_{grain}", key=_LEVELS_KEY.format(us=us))
    body += _UNCOUNT.format(table="service_counts", key="service = old.service")
    return f"CREATE TRIGGER IF NOT EXISTS logs_counts_after_delete AFTER DELETE ON logs BEGIN{body}\nEND;"


ROLLUP_SCHEMA: Final = f"""{_tables()}
CREATE TABLE IF NOT EXISTS service_counts (
    service TEXT PRIMARY KEY,
    n INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
{_trigger()}
"""

# The new rows are grouped once, by minute, into a table of the connection's own (in memory), and every
# rollup is added from that. Only what was stored is counted, not the duplicates ON CONFLICT skipped. (Each
# INSERT ... SELECT has a WHERE: it settles SQLite's parsing ambiguity with ON CONFLICT.)
_FRESH = (
    "CREATE TEMP TABLE IF NOT EXISTS fresh_counts "
    "(service TEXT, slot INTEGER, level INTEGER, log_type TEXT, n INTEGER)"
)
_GROUP_NEW_ROWS = (
    "INSERT INTO temp.fresh_counts SELECT service, ts / 60000000, level, log_type, count(*) FROM logs "
    "WHERE seq > ? GROUP BY 1, 2, 3, 4"
)
_PER_MINUTE = 60_000_000


def _add(table: str, columns: str, selected: str, grouped: str) -> str:
    return (
        f"INSERT INTO {table}({columns}, n) SELECT {selected}, sum(n) FROM temp.fresh_counts WHERE true "
        f"GROUP BY {grouped} ON CONFLICT DO UPDATE SET n = n + excluded.n"
    )


_ADD: Final = (
    *(
        statement
        for grain, us in GRAINS
        for statement in (
            _add(
                f"counts_{grain}",
                "service, slot, level, log_type",
                f"service, slot / {us // _PER_MINUTE}, level, log_type",
                "1, 2, 3, 4",
            ),
            _add(f"levels_{grain}", "slot, level", f"slot / {us // _PER_MINUTE}, level", "1, 2"),
        )
    ),
    _add("service_counts", "service", "service", "1"),
)


def count_new_rows(conn: apsw.Connection, last_seq: int) -> None:
    """Add the rows after ``last_seq`` to every rollup, in the caller's transaction."""
    conn.execute(_FRESH)
    conn.execute("DELETE FROM temp.fresh_counts")
    conn.execute(_GROUP_NEW_ROWS, (last_seq,))
    for statement in _ADD:
        conn.execute(statement)
