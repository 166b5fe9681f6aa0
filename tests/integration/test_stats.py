"""Volume over time on the embedded store: histograms against brute force over random entries, intervals,
filters and deletions; the rollups of an older store filled when it is opened; all of it encrypted."""

from __future__ import annotations

import asyncio
import secrets
import tempfile
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import apsw
import msgspec
import uuid_utils
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from logsvc.auth.policy import Principal, Role
from logsvc.crypto.sqlite import connect
from logsvc.domain.entries import Level, Limits, NewEntry
from logsvc.domain.stats import Stats
from logsvc.domain.timestamps import parse_timestamp
from logsvc.scopes import covers
from logsvc.service import LogService
from logsvc.storage.sqlite import SQLiteStore
from logsvc.storage.sqlite_rollups import ROLLUP_TABLES, count_new_rows, uncount_trigger
from logsvc.storage.sqlite_schema import SCHEMA_VERSION, open_connection
from tests.integration.stats_reference import OTHER, capped

BASE = 1_700_000_000_000_000
NOW = BASE + 3 * 86_400_000_000
WORDS = ["disk", "timeout", "login", "user"]
SERVICES = ["api", "web", "web-admin", "db"]
ADMIN = Principal(id="admin", roles=frozenset({Role.ADMIN}))


@dataclass(frozen=True)
class Doomed:
    """A deletion as retention (or a purge) makes it: entries before ``cutoff`` of the services in scope."""

    cutoff: int
    include: tuple[str, ...]


def make_entry(ts: int, service: str, level: Level, log_type: str, word: str, n: int) -> NewEntry:
    return NewEntry(uuid_utils.uuid7().bytes, service, ts, level, log_type, f"{n} {word}", None, ts)


entries_strategy = st.lists(
    st.tuples(
        # Within three days, often within the same few minutes and hours.
        st.one_of(
            st.integers(0, 3 * 86_400_000_000 - 1),
            st.integers(0, 3)
            .map(lambda h: h * 3_600_000_000)
            .flatmap(lambda h: st.integers(h, h + 180_000_000)),
        ),
        st.sampled_from(SERVICES),
        st.sampled_from(list(Level)),
        st.sampled_from(["application", "audit"]),
        st.sampled_from(WORDS),
    ),
    min_size=30,
    max_size=150,
)
intervals = st.sampled_from(
    [None, "1s", "10s", "90s", "60s", "1m", "4m", "7m", "15m", "1h", "2h", "1d", "3d"]
)
windows = st.one_of(
    st.sampled_from(["hours=1", "hours=12", "hours=80", ""]),
    st.tuples(st.integers(-3_600, 3 * 86_400), st.integers(1, 4 * 86_400)).map(
        lambda pair: f"since={(BASE // 10**6) + pair[0]}&until={(BASE // 10**6) + pair[0] + pair[1]}"
    ),
    st.just("hours=80"),  # every entry
)
FILTERS = {
    "service_name": st.sampled_from(SERVICES),
    "min_level": st.sampled_from(["DEBUG", "WARN", "ERROR"]),
    "level": st.sampled_from(["INFO", "error"]),
    "log_type": st.sampled_from(["application", "audit"]),
    "q": st.sampled_from(WORDS),
}
# Up to two filters at once: more would leave few of the entries to count.
filters = st.lists(st.sampled_from(sorted(FILTERS)), max_size=2, unique=True).flatmap(
    lambda names: st.fixed_dictionaries({name: FILTERS[name] for name in names})
)
deletions = st.one_of(
    st.none(),
    st.builds(
        Doomed,
        st.integers(BASE, NOW),
        st.sampled_from([(), ("web*",), ("db",)]),
    ),
)


def brute_force(
    entries: list[NewEntry], answer: Stats, params: dict[str, str], scope: tuple[str, ...]
) -> list[dict[str, int]]:
    """What every bucket of the answer must hold, counted entry by entry from the answer's own bounds."""
    counts = uncapped(entries, answer, params, scope)
    return counts if answer.by == "level" else capped(counts)[0]


