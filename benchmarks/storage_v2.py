"""Storage v2 baselines on the template data (issue 14; not part of ``make bench``).

``python -m benchmarks.storage_v2 --entries 1000000 --runs 3`` measures, on the realistic template data of
``benchmarks/templates.py``:

- the current store (SQLiteStore, encrypted as a server runs it): in-process durable ingest with one
  1,000-entry batch in flight, each acknowledged after its COMMIT; entries/s of the time spent in
  ``append`` (generation excluded), CPU µs per entry in that time, and bytes on disk per entry (database,
  WAL and shared memory after close) against the raw NDJSON of the same entries;
- the hot and cold files of ``logsvc.storage.tiers`` (no full-text index in the hot tier yet): durable
  appends of 1,000 entries into the hot file while a compactor process compacts sealed generations, and
  the bytes on disk of both files once it has caught up; then the reads over both files
  (``tiers_reads.recent``, a page of the newest 100: all, one service, ERROR+, the last minute, a common
  word, a rare word; p50 and p99 of 101 repeats, the reads taking turns). ``--keep DIR`` builds the files
  in DIR once (one run) and, when DIR holds them, only measures the reads on them;
- the reads of a tiered store kept across runs (``--reuse DIR``, decision 37): built once in DIR through
  the real ``TieredStore`` and its compactor process (``--entries`` template entries, 8 batches in flight,
  until the compactor caught up), then opened by each run and read through ``TieredStore.recent``: the
  first read ``--settle`` seconds after opening, then the six reads of newest 100 taking turns
  ``--repeats`` times (p50, p99, CPU ms per read, load average); with ``--skip-store --skip-pages
  --skip-tiered`` nothing else runs;
- the cold page encoding (``logsvc.storage.pages``) of the same entries in pages of 1,024 sorted by event
  time: bytes per entry (pages, summaries and token filters), and the encoding's CPU µs per entry, with
  and without a zstd dictionary trained on the first pages;
- the tiered store (``logsvc.storage.tiered.TieredStore``, the engine with its writer thread and its
  compactor process): in-process appends of 1,000 entries with 1 and with 8 batches in flight (group
  commit), entries/s of the time spent appending; the compactor's CPU time, peak RSS, and how long after
  the last append it was still compacting (``--profile``: where the writer's time goes, by cProfile);
- where the bytes of the tiered store go (``--sizes``, alone, stops by itself; ``--entries 10000000`` is
  about 4-8 minutes of ingest): every file of the store directory (WAL and shared memory included) at a
  random moment of the ingest, once the compactor caught up, and once the writers went idle (the
  compactor then empties the WALs, decision 38), each per entry and against the raw NDJSON; then the
  pages of each file's tables and indexes (SQLite's ``dbstat``), its free pages, and the cold pages'
  bytes by column;
- over HTTP (``--http SECONDS``): ``logsvc serve`` on each engine, wrk POSTing 1,000 template entries
  per request on 8 connections (``make bench``'s batched ingest, on the template data), the engines taking
  turns; entries/s, the peak RSS of the server and its compactor, and the compactor's lag at the end.

Each figure is the median of ``--runs`` runs; the machine is shared, so the spread is printed too.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import resource
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from itertools import chain, islice
from pathlib import Path
from typing import Any

import msgspec

from benchmarks.processes import admin_credential
from benchmarks.templates import COMMON_WORD, RARE_WORD, TemplateData, raw_ndjson
from logsvc.crypto import store_key
from logsvc.crypto.sqlite import connect
from logsvc.datadir import DataDir
from logsvc.domain.entries import Level, NewEntry
from logsvc.domain.queries import Query
from logsvc.domain.timestamps import parse_timestamp_text
from logsvc.settings import load_settings
from logsvc.storage.pages import PAGE_ENTRIES, PageCodec, PageSummary, Row, train_dictionary
from logsvc.storage.sqlite import SQLiteStore
from logsvc.storage.tiered import TieredStore
from logsvc.storage.tiered_compactor import Compactor
from logsvc.storage.tiers import ColdFile, HotFile, NewRow, compact, finish
from logsvc.storage.tiers_reads import contains, recent
from logsvc.storage.token_filter import Tokenizer

_BATCH = 1000


async def _ingest(path: Path, count: int) -> dict[str, float]:
    store = SQLiteStore(path, read_threads=1, key=secrets.token_bytes(32))
    data = TemplateData()
    raw = 0
    busy = 0.0
    cpu = 0.0
    try:
        for batch in data.batches(count, _BATCH):
            raw += sum(len(raw_ndjson(entry)) for entry in batch)
            started, started_cpu = time.perf_counter(), time.process_time()
            await store.append(batch)
            busy += time.perf_counter() - started
            cpu += time.process_time() - started_cpu
    finally:
        await store.close()
    on_disk = sum(file.stat().st_size for file in path.parent.glob(path.name + "*"))
    return {
        "entries_per_s": count / busy,
        "cpu_us_per_entry": cpu / count * 1e6,
        "bytes_per_entry": on_disk / count,
        "raw_bytes_per_entry": raw / count,
        "x_raw": on_disk / raw,
    }


def _page_rows(count: int) -> Iterator[tuple[list[Row], int]]:
    """The entries in pages of PAGE_ENTRIES sorted by (event time, arrival), each with its raw NDJSON size."""
    seq = 1
    for batch in TemplateData().batches(count, PAGE_ENTRIES):
        rows = [
            (
                seq + i,
                e.log_id,
                e.ts_us,
                e.service_name,
                int(e.level),
                e.log_type,
                e.message,
                e.metadata,
                e.received_us,
            )
            for i, e in enumerate(batch)
        ]
        seq += len(rows)
        yield sorted(rows, key=lambda row: (row[2], row[0])), sum(len(raw_ndjson(entry)) for entry in batch)


def _pages(count: int, dictionary_pages: int) -> dict[str, float]:
    """Every entry in pages (with a dictionary trained on the first ``dictionary_pages`` pages, if any):
    bytes per entry of pages, summaries and dictionary; CPU µs per entry to encode and to decode."""
    pages = _page_rows(count)
    codec = PageCodec()
    encoded = 0
    encode_cpu = 0.0
    if dictionary_pages:
        held = list(islice(pages, dictionary_pages))
        started = time.process_time()
        codec = PageCodec(train_dictionary([row for rows, _raw in held for row in rows]))
        encode_cpu += time.process_time() - started
        encoded += len(codec.dictionary or b"")
        pages = chain(held, pages)
    raw = 0
    decode_cpu = 0.0
    for rows, raw_bytes in pages:
        raw += raw_bytes
        started = time.process_time()
        blob, summary = codec.encode(rows)
        encode_cpu += time.process_time() - started
        encoded += len(blob) + len(summary.to_bytes())
        started = time.process_time()
        codec.decode(blob)
        decode_cpu += time.process_time() - started
    codec.close()
    return {
        "bytes_per_entry": encoded / count,
        "x_raw": encoded / raw,
        "encode_cpu_us_per_entry": encode_cpu / count * 1e6,
        "decode_cpu_us_per_entry": decode_cpu / count * 1e6,
    }


def _compactor(folder: Path, key: bytes) -> None:
    """The compactor process of the tiers measurement: compacts every sealed generation until stopped."""
    hot = HotFile(folder / "hot.db", key)
    cold = ColdFile(folder / "cold.db", key)
    finish(hot, cold)
    while not (folder / "stop").exists() or hot.sealed():
        sealed = hot.sealed()
        for generation in sealed:
            compact(hot, cold, generation)
        if not sealed:
            time.sleep(0.01)
    hot.close()
    cold.close()


_KEPT_KEY = secrets.token_bytes(32)


def _tiers(folder: Path, count: int, *, read: bool = True) -> dict[str, float]:
    """The two files of decision 28 (no full-text index in the hot tier yet, so an upper bound of the hot
    tier's rate): durable appends of 1,000 entries with a compactor process running beside them; bytes on
    disk of both files once the compactor has caught up (the open generation stays hot)."""
    key = _KEPT_KEY
    hot = HotFile(folder / "hot.db", key)
    compactor = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"from benchmarks.storage_v2 import _compactor; from pathlib import Path; "
            f"_compactor(Path({str(folder)!r}), bytes.fromhex({key.hex()!r}))",
        ],
        cwd=Path(__file__).resolve().parents[1],
    )
    raw = 0
    busy = 0.0
    cpu = 0.0
    try:
        for batch in TemplateData().batches(count, _BATCH):
            raw += sum(len(raw_ndjson(entry)) for entry in batch)
            rows = [
                (
                    e.log_id,
                    e.ts_us,
                    e.service_name,
                    int(e.level),
                    e.log_type,
                    e.message,
                    e.metadata,
                    e.received_us,
                )
                for e in batch
            ]
            started, started_cpu = time.perf_counter(), time.process_time()
            hot.append(rows)
            busy += time.perf_counter() - started
            cpu += time.process_time() - started_cpu
        (folder / "stop").touch()
        started = time.perf_counter()
        compactor.wait(timeout=600)
        behind = time.perf_counter() - started
    finally:
        hot.close()
        if compactor.poll() is None:
            compactor.kill()
            compactor.wait()
    on_disk = sum(file.stat().st_size for file in folder.glob("*.db*"))
    return {
        "entries_per_s": count / busy,
        "cpu_us_per_entry": cpu / count * 1e6,
        "compactor_behind_s": behind,
        "bytes_per_entry": on_disk / count,
        "x_raw": on_disk / raw,
    } | (_reads(folder, key) if read else {})


READS = {
    "all": Query(),
    "one service": Query(service_name="checkout"),
    "ERROR+": Query(levels=(Level.ERROR, Level.FATAL)),
    "last minute": Query(),  # since the newest entry's time less a minute, set in _reads
    "common word": Query(terms=(COMMON_WORD,)),
    "rare word": Query(terms=(RARE_WORD,)),
}
_READ_REPEATS = 101
_MINUTE_US = 60_000_000


def _reads(folder: Path, key: bytes) -> dict[str, float]:
    """p50 and p99 in ms of a page of the newest 100 entries of each read of READS over both files
    (``tiers_reads.recent``, one process, no HTTP), the reads taking turns; with 101 repeats the p99 is
    the slowest but one. The first read of each (the summaries loaded into memory) is timed apart."""
    hot = HotFile(folder / "hot.db", key)
    cold = ColdFile(folder / "cold.db", key)
    tokenizer = Tokenizer()
    figures: dict[str, float] = {}
    try:
        started = time.perf_counter()
        top = recent(hot, cold, Query(limit=1), tokenizer).logs[0].timestamp
        figures["first read ms"] = (time.perf_counter() - started) * 1000
        reads = dict(READS)
        reads["last minute"] = Query(since_us=parse_timestamp_text(top) - _MINUTE_US)
        times: dict[str, list[float]] = {name: [] for name in reads}
        for _ in range(_READ_REPEATS):
            for name, query in reads.items():
                started = time.perf_counter()
                recent(hot, cold, query, tokenizer)
                times[name].append((time.perf_counter() - started) * 1000)
        for name, taken in times.items():
            taken.sort()
            figures[f"{name} p50 ms"] = taken[len(taken) // 2]
            figures[f"{name} p99 ms"] = taken[-2]
    finally:
        hot.close()
        cold.close()
        tokenizer.close()
    return figures


def _kept(folder: Path, count: int) -> dict[str, float]:
    """The reads on the two files kept in ``folder``, built there first (with their key) if missing."""
    key_file = folder / "key.hex"
    if not key_file.exists():
        folder.mkdir(parents=True, exist_ok=True)
        _tiers(folder, count, read=False)
        key_file.write_text(_KEPT_KEY.hex())
    return _reads(folder, bytes.fromhex(key_file.read_text()))


def _reused(folder: Path, count: int, repeats: int, settle: float) -> dict[str, float]:
    """The reads of a TieredStore kept in ``folder``: built there first if it holds none (``count``
    entries through the real engine, 8 batches in flight, its compactor process compacting beside it,
    until that caught up), then measured (``_store_reads``). The key is kept beside the store."""
    key_file = folder / "key.hex"
    figures: dict[str, float] = {}
    if not key_file.exists():
        folder.mkdir(parents=True, exist_ok=True)
        figures = asyncio.run(_build(folder / "store", count, key := secrets.token_bytes(32)))
        key_file.write_text(key.hex())
    key = bytes.fromhex(key_file.read_text())
    return figures | asyncio.run(_store_reads(folder / "store", key, repeats, settle))


async def _build(folder: Path, count: int, key: bytes) -> dict[str, float]:
    """``count`` template entries into a TieredStore, 8 batches of 1,000 in flight, then until its
    compactor caught up; progress on standard error."""
    store = TieredStore(folder, read_threads=1, key=key)
    started = time.perf_counter()
    done = 0
    batches = TemplateData().batches(count, _BATCH)
    try:
        while group := list(islice(batches, 8)):
            await asyncio.gather(*(store.append(batch) for batch in group))
            done += sum(map(len, group))
            if done % 500_000 < 8 * _BATCH:
                rate = done / (time.perf_counter() - started)
                print(f"built {done:,} ({rate:,.0f}/s, load {os.getloadavg()[0]:.1f})", file=sys.stderr)
        appended = time.perf_counter() - started
        behind = _caught_up(folder, key, timeout=3600)
    finally:
        await store.close()
    return {
        "build_entries_per_s": count / appended,
        "build_compactor_behind_s": behind,
        "bytes_per_entry": sum(file.stat().st_size for file in folder.glob("*.db*")) / count,
    }


async def _store_reads(folder: Path, key: bytes, repeats: int, settle: float) -> dict[str, float]:
    """p50 and p99 in ms of each read of READS through a TieredStore opened on ``folder`` (its read pool,
    no compactor), the reads taking turns, ``repeats`` times each, and their CPU time (all threads) per
    read. The first read of the process, ``settle`` seconds after the store opened (every page summary
    is loaded by the first read or by the store's warm-up at open), is timed apart; then each read runs
    4 times at once, untimed, so that every read thread has opened its connections and indexed the
    summaries before the timed reads (one-time costs of a process, not of a read)."""
    store = TieredStore(folder, key=key, compactor=False)
    figures: dict[str, float] = {"load average 1 min": os.getloadavg()[0]}
    try:
        await asyncio.sleep(settle)
        started = time.perf_counter()
        top = (await store.recent(Query(limit=1))).logs[0].timestamp
        figures[f"first read {settle:g} s after open ms"] = (time.perf_counter() - started) * 1000
        reads = dict(READS)
        reads["last minute"] = Query(since_us=parse_timestamp_text(top) - _MINUTE_US)
        times: dict[str, list[float]] = {name: [] for name in reads}
        cpu: dict[str, float] = dict.fromkeys(reads, 0.0)
        for query in reads.values():  # untimed: each read thread's first read opens its connections
            await asyncio.gather(*(store.recent(query) for _ in range(4)))
        for _ in range(repeats):
            for name, query in reads.items():
                started, started_cpu = time.perf_counter(), time.process_time()
                await store.recent(query)
                times[name].append((time.perf_counter() - started) * 1000)
                cpu[name] += time.process_time() - started_cpu
        for name, taken in times.items():
            taken.sort()
            figures[f"{name} p50 ms"] = taken[len(taken) // 2]
            figures[f"{name} p99 ms"] = taken[min(len(taken) - 1, int(len(taken) * 0.99))]
            figures[f"{name} cpu ms"] = cpu[name] / repeats * 1000
    finally:
        await store.close()
    figures["load average 1 min, after"] = os.getloadavg()[0]
    return figures


def _rows(batch: list[NewEntry]) -> list[NewRow]:
    return [
        (e.log_id, e.ts_us, e.service_name, int(e.level), e.log_type, e.message, e.metadata, e.received_us)
        for e in batch
    ]


def _caught_up(folder: Path, key: bytes | None, timeout: float = 600) -> float:
    """Seconds until no hot generation waits for the compactor."""
    hot = HotFile(folder / "hot.db", key)
    started = time.perf_counter()
    try:
        while hot.sealed() and time.perf_counter() - started < timeout:
            time.sleep(0.05)
    finally:
        hot.close()
    return time.perf_counter() - started


def _process_figures(pid: int | None) -> dict[str, float]:
    """CPU seconds and peak RSS (MiB) of a running process, from /proc."""
    if pid is None:
        return {}
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    status = dict(
        line.split(":\t", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":\t" in line
    )
    return {
        "compactor_cpu_s": (int(fields[11]) + int(fields[12])) / ticks,
        "compactor_peak_rss_mib": int(status["VmHWM"].split()[0]) / 1024,
    }


async def _tiered_store(folder: Path, count: int, in_flight: int) -> dict[str, float]:
    """TieredStore as the server runs it (encrypted, compactor process): batches of 1,000, ``in_flight`` of
    them submitted together; entries/s of the time spent appending (generation excluded)."""
    key = secrets.token_bytes(32)
    store = TieredStore(folder, read_threads=1, key=key)
    data = TemplateData()
    busy = 0.0
    cpu = 0.0
    raw = 0
    batches = data.batches(count, _BATCH)
    try:
        while True:
            group = list(islice(batches, in_flight))
            if not group:
                break
            raw += sum(len(raw_ndjson(entry)) for batch in group for entry in batch)
            started, started_cpu = time.perf_counter(), time.process_time()
            await asyncio.gather(*(store.append(batch) for batch in group))
            busy += time.perf_counter() - started
            cpu += time.process_time() - started_cpu
        behind = _caught_up(folder, key)
        assert store._compactor is not None
        compactor = _process_figures(store._compactor.pid)
    finally:
        await store.close()
    on_disk = sum(file.stat().st_size for file in folder.glob("*.db*"))
    return {
        "entries_per_s": count / busy,
        "cpu_us_per_entry": cpu / count * 1e6,
        "compactor_behind_s": behind,
        "bytes_per_entry": on_disk / count,
        "x_raw": on_disk / raw,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    } | compactor


def _files(folder: Path) -> dict[str, int]:
    return {file.name: file.stat().st_size for file in sorted(folder.iterdir()) if file.is_file()}


def _idle(folder: Path, timeout: float = 30) -> float:
    """Seconds until both WALs were emptied by the idle compactor (or ``timeout``)."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        files = _files(folder)
        if not files.get("hot.db-wal") and not files.get("cold.db-wal"):
            break
        time.sleep(0.05)
    return time.perf_counter() - started


def _tables(path: Path, key: bytes) -> dict[str, Any]:
    """Bytes of each table and index of a database file (its pages, through the WAL), and its free pages."""
    conn = connect(path, key)
    try:
        (page_size,) = conn.execute("PRAGMA page_size").fetchone() or (0,)
        (free,) = conn.execute("PRAGMA freelist_count").fetchone() or (0,)
        tables = {
            str(name): int(size)
            for name, size in conn.execute(
                "SELECT name, sum(pgsize) FROM dbstat GROUP BY name ORDER BY sum(pgsize) DESC"
            )
        }
    finally:
        conn.close()
    return {"tables": tables, "free": int(free) * int(page_size), "page_size": int(page_size)}


def _columns(folder: Path, key: bytes, pages: int = 64) -> dict[str, float]:
    """Bytes per entry of each column of the newest ``pages`` cold pages (compressed, as stored), and of
    their summaries."""
    cold = ColdFile(folder / "cold.db", key)
    sizes: dict[str, float] = {}
    entries = 0
    try:
        for summary_blob, body in cold.connection.execute(
            "SELECT summary, body FROM cold_pages ORDER BY page_id DESC LIMIT ?", (pages,)
        ):
            view = cold.codec.view(body)
            columns = view.column_sizes()
            entries += view.count
            for name, size in zip(_COLUMN_NAMES, columns, strict=False):
                sizes[name] = sizes.get(name, 0) + size
            sizes["page head"] = sizes.get("page head", 0) + len(body) - sum(columns)
            # the filters as stored (compressed or folded since decision 41): the summary's last fields
            stored = msgspec.msgpack.decode(summary_blob)
            fields = PageSummary.__struct_fields__
            tokens, ids = len(stored[fields.index("tokens")]), len(stored[fields.index("ids")])
            sizes["summary: token filter"] = sizes.get("summary: token filter", 0) + tokens
            sizes["summary: id filter"] = sizes.get("summary: id filter", 0) + ids
            rest = len(summary_blob) - tokens - ids
            sizes["summary: the rest"] = sizes.get("summary: the rest", 0) + rest
    finally:
        cold.close()
    return {name: size / max(entries, 1) for name, size in sizes.items()}


_COLUMN_NAMES = (
    "arrival numbers",
    "log_ids",
    "event times",
    "arrival times",
    "service names",
    "service codes",
    "levels",
    "type names",
    "type codes",
    "message lengths",
    "message text",
    "metadata lengths",
    "metadata text",
    "log_id milliseconds",
)


async def _sizes(folder: Path, count: int, in_flight: int = 8) -> dict[str, Any]:
    """Where the tiered store's bytes go: its directory's files at a random moment of the ingest (batches
    of 1,000, ``in_flight`` at once, as ``_tiered_store``), once the compactor caught up and once the
    writers were idle; then the tables of each file and the cold pages' columns."""
    key = secrets.token_bytes(32)
    store = TieredStore(folder, read_threads=1, key=key)
    raw = 0
    done = 0
    busy = 0.0
    cpu = 0.0
    moment = secrets.randbelow(count // 2) + count // 4
    mid: tuple[int, dict[str, int]] | None = None
    tenths: list[tuple[int, int, int]] = []  # entries, bytes on disk, raw bytes at each tenth of the ingest
    batches = TemplateData().batches(count, _BATCH)
    try:
        while group := list(islice(batches, in_flight)):
            raw += sum(len(raw_ndjson(entry)) for batch in group for entry in batch)
            started, started_cpu = time.perf_counter(), time.process_time()
            await asyncio.gather(*(store.append(batch) for batch in group))
            busy += time.perf_counter() - started
            cpu += time.process_time() - started_cpu
            done += sum(map(len, group))
            if mid is None and done >= moment:
                mid = (done, _files(folder))
            if done * 10 // count > len(tenths) and done < count:
                tenths.append((done, sum(_files(folder).values()), raw))
        ended = _files(folder)
        behind = _caught_up(folder, key)
        caught = _files(folder)
        idle_after = _idle(folder)
        idle = _files(folder)
        assert store._compactor is not None
        compactor = _process_figures(store._compactor.pid)
    finally:
        await store.close()
    assert mid is not None
    raw_per_entry = raw / count
    moments: dict[str, Any] = {}
    for name, entries, files in (
        (f"mid-ingest ({mid[0]:,} entries)", mid[0], mid[1]),
        ("the last append returned", count, ended),
        ("compactor caught up", count, caught),
        (f"idle ({idle_after:.1f} s later)", count, idle),
    ):
        total = sum(files.values())
        moments[name] = {
            "bytes_per_entry": total / entries,
            "x_raw": total / entries / raw_per_entry,
            "files": {file: size / entries for file, size in files.items()},
        }
    return {
        "entries": count,
        "raw_bytes_per_entry": raw_per_entry,
        "entries_per_s": count / busy,
        "cpu_us_per_entry": cpu / count * 1e6,
        "compactor_behind_s": behind,
        "moments": moments,
        "tenths": [
            {"entries": entries, "bytes_per_entry": size / entries, "x_raw": size / raw_then}
            for entries, size, raw_then in tenths
        ],
        "hot.db": _tables(folder / "hot.db", key),
        "cold.db": _tables(folder / "cold.db", key),
        "cold page columns, bytes per entry": _columns(folder, key),
    } | compactor


def _print_sizes(sizes: dict[str, Any]) -> None:
    count = sizes["entries"]
    print(
        f"{count:,} entries, raw {sizes['raw_bytes_per_entry']:.1f} B/entry; ingest "
        f"{sizes['entries_per_s']:,.0f} entries/s, {sizes['cpu_us_per_entry']:.1f} CPU us/entry; compactor "
        f"{sizes.get('compactor_cpu_s', 0) / count * 1e6:.1f} CPU us/entry, "
        f"{sizes['compactor_behind_s']:.1f} s behind"
    )
    for moment, figures in sizes["moments"].items():
        print(f"  {moment}: {figures['bytes_per_entry']:.1f} B/entry, {figures['x_raw']:.3f}x raw")
        for file, per_entry in figures["files"].items():
            print(f"    {file:22s} {per_entry:8.2f}")
    print(
        "  at each tenth of the ingest, x raw: "
        + ", ".join(f"{tenth['entries']:,}: {tenth['x_raw']:.3f}" for tenth in sizes["tenths"])
    )
    for name in ("hot.db", "cold.db"):
        tables = sizes[name]
        print(f"  {name}: free pages {tables['free'] / count:.2f} B/entry; by table and index, B/entry:")
        for table, size in list(tables["tables"].items())[:12]:
            print(f"    {table:28s} {size / count:8.2f}")
    print("  cold page columns (newest 64 pages), B/entry:")
    for column, per_entry in sizes["cold page columns, bytes per entry"].items():
        print(f"    {column:28s} {per_entry:8.2f}")


def _profile(folder: Path, count: int) -> None:
    """cProfile of the writer's work (``HotFile.append`` with the cold tier's id lookup, as the store's
    writer calls it) in this thread, a compactor process running beside it."""
    key = secrets.token_bytes(32)
    compactor = Compactor(folder, key)
    hot = HotFile(folder / "hot.db", key)
    cold = ColdFile(folder / "cold.db", key)
    profiler = cProfile.Profile()
    try:
        for batch in TemplateData().batches(count, _BATCH):
            rows = _rows(batch)
            profiler.enable()
            hot.append(rows, lambda keys: contains(hot, cold, keys))
            profiler.disable()
    finally:
        hot.close()
        cold.close()
        compactor.stop()
    pstats.Stats(profiler).sort_stats("tottime").print_stats(14)


def _http(
    folder: Path, engine: str, seconds: float, body: Path, profile: Path | None = None
) -> dict[str, float]:
    """``logsvc serve --store-engine ENGINE``, wrk POSTing ``body`` (1,000 template entries, without ids:
    each request stores new entries) on 8 connections for ``seconds``; entries/s, the CPU time per stored
    entry of the server and of its compactor (the compactor's counted once it caught up: its work for
    these entries), the peak RSS of the server and every process under it (the compactor), and the
    compactor's lag after the run. ``profile``: py-spy records the server and the compactor during the
    run into this folder (folded stacks; py-spy must be installed, it is not a dependency)."""
    from benchmarks.loadgen import wrk
    from benchmarks.processes import Probe, descendants, free_port, running

    os.environ["LOGSVC_CREDENTIALS_FILE"] = str(folder / "credentials")
    os.environ["LOGSVC_MASTER_KEY_FILE"] = str(folder / "master.key")
    data_dir = folder / engine
    admin = admin_credential(data_dir)
    port = free_port()
    argv = [sys.executable, "-m", "logsvc", "serve", "--data-dir", str(data_dir), "--port", str(port)]
    argv += ["--store-engine", engine, "--log-level", "warning"]
    probe = Probe("GET", "/healthz", None, 200)
    with running(f"bench-{engine}", argv, port, folder / f"{engine}.log", probe) as server:
        header = (f"Authorization: Bearer {admin.api_key}",)
        wrk(server.url + "/logs", connections=8, duration_s=2, body=body, headers=header)  # warm-up
        key = store_key(load_settings(overrides={"data_dir": str(data_dir)}))
        if engine == "tiered":
            _caught_up(DataDir(data_dir).tiered, key)
        children = descendants(server.process.pid)
        cpu_before = {pid: _cpu_seconds(pid) for pid in [server.process.pid, *children]}
        spies = (
            [
                _py_spy(pid, seconds, profile / f"{engine}-{name}.folded")
                for pid, name in [(server.process.pid, "server"), *((pid, "compactor") for pid in children)]
            ]
            if profile is not None
            else []
        )
        run = wrk(server.url + "/logs", connections=8, duration_s=seconds, body=body, headers=header)
        behind = _caught_up(DataDir(data_dir).tiered, key) if engine == "tiered" else 0.0
        cpu = {pid: _cpu_seconds(pid) - before for pid, before in cpu_before.items()}
        for spy in spies:
            spy.wait(timeout=seconds + 60)
        rss = server.peak_rss()
    stored = (run.requests - run.status_errors) * _BATCH
    compactor_cpu = sum(taken for pid, taken in cpu.items() if pid != server.process.pid)
    return {
        "entries_per_s": run.ok_per_s * _BATCH,
        "p99_ms": run.p99_ms,
        "non_2xx": float(run.status_errors),
        "server_cpu_us_per_entry": cpu[server.process.pid] / stored * 1e6,
        "compactor_cpu_us_per_entry": compactor_cpu / stored * 1e6,
        "peak_rss_mib": rss["total_mib"],
        "processes": float(len(rss["processes"])),
        "compactor_behind_s": behind,
        "load_average": os.getloadavg()[0],
    }


def _py_spy(pid: int, seconds: float, output: Path) -> subprocess.Popen[bytes]:
    """py-spy recording ``pid`` for ``seconds`` (200 samples a second, without pausing it) as folded
    stacks, one line per stack with its sample count."""
    argv = [str(Path(sys.executable).with_name("py-spy")), "record", "-p", str(pid), "-d", str(int(seconds))]
    argv += ["-r", "200", "-f", "raw", "-o", str(output), "--nonblocking"]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _http_body(folder: Path) -> Path:
    """1,000 template entries as a POST body, without their ids: every request stores new entries."""
    (batch,) = TemplateData().batches(_BATCH, _BATCH)
    documents = []
    for entry in batch:
        document = json.loads(raw_ndjson(entry))
        del document["log_id"]
        documents.append(document)
    body = folder / "batch.json"
    body.write_bytes(json.dumps(documents, separators=(",", ":"), ensure_ascii=False).encode())
    return body


def _median(runs: list[dict[str, float]]) -> dict[str, Any]:
    return {
        key: {
            "median": round(statistics.median(run[key] for run in runs), 2),
            "runs": [round(run[key], 2) for run in runs],
        }
        for key in runs[0]
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--skip-store", action="store_true", help="leave out today's store")
    parser.add_argument("--skip-pages", action="store_true", help="leave out the page encoding alone")
    parser.add_argument("--skip-tiers", action="store_true", help="leave out the hot and cold files")
    parser.add_argument("--skip-tiered", action="store_true", help="leave out the TieredStore engine")
    parser.add_argument("--profile", action="store_true", help="profile the tiered writer's work, then stop")
    parser.add_argument("--sizes", action="store_true", help="where the tiered store's bytes go, then stop")
    parser.add_argument("--http", type=float, default=0.0, help="seconds of each HTTP run (0: none)")
    parser.add_argument(
        "--py-spy", help="with --http: record the server and compactor with py-spy into this folder"
    )
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument(
        "--keep",
        help="build the two files in this folder (one run), or only measure the reads if it holds them",
    )
    parser.add_argument(
        "--reuse",
        help="build a TieredStore of --entries in this folder once (the real engine and compactor), or "
        "only measure its reads if the folder holds one",
    )
    parser.add_argument("--repeats", type=int, default=_READ_REPEATS, help="times each read of --reuse")
    parser.add_argument(
        "--settle", type=float, default=0.0, help="seconds from opening the --reuse store to its first read"
    )
    args = parser.parse_args()
    results: dict[str, Any] = {"entries": args.entries}
    if args.profile:
        with tempfile.TemporaryDirectory() as folder:
            _profile(Path(folder), args.entries)
        return
    if args.sizes:
        with tempfile.TemporaryDirectory() as folder:
            sizes = asyncio.run(_sizes(Path(folder), args.entries))
        _print_sizes(sizes)
        if args.json:
            Path(args.json).write_text(json.dumps(sizes, indent=2) + "\n")
        return
    if not args.skip_store:
        runs = []
        for _ in range(args.runs):
            with tempfile.TemporaryDirectory() as folder:
                runs.append(asyncio.run(_ingest(Path(folder) / "logs.db", args.entries)))
        results["sqlite_store"] = _median(runs)
    if args.reuse:
        runs = [_reused(Path(args.reuse), args.entries, args.repeats, args.settle) for _ in range(args.runs)]
        results["tiered_store_reads"] = _median([{k: run.get(k, 0.0) for k in runs[-1]} for run in runs])
    elif args.keep:
        results["tiers"] = _median([_kept(Path(args.keep), args.entries) for _ in range(args.runs)])
    elif not args.skip_tiers:
        runs = []
        for _ in range(args.runs):
            with tempfile.TemporaryDirectory() as folder:
                runs.append(_tiers(Path(folder), args.entries))
        results["tiers"] = _median(runs)
    if not args.skip_tiered:
        for in_flight in (1, 8):
            runs = []
            for _ in range(args.runs):
                with tempfile.TemporaryDirectory() as folder:
                    runs.append(asyncio.run(_tiered_store(Path(folder), args.entries, in_flight)))
            results[f"tiered_store_{in_flight}_in_flight"] = _median(runs)
    if args.http:
        http: dict[str, list[dict[str, float]]] = {"sqlite": [], "tiered": []}
        with tempfile.TemporaryDirectory() as folder:
            body = _http_body(Path(folder))
            for run in range(args.runs):
                for engine, engine_runs in http.items():
                    with tempfile.TemporaryDirectory() as scratch:
                        profile = Path(args.py_spy) if args.py_spy and run == 0 else None
                        engine_runs.append(_http(Path(scratch), engine, args.http, body, profile))
                        print(f"http run {run + 1} {engine}: {engine_runs[-1]}")
        for engine, runs in http.items():
            results[f"http_{engine}"] = _median(runs)
    if not args.skip_pages:
        results["pages"] = _median([_pages(args.entries, 0) for _ in range(args.runs)])
        results["pages_with_dictionary"] = _median([_pages(args.entries, 16) for _ in range(args.runs)])
    for group, figures in results.items():
        print(group, figures if group == "entries" else "")
        if group != "entries":
            for name, figure in figures.items():
                print(f"  {name:26s} {figure['median']:>12,.2f}   runs {figure['runs']}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
