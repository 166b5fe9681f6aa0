"""Synthetic log entries: the request bodies of the ingest scenarios and the pre-filled store of the reads.

Everything is drawn from seeded generators, so every run (and the cached store) holds the same data.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import re
import time
from pathlib import Path
from typing import Any

import apsw
import uuid_utils

from logsvc.domain.entries import Level, NewEntry
from logsvc.storage.sqlite import SQLiteStore
from logsvc.storage.sqlite_schema import SCHEMA_VERSION

SERVICES = [f"svc-{i}" for i in range(20)]
# COMMON_WORD is put in about COMMON_SHARE of the messages, RARE_WORD in about one in RARE_EVERY; the
# vocabulary cannot spell either, as its words are consonant-vowel syllables without "z".
COMMON_WORD = "timeout"
COMMON_SHARE = 0.2
RARE_WORD = "zeppelin"
RARE_EVERY = 20_000
_LEVELS = list(Level)
_LEVEL_WEIGHTS = [5, 20, 50, 15, 8, 2]  # TRACE DEBUG INFO WARN ERROR FATAL
_SYLLABLES = [c + v for c in "bcdfghklmnprstvw" for v in "aeiou"]
# Bump when the generator changes, so that a cached store made by the old one is not reused.
_DATASET_VERSION = 1
_FILL_BATCH = 10_000
# Event times 10 ms apart: the 1,000,000-entry read store spans about 2.8 hours.
SPACING_US = 10_000
_CACHE_DIR = Path(__file__).resolve().parent / ".cache"


class Messages:
    """Log messages of a chosen length made of a fixed pseudo-word vocabulary (3,000 words)."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)
        vocabulary: set[str] = set()
        while len(vocabulary) < 3000:
            word = "".join(self._rng.choices(_SYLLABLES, k=self._rng.randint(2, 4)))
            vocabulary.add(word)
        self._vocabulary = sorted(vocabulary)

    def message(self, min_chars: int, max_chars: int) -> str:
        rng = self._rng
        # Words average about 7 characters with their space.
        words = rng.choices(self._vocabulary, k=rng.randint(min_chars, max_chars) // 7)
        if rng.random() < COMMON_SHARE:
            words.insert(rng.randrange(len(words) + 1), COMMON_WORD)
        if rng.random() < 1 / RARE_EVERY:
            words.insert(rng.randrange(len(words) + 1), RARE_WORD)
        return f"{' '.join(words)} id={rng.randrange(1_000_000)}"

    def level(self) -> Level:
        return self._rng.choices(_LEVELS, _LEVEL_WEIGHTS)[0]

    def service(self) -> str:
        return self._rng.choice(SERVICES)


def single_entry_body() -> bytes:
    """One entry of 160 bytes (an 89-character message): the body of scenario 2 and of ceiling A."""
    message = Messages(seed=1).message(90, 100)
    return json.dumps(
        {"service_name": "bench", "level": "INFO", "message": message, "metadata": {"k": 1}},
        separators=(",", ":"),
    ).encode()


def batch_entries(count: int) -> list[dict[str, Any]]:
    """Entries of about 200 bytes of JSON each, as the batched ingest scenario and ceiling B write them."""
    messages = Messages(seed=2)
    return [
        {
            "service_name": messages.service(),
            "level": messages.level().name,
            "message": messages.message(110, 130),
            "metadata": {"k": i, "host": f"host-{i % 7}"},
        }
        for i in range(count)
    ]


def batch_body(entries: list[dict[str, Any]]) -> bytes:
    return json.dumps(entries, separators=(",", ":")).encode()


def schema_fingerprint(scratch: Path) -> str:
    """A short hash of the schema a fresh store creates: a cached store is reused only while it matches."""
    path = scratch / "schema-probe.db"
    asyncio.run(SQLiteStore(path, read_threads=1).close())
    conn = apsw.Connection(str(path))
    try:
        schema = conn.execute("SELECT type, name, sql FROM sqlite_master ORDER BY type, name").fetchall()
        # Settings such as FTS5's automerge live in rows of its _config table, not in the schema text.
        settings = [
            conn.execute(f'SELECT * FROM "{name}" ORDER BY 1').fetchall()  # noqa: S608 (a name from the schema)
            for _type, name, _sql in schema
            if str(name).endswith("_config")
        ]
    finally:
        conn.close()
    return hashlib.sha256(repr((schema, settings)).encode()).hexdigest()[:12]


def cached_store(entries: int, scratch: Path, spacing_us: int = SPACING_US) -> tuple[Path, dict[str, Any]]:
    """The path of a store of `entries` entries for the read scenarios, built (slowly) only if not cached;
    their event times are `spacing_us` apart, ending at the time it was built.

    The returned file must not be modified: copy it before serving it.
    """
    _CACHE_DIR.mkdir(exist_ok=True)
    # The directory holds large generated files only; this keeps them out of git without touching the
    # project's .gitignore.
    (_CACHE_DIR / ".gitignore").write_text("*\n")
    spread = "" if spacing_us == SPACING_US else f"-every{spacing_us}us"
    stem = f"store-v{SCHEMA_VERSION}-{schema_fingerprint(scratch)}-d{_DATASET_VERSION}{spread}-{entries}"
    path = _CACHE_DIR / f"{stem}.db"
    info_path = _CACHE_DIR / f"{stem}.json"
    if path.exists() and info_path.exists():
        info: dict[str, Any] = json.loads(info_path.read_text())
        return path, info | {"cached": True}
    for stale in _CACHE_DIR.glob(f"store-*-{entries}.*"):
        spaced = re.search(r"-every(\d+)us-", stale.name)
        if (int(spaced[1]) if spaced else SPACING_US) == spacing_us:  # a store of this kind, made before
            stale.unlink()
    partial = _CACHE_DIR / f"{stem}.partial"
    try:
        started = time.monotonic()
        asyncio.run(_fill(partial, entries, spacing_us))
        seconds = time.monotonic() - started
        info = _describe(partial) | {"entries": entries, "build_seconds": round(seconds, 1)}
        info_path.write_text(json.dumps(info, indent=2) + "\n")
        partial.replace(path)
    finally:
        for leftover in _CACHE_DIR.glob(f"{stem}.partial*"):
            leftover.unlink()
    return path, info | {"cached": False}


async def _fill(path: Path, count: int, spacing_us: int) -> None:
    """Append through the store's own write path, so indexes, FTS and watermarks are exactly as served."""
    store = SQLiteStore(path, read_threads=1)
    messages = Messages(seed=3)
    rng = random.Random(4)
    start_us = time.time_ns() // 1000 - count * spacing_us
    pending: asyncio.Future[None] | None = None
    try:
        for first in range(0, count, _FILL_BATCH):
            batch = []
            for i in range(first, min(first + _FILL_BATCH, count)):
                # Increasing event times with some jitter, so arrival order and time order differ a little.
                ts = start_us + i * spacing_us + rng.randrange(-50_000, 50_000)
                batch.append(
                    NewEntry(
                        log_id=uuid_utils.uuid7().bytes,
                        service_name=messages.service(),
                        ts_us=ts,
                        level=messages.level(),
                        log_type="application",
                        message=messages.message(60, 140),
                        metadata=f'{{"k":{i}}}',
                        received_us=ts + 1_000,
                    )
                )
            # One batch commits while the next one is generated.
            if pending is not None:
                await pending
            pending = asyncio.ensure_future(store.append(batch))
        if pending is not None:
            await pending
    finally:
        await store.close()


def _describe(path: Path) -> dict[str, Any]:
    conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
    try:

        def matches(word: str) -> int:
            row = conn.execute("SELECT count(*) FROM logs_fts WHERE logs_fts MATCH ?", (word,)).fetchone()
            return int(row[0]) if row else 0

        return {
            "common_word": COMMON_WORD,
            "common_word_matches": matches(COMMON_WORD),
            "rare_word": RARE_WORD,
            "rare_word_matches": matches(RARE_WORD),
            "bytes": path.stat().st_size,
        }
    finally:
        conn.close()
