"""The processes of the compaction crash test: ``writer`` appends batches and records each one after it
was acknowledged; ``compactor`` compacts sealed generations as they come. Run as
``python -m tests.crash.tiers_worker ROLE HOT COLD KEY_HEX ACK_FILE SEED``; both run until killed."""

from __future__ import annotations

import os
import random
import sys
import time
from pathlib import Path

from logsvc.storage.tiers import ColdFile, HotFile, compact, finish

ROWS_PER_GENERATION = 400


def writer(hot_path: Path, key: bytes, acks: Path, seed: int) -> None:
    rng = random.Random(seed)
    hot = HotFile(hot_path, key, rows_per_generation=ROWS_PER_GENERATION)
    fd = os.open(acks, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
    # A line the previous round's kill cut short was never a record: cut it off, or this round's first
    # line would be appended to it.
    recorded = os.read(fd, os.fstat(fd).st_size)
    os.ftruncate(fd, recorded.rfind(b"\n") + 1)
    number = 0
    while True:
        rows = []
        for _ in range(rng.choice([1, 10, 100, 250])):
            number += 1
            log_id = rng.randbytes(16)
            rows.append(
                (
                    log_id,
                    time.time_ns() // 1000 - rng.randrange(5_000_000),
                    "svc",
                    9,
                    "app",
                    f"m{number}",
                    None,
                    0,
                )
            )
        hot.append(rows)
        # Recorded only once the append returned: these are the acknowledged entries.
        os.write(fd, b"".join(row[0].hex().encode() + b"\n" for row in rows))


def compactor(hot_path: Path, cold_path: Path, key: bytes) -> None:
    hot = HotFile(hot_path, key, rows_per_generation=ROWS_PER_GENERATION)
    cold = ColdFile(cold_path, key)
    finish(hot, cold)
    while True:
        sealed = hot.sealed()
        for generation in sealed:
            compact(hot, cold, generation)
        if not sealed:
            time.sleep(0.005)


if __name__ == "__main__":
    role, hot_file, cold_file, key_hex, ack_file, seed_text = sys.argv[1:]
    if role == "writer":
        writer(Path(hot_file), bytes.fromhex(key_hex), Path(ack_file), int(seed_text))
    else:
        compactor(Path(hot_file), Path(cold_file), bytes.fromhex(key_hex))