def uncapped(
    entries: list[NewEntry], answer: Stats, params: dict[str, str], scope: tuple[str, ...]
) -> list[dict[str, int]]:
    """Every bucket's counts by level or by service, every service by its name."""
    starts = [parse_timestamp(bucket.start) for bucket in answer.buckets]
    until = parse_timestamp(answer.until)
    levels = set(Level)
    if "level" in params:
        levels = {Level[params["level"].upper()]}
    if "min_level" in params:
        levels &= {level for level in Level if level >= Level[params["min_level"]]}
    counts: list[dict[str, int]] = [{} for _ in starts]
    for e in entries:
        if not (
            starts[0] <= e.ts_us < until
            and e.level in levels
            and params.get("service_name", e.service_name) == e.service_name
            and params.get("log_type", e.log_type) == e.log_type
            and ("q" not in params or params["q"] in e.message.split())
            and covers(scope, e.service_name)
        ):
            continue
        bucket = max(i for i, start in enumerate(starts) if start <= e.ts_us)
        key = e.level.name if answer.by == "level" else e.service_name
        counts[bucket][key] = counts[bucket].get(key, 0) + 1
    return counts


def run_stats(
    entries: list[NewEntry], doomed: Doomed | None, params: list[tuple[str, str]], principal: Principal
) -> tuple[Stats, list[NewEntry]]:
    """The answer of a store holding ``entries`` (in two batches, one retried) less the ``doomed``."""

    async def main(folder: str) -> tuple[Stats, list[NewEntry]]:
        store = SQLiteStore(Path(folder) / "logs.db", read_threads=1)
        try:
            half = len(entries) // 2
            for batch in (entries[:half], entries[half:], entries[:half]):
                if batch:
                    await store.append(batch)
            kept = entries
            if doomed is not None:
                while await store.delete_older(doomed.cutoff, include=doomed.include, limit=7) >= 7:
                    pass
                kept = [
                    e
                    for e in entries
                    if e.ts_us >= doomed.cutoff or not covers(doomed.include, e.service_name)
                ]
            service = LogService(store, Limits(), clock_us=lambda: NOW)
            return await service.stats(params, principal=principal), kept
        finally:
            await store.close()

    with tempfile.TemporaryDirectory() as folder:
        return asyncio.run(main(folder))


@settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(
    raw=entries_strategy,
    interval=intervals,
    by=st.sampled_from(["level", "service_name"]),
    window=windows,
    chosen=filters,
    doomed=deletions,
    scoped=st.booleans(),
)
def test_histograms_match_brute_force(
    raw: list[tuple[int, str, Level, str, str]],
    interval: str | None,
    by: str,
    window: str,
    chosen: dict[str, str],
    doomed: Doomed | None,
    scoped: bool,
) -> None:
    entries = [make_entry(BASE + offset, *rest, n) for n, (offset, *rest) in enumerate(raw)]  # type: ignore[misc]
    scope = ("web*", "db") if scoped else ()
    if scoped and chosen.get("service_name") == "api":
        chosen = {k: v for k, v in chosen.items() if k != "service_name"}
    params = dict(chosen, by=by)
    if interval is not None:
        params["interval"] = interval
    pairs = [*params.items(), *(tuple(p.split("=")) for p in window.split("&") if p)]
    principal = Principal(id="reader", roles=frozenset({Role.READ}), services=scope)
    answer, kept = run_stats(entries, doomed, pairs, principal)  # type: ignore[arg-type]

    starts = [parse_timestamp(bucket.start) for bucket in answer.buckets]
    step = starts[1] - starts[0] if len(starts) > 1 else parse_timestamp(answer.until) - starts[0]
    assert 1 <= len(starts) <= 1000
    assert starts == [starts[0] + i * step for i in range(len(starts))]
    assert starts[0] % step == 0
    assert parse_timestamp(answer.until) == starts[0] + len(starts) * step
    widened = answer.requested_interval is not msgspec.UNSET
    if widened:
        assert answer.requested_interval == interval
    elif interval is not None:
        assert answer.interval == interval
    expected = brute_force(kept, answer, params, scope)
    assert [bucket.counts for bucket in answer.buckets] == expected
    event("some counted" if any(expected) else "none counted")
    event("widened" if widened else "as asked")


MANY = [f"s{i:03d}" for i in range(120)]
# Many services with skewed volumes (a few loud ones, a long tail), so the cap has ranks and ties to decide.
many_entries = st.lists(
    st.tuples(
        st.one_of(
            st.integers(0, 3 * 86_400_000_000 - 1), st.integers(66 * 3_600_000_000, 72 * 3_600_000_000 - 1)
        ),
        st.one_of(st.sampled_from(MANY[:5]), st.sampled_from(MANY)),
        st.sampled_from(list(Level)),
    ),
    min_size=100,
    max_size=500,
)


