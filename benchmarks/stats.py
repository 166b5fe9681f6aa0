"""Volume over time (issue 13): the latency of ``GET /logs/stats`` on the 1,000,000-entry store, and what
keeping the rollups costs ingest.

- Latency: a 24-hour histogram on two stores of the profile's size, each served (encrypted) by one
  worker: the read store of the other read scenarios (entries 10 ms apart, about 2.8 hours: the window
  holds them all) and the same number of entries spread over the 24 hours (86.4 ms apart), where the
  histogram reads a rollup row for every minute of the day and every (service, level) of that minute.
- Ingest cost: in this process, as ceiling B measures SQLite, durable transactions of 1,000 and 4,000
  entries with the store's own statements (insert, full-text feed) with and without the rollups, into
  encrypted stores, taking turns so that the machine's noise falls on both alike.
- The migration of an existing store: opening the read store as schema 3 (the rollups dropped) counts
  its entries once; how long that takes.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import shutil
import statistics
import time
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

import apsw

from benchmarks import ceilings, dataset
from benchmarks.processes import admin_credential
from logsvc.crypto.sqlite import connect
from logsvc.domain.timestamps import DAY_US, format_timestamp
from logsvc.storage.sqlite import SQLiteStore
from logsvc.storage.sqlite_rollups import ROLLUP_TABLES, count_new_rows
from logsvc.storage.sqlite_schema import INDEX_NEW_ROWS, INSERT_ENTRY

if TYPE_CHECKING:
    from benchmarks.run import Suite

# One viewer at a time (a request's own latency), and 16 at once (as the other read scenarios).
STATS_CONNECTIONS = (1, 16)
STATS_P99_MS = 50  # the target for a 24-hour histogram by level
# The viewer's chart (about 100 buckets: 15m), the finest a day allows (1m, widened to 2m: 720 buckets),
# whole hours (the hour rollup), and by service.
CASES = (
    ("level", "by level, 15m", "by=level"),
    ("level_2m", "by level, 1m (widened to 2m)", "by=level&interval=1m"),
    ("level_1h", "by level, 1h", "by=level&interval=1h"),
    ("service", "by service, 15m", "by=service_name"),
)


def measure(suite: Suite) -> None:
    """The stats scenarios, the rollups' ingest cost and the backfill time, into the suite's results."""
    from benchmarks.run import console

    entries = suite.profile.store_entries
    for name, spacing in (("read_store", dataset.SPACING_US), ("spread_24h", DAY_US // entries)):
        cached, info = dataset.cached_store(entries, suite.scratch, spacing)
        made = "cached" if info["cached"] else f"built in {info['build_seconds']} s"
        console.print(f"  {name}: {entries:,} entries {spacing / 1000:g} ms apart ({made})")
        _latency(suite, name, cached)
    suite.volume["rollup_ingest_cost"] = _ingest_cost(suite)
    cached, _ = dataset.cached_store(entries, suite.scratch)
    suite.volume["backfill"] = _backfill(cached, suite.scratch / "backfill")
    console.print(
        f"  backfill of {entries:,} entries (schema 3 -> 4): {suite.volume['backfill']['seconds']} s"
    )


def _latency(suite: Suite, name: str, cached: Path) -> None:
    from benchmarks.run import Target, _bearer, _encrypt_in_place, _header, console

    data_dir = suite.scratch / f"logsvc-stats-{name}"
    data_dir.mkdir()
    conn = apsw.Connection(str(cached), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        newest = int(conn.execute("SELECT max(ts) FROM logs").get)
    finally:
        conn.close()
    shutil.copyfile(cached, data_dir / "logs.db")
    _encrypt_in_place(data_dir)
    key = admin_credential(data_dir)
    # The 24 hours ending just after the newest entry (the cached store may be days old).
    window = f"since={format_timestamp(newest + 1 - DAY_US)}&until={format_timestamp(newest + 1)}"
    with suite._logsvc(f"logsvc-stats-{name}", data_dir, 1) as server:
        for case, label, params in CASES:
            url = f"{server.url}/logs/stats?{window}&{params}"
            request = urllib.request.Request(url, headers=_bearer(key))  # noqa: S310 (http://127.0.0.1)
            with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
                answer = json.load(response)
            counted = sum(sum(bucket["counts"].values()) for bucket in answer["buckets"])
            console.print(
                f"  GET /logs/stats?{params} (24 h): {len(answer['buckets'])} buckets of "
                f"{answer['interval']}, {counted:,} entries"
            )
            for connections in STATS_CONNECTIONS:
                runs = suite._wrk_runs(url, connections, None, headers=_header(key))
                suite._scenario(
                    f"stats_{name}_{case}_c{connections}",
                    f"GET stats 24 h {label}, {name}, {connections} conn.",
                    f"GET /logs/stats?<24 h>&{params} on the {name} store",
                    runs,
                    connections=connections,
                    server=server.name,
                    targets=(Target("p99_ms", False, STATS_P99_MS),) if case.startswith("level") else (),
                    extra={
                        "buckets": len(answer["buckets"]),
                        "interval": answer["interval"],
                        "counted": counted,
                    },
                )
        suite._record_server(server)


def _ingest_cost(suite: Suite) -> dict[str, Any]:
    """Entries/s of durable transactions with and without the rollups, and the ratio of the two: of 1,000
    entries (ceiling B's size) and of 4,000 (about what group commit makes of batched ingest). The store
    adds entries to its rollups 1,024 arrival numbers at a time (decision 55): at these sizes, about
    every transaction, as here. (The scratch stores are never read, so their watermark is left alone.)"""
    from benchmarks.run import console

    key = secrets.token_bytes(32)
    costs: dict[str, Any] = {}
    for size in (1000, 4000):
        template = ceilings.template_rows(suite.batch) * (size // len(suite.batch))
        connections: dict[bool, apsw.Connection] = {}
        for counted in (True, False):
            path = suite.scratch / f"rollups-{size}-{'with' if counted else 'without'}" / "logs.db"
            path.parent.mkdir()
            asyncio.run(SQLiteStore(path, read_threads=1, key=key).close())  # logsvc's schema, encrypted
            conn = connect(path, key)
            conn.execute("PRAGMA journal_mode=WAL").fetchall()
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA cache_size=-32000")
            conn.execute("PRAGMA temp_store=MEMORY")  # as the store's writer
            connections[counted] = conn
        rates: dict[bool, list[float]] = {True: [], False: []}
        try:
            for round_number in range(suite.profile.runs + 1):
                seconds = suite.profile.warmup_s if round_number == 0 else suite.profile.duration_s
                for counted in (True, False) if round_number % 2 else (False, True):
                    # ceiling B's loop: only the transactions are timed.
                    conn = connections[counted]
                    rate = ceilings._rate(
                        lambda rows, conn=conn, c=counted: _transaction(conn, rows, c), template, seconds
                    )
                    if round_number:  # round 0 warms up
                        rates[counted].append(rate)
        finally:
            for conn in connections.values():
                conn.close()
        with_rollups, without = statistics.median(rates[True]), statistics.median(rates[False])
        console.print(
            f"  {size:,}-entry transactions: {with_rollups:,.0f} entries/s with the rollups, {without:,.0f} "
            f"without ({with_rollups / without:.2f})"
        )
        for name, label, median in (
            (f"B{size}_rollups", f"raw SQLite, {size:,} rows, with its rollups (encrypted)", with_rollups),
            (f"B{size}_no_rollups", f"raw SQLite, {size:,} rows, without the rollups", without),
        ):
            suite.ceilings[name] = {
                "label": label,
                "title": f"in-process durable transactions of {size:,} entries: insert, full-text feed "
                "(and rollups)",
                "unit": "entries/s",
                "median": {"rate": round(median, 1)},
            }
        costs[f"{size}_entries_per_transaction"] = {
            "with_rollups": [round(rate, 1) for rate in rates[True]],
            "without_rollups": [round(rate, 1) for rate in rates[False]],
            "ratio": round(with_rollups / without, 3),
        }
    return costs


def _transaction(conn: apsw.Connection, rows: list[tuple[Any, ...]], counted: bool) -> None:
    """One transaction of the writer's (``sqlite_writer``), without its watermarks and commit record."""
    conn.execute("BEGIN IMMEDIATE")
    last_seq = conn.execute("SELECT coalesce(max(seq), 0) FROM logs").get
    conn.executemany(INSERT_ENTRY, rows)
    conn.execute(INDEX_NEW_ROWS, (last_seq,))
    if counted:
        count_new_rows(conn, last_seq)
    conn.execute("COMMIT")


def _backfill(cached: Path, folder: Path) -> dict[str, Any]:
    """Seconds to open a copy of the read store as an existing store of schema 3 (its rollups filled)."""
    folder.mkdir()
    path = folder / "logs.db"
    shutil.copyfile(cached, path)
    conn = apsw.Connection(str(path))
    try:
        for table in ROLLUP_TABLES:
            conn.execute(f"DROP VIEW {table}_all")
            conn.execute(f"DROP TABLE {table}")
        conn.execute("DROP TABLE rollups_counted")
        conn.execute("DROP TRIGGER logs_counts_after_delete")
        conn.execute("PRAGMA user_version=3")
    finally:
        conn.close()
    started = time.perf_counter()
    asyncio.run(SQLiteStore(path, read_threads=1).close())
    seconds = time.perf_counter() - started
    shutil.rmtree(folder)
    return {"seconds": round(seconds, 1), "bytes": cached.stat().st_size}


def main(argv: list[str] | None = None) -> int:
    """Only these scenarios (``make bench`` runs them with the rest): ``python -m benchmarks.stats``."""
    import argparse
    import os
    import tempfile

    from benchmarks.loadgen import check_wrk
    from benchmarks.run import PROFILES, Suite, console, report

    parser = argparse.ArgumentParser(prog="python -m benchmarks.stats", description=main.__doc__)
    parser.add_argument("--quick", action="store_true", help="1 short run each, on 100,000-entry stores")
    profile = PROFILES["quick" if parser.parse_args(argv).quick else "full"]
    check_wrk()
    for name in [name for name in os.environ if name.startswith("LOGSVC_")]:
        del os.environ[name]
    with tempfile.TemporaryDirectory(prefix="logsvc-bench-") as scratch:
        suite = Suite(profile, Path(scratch))
        suite._step("Volume over time", lambda: measure(suite))
    results = {
        "profile": profile.name,
        "settings": {"runs": profile.runs},
        "ceilings": suite.ceilings,
        "scenarios": suite.scenarios,
        "servers": suite.servers,
        "failures": suite.failures,
    }
    report(results)
    console.print_json(json.dumps(suite.volume))
    return 1 if suite.failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
