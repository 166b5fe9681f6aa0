"""Storage v2 baselines on the template data (issue 14; not part of ``make bench``).

``python -m benchmarks.storage_v2 --entries 1000000 --runs 3`` measures, on the realistic template data of
``benchmarks/templates.py``:

- the current store (SQLiteStore, encrypted as a server runs it): in-process durable ingest with one
  1,000-entry batch in flight, each acknowledged after its COMMIT; entries/s of the time spent in
  ``append`` (generation excluded), CPU µs per entry in that time, and bytes on disk per entry (database,
  WAL and shared memory after close) against the raw NDJSON of the same entries;
- the cold page encoding (``logsvc.storage.pages``) of the same entries in pages of 1,024 sorted by event
  time: bytes per entry (pages, summaries and token filters), and the encoding's CPU µs per entry, with
  and without a zstd dictionary trained on the first pages.

Each figure is the median of ``--runs`` runs; the machine is shared, so the spread is printed too.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.templates import TemplateData, raw_ndjson
from logsvc.domain.entries import NewEntry
from logsvc.storage.pages import PAGE_ENTRIES, PageCodec, Row, train_dictionary
from logsvc.storage.sqlite import SQLiteStore

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


def _rows(batch: list[NewEntry], first_seq: int) -> list[Row]:
    return [
        (
            first_seq + i,
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


def _pages(count: int, dictionary_pages: int) -> dict[str, float]:
    """Every entry in pages of PAGE_ENTRIES (arrival order is event order here, within the jitter)."""
    data = TemplateData()
    raw = 0
    encoded = 0
    cpu = 0.0
    codec = PageCodec()
    pending: list[Row] = []
    seq = 1
    for batch in data.batches(count, PAGE_ENTRIES):
        raw += sum(len(raw_ndjson(entry)) for entry in batch)
        rows = sorted(_rows(batch, seq), key=lambda row: (row[2], row[0]))
        seq += len(rows)
        if dictionary_pages and codec.dictionary is None:
            pending.append(rows)  # type: ignore[arg-type]
            if len(pending) < dictionary_pages:
                continue
            started = time.process_time()
            codec = PageCodec(train_dictionary([row for page in pending for row in page]))  # type: ignore[attr-defined]
            cpu += time.process_time() - started
            held, pending = pending, []
            encoded += len(codec.dictionary or b"")
            for page in held:
                started = time.process_time()
                blob, summary = codec.encode(page)  # type: ignore[arg-type]
                cpu += time.process_time() - started
                encoded += len(blob) + len(summary.to_bytes())
            continue
        started = time.process_time()
        blob, summary = codec.encode(rows)
        cpu += time.process_time() - started
        encoded += len(blob) + len(summary.to_bytes())
    return {"bytes_per_entry": encoded / count, "x_raw": encoded / raw, "cpu_us_per_entry": cpu / count * 1e6}


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
    parser.add_argument("--skip-store", action="store_true", help="measure the page encoding only")
    args = parser.parse_args()
    results: dict[str, Any] = {"entries": args.entries}
    if not args.skip_store:
        runs = []
        for _ in range(args.runs):
            with tempfile.TemporaryDirectory() as folder:
                runs.append(asyncio.run(_ingest(Path(folder) / "logs.db", args.entries)))
        results["sqlite_store"] = _median(runs)
    results["pages"] = _median([_pages(args.entries, 0) for _ in range(args.runs)])
    results["pages_with_dictionary"] = _median([_pages(args.entries, 16) for _ in range(args.runs)])
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