@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(
    raw=many_entries,
    interval=st.sampled_from([None, "1m", "15m", "1h", "6h", "1d"]),
    window=st.sampled_from(["hours=80", "hours=24", "hours=6"]),
    scoped=st.booleans(),
)
def test_by_service_the_series_are_capped_and_the_rest_summed(
    raw: list[tuple[int, str, Level]], interval: str | None, window: str, scoped: bool
) -> None:
    """By service, an answer names at most 50 services a bucket (fewer when the buckets are many), the
    loudest in the window, and sums the rest under "(other)": every entry is still counted once."""
    entries = [
        make_entry(BASE + offset, service, level, "application", "x", n)
        for n, (offset, service, level) in enumerate(raw)
    ]
    scope = ("s0*",) if scoped else ()
    params = {"by": "service_name"} | ({"interval": interval} if interval else {})
    pairs = [*params.items(), tuple(window.split("="))]
    principal = Principal(id="reader", roles=frozenset({Role.READ}), services=scope)
    answer, _ = run_stats(entries, None, pairs, principal)  # type: ignore[arg-type]

    everyone = uncapped(entries, answer, {}, scope)
    expected, summed = capped(everyone)
    assert [bucket.counts for bucket in answer.buckets] == expected
    assert (None if answer.other_services is msgspec.UNSET else answer.other_services) == summed
    services = {name for bucket in everyone for name in bucket}
    keys = {name for bucket in answer.buckets for name in bucket.counts}
    limit = max(2, min(50, 10_000 // len(answer.buckets)))
    assert len(keys) <= limit
    assert len(answer.buckets) * len(keys) <= 10_000
    if len(services) > limit:
        # The named services are the loudest; the others' sum is exactly what they hold, bucket by bucket.
        named = keys - {OTHER}
        total = {name: sum(b.get(name, 0) for b in everyone) for name in services}
        assert min(total[name] for name in named) >= max(total[name] for name in services - named)
        for bucket, counted in zip(answer.buckets, everyone, strict=True):
            rest = sum(count for name, count in counted.items() if name not in named)
            assert bucket.counts.get(OTHER, 0) == rest
        assert summed == len(services) - len(named)
        event(f"capped at {limit}")
    else:
        assert OTHER not in keys
        assert answer.other_services is msgspec.UNSET
        event("not capped")


def as_schema_3(path: Path, key: bytes | None) -> None:
    """The store back to what schema 3 held: no rollups, no trigger keeping them."""
    conn = connect(path, key)
    for table in ROLLUP_TABLES:
        conn.execute(f"DROP VIEW {table}_all")
        conn.execute(f"DROP TABLE {table}")
    conn.execute("DROP TABLE rollups_counted")
    conn.execute("DROP TRIGGER logs_counts_after_delete")
    conn.execute("PRAGMA user_version=3")
    conn.close()


def test_an_older_store_gets_its_rollups_when_opened(tmp_path: Path) -> None:
    """A store of schema 3 (before the rollups), encrypted, is counted whole when this version opens it."""
    key = secrets.token_bytes(32)
    path = tmp_path / "logs.db"
    service_name = f"secret-{uuid.uuid4().hex}"
    entries = [
        make_entry(
            BASE + i * 7_000_000, service, Level.INFO if i % 3 else Level.ERROR, "application", "disk", i
        )
        for i, service in enumerate([service_name, "api", "web"] * 200)
    ]

    async def write() -> None:
        store = SQLiteStore(path, key=key)
        await store.append(entries)
        await store.close()

    asyncio.run(write())
    as_schema_3(path, key)

    # The trigger is back: the rollups follow the deletes.
    counted_after_deleting(path, key, BASE + 7_000_000 * 30, entries[30:])
    on_disk = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("logs.db"))
    assert service_name.encode() not in on_disk  # the rollups are encrypted like the rest


def counted_after_deleting(path: Path, key: bytes | None, older_than_us: int, kept: list[NewEntry]) -> None:
    """The store opened (so migrated), its entries older than ``older_than_us`` deleted: its histogram of
    80 hours by the hour, by level, and its services count ``kept``, the entries left."""

    async def read() -> tuple[Any, ...]:
        store = SQLiteStore(path, key=key)
        service = LogService(store, Limits(), clock_us=lambda: NOW)
        try:
            await store.delete_older(older_than_us)
            return (
                await service.stats([("hours", "80"), ("interval", "1h")], principal=ADMIN),
                await service.services([], principal=ADMIN),
            )
        finally:
            await store.close()

    stats, services = asyncio.run(read())
    assert sum(sum(bucket.counts.values()) for bucket in stats.buckets) == len(kept)
    assert sum(bucket.counts.get("ERROR", 0) for bucket in stats.buckets) == sum(
        1 for e in kept if e.level == Level.ERROR
    )
    assert {s.service_name: s.count for s in services.services} == {
        name: sum(1 for e in kept if e.service_name == name) for name in {e.service_name for e in kept}
    }
    conn = connect(path, key)
    assert conn.execute("PRAGMA user_version").fetchall() == [(SCHEMA_VERSION,)]
    conn.close()


def test_an_older_store_opened_by_two_processes_at_once_is_counted_once(tmp_path: Path) -> None:
    """Two writers (a server and a CLI command, say) opening a schema 3 store together: the one that found
    it old, if the other migrates it first, must not fill the rollups again (every count would double)."""
    path = tmp_path / "logs.db"
    entries = [make_entry(BASE + i * 1_000_000, "api", Level.INFO, "application", "w", i) for i in range(50)]

    async def write() -> None:
        store = SQLiteStore(path)
        await store.append(entries)
        await store.close()

    asyncio.run(write())
    as_schema_3(path, None)
    late_thread: set[int] = set()
    late_paused, first_done = threading.Event(), threading.Event()

    def pause_at_first_write(conn: apsw.Connection) -> None:
        def trace(cursor: apsw.Cursor, sql: str, bindings: object) -> bool:
            # The late opener has read the schema version; it stops before its migration writes anything
            # until the other process has migrated the store.
            if threading.get_ident() in late_thread and sql.lstrip().upper().startswith(("BEGIN", "DROP")):
                late_thread.clear()
                late_paused.set()
                first_done.wait(30)
            return True

        conn.exec_trace = trace

    opened: list[apsw.Connection] = []

    def open_late() -> None:
        late_thread.add(threading.get_ident())
        opened.append(open_connection(path, None, write=True))

    apsw.connection_hooks.append(pause_at_first_write)
    late = threading.Thread(target=open_late)
    try:
        late.start()
        assert late_paused.wait(30)
        opened.append(open_connection(path, None, write=True))
    finally:
        first_done.set()
        late.join(30)
        apsw.connection_hooks.remove(pause_at_first_write)
    assert len(opened) == 2
    for conn in opened:
        conn.close()
    conn = connect(path, None)
    assert conn.execute("SELECT n FROM service_counts").fetchall() == [(len(entries),)]
    assert conn.execute("SELECT sum(n) FROM levels_1m").fetchall() == [(len(entries),)]
    conn.close()


def test_a_store_of_schema_4_keeps_its_counts_when_the_rollups_count_in_bulk(tmp_path: Path) -> None:
    """A store of schema 4 (every commit counted at once) opened by this version (decision 55): what it
    counted stays counted, new entries are added after it in bulk (and the newest counted on the spot),
    and deleting any of the three kinds takes it off."""
    key = secrets.token_bytes(32)
    path = tmp_path / "logs.db"
    levels = [Level.INFO, Level.ERROR, Level.WARN]
    older = [
        make_entry(BASE + i * 7_000_000, service, levels[i % 3], "application", "disk", i)
        for i, service in enumerate(["api", "web"] * 150)
    ]
    newer = [  # enough to be added to the rollups in bulk, and then 100 more that are not yet
        make_entry(BASE + (i % 1_100) * 5_000_000, service, levels[i % 2], "application", "disk", 1_000 + i)
        for i, service in enumerate(["api", "db"] * 600)
    ]

    async def write(*batches: list[NewEntry]) -> None:
        store = SQLiteStore(path, key=key)
        for entries in batches:
            await store.append(entries)
        await store.close()

    asyncio.run(write(older))
    as_schema_4(path, key)
    asyncio.run(write(newer[:1_100], newer[1_100:]))
    conn = connect(path, key)
    assert conn.execute("SELECT last_seq FROM rollups_counted").get == len(older) + 1_100
    conn.close()
    # Of the older entries, of those added in bulk and of those not yet added.
    threshold = BASE + 5_000_000 * 40
    kept = [e for e in older + newer if e.ts_us >= threshold]
    assert len(kept) < len(older) + len(newer) - 80
    counted_after_deleting(path, key, threshold, kept)


def as_schema_4(path: Path, key: bytes | None) -> None:
    """The store back to what schema 4 held: rollups counted at every commit, a trigger taking off every
    deleted entry."""
    conn = connect(path, key)
    conn.execute("BEGIN")
    count_new_rows(conn, conn.execute("SELECT last_seq FROM rollups_counted").get)
    for table in ROLLUP_TABLES:
        conn.execute(f"DROP VIEW {table}_all")
    conn.execute("DROP TABLE rollups_counted")
    conn.execute("DROP TRIGGER logs_counts_after_delete")
    conn.execute(uncount_trigger("logs"))
    conn.execute("PRAGMA user_version=4")
    conn.execute("COMMIT")
    conn.close()
