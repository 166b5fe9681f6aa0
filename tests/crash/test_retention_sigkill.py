"""Crash safety of retention over the two tiers (decision 35): a sweep is killed with SIGKILL at random
moments, over and over; once a sweep completes, the entries left and every rollup count are today's
store's after the same retention (a count is never taken off twice, nor left for a deleted entry)."""

from __future__ import annotations

import asyncio
import os
import random
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

from logsvc.storage.sqlite import SQLiteStore
from logsvc.storage.tiers import ColdFile, HotFile, compact
from tests.integration.tiered_reference import (
    BASE_US,
    append_sqlite,
    append_tiered,
    batch,
    counts,
    sqlite_counts,
    sqlite_rows,
    tiered_rows,
)

ROUNDS = 12
ROOT = Path(__file__).resolve().parents[2]
KEY = secrets.token_bytes(32)


def test_retention_killed_at_random_moments_ends_as_todays_store(tmp_path: Path) -> None:
    directory = tmp_path / "v2"
    reference = SQLiteStore(tmp_path / "logs.db", key=KEY, read_threads=1)
    hot = HotFile(directory / "hot.db", KEY, rows_per_generation=1500)
    cold = ColdFile(directory / "cold.db", KEY)
    try:
        for first in range(0, 36_000, 1000):
            rows = batch(first, 1000)
            append_sqlite(reference, rows)
            append_tiered(hot, rows)
        for generation in hot.sealed()[:-2]:  # some generations still hot: the sweep compacts them
            compact(hot, cold, generation)
    finally:
        hot.close()
        cold.close()
    cutoff = BASE_US + 3500 * 1_500_000
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    args = [sys.executable, "-m", "tests.crash.retention_worker", str(directory), KEY.hex(), str(cutoff)]
    chance = random.Random(7)
    killed = 0
    for _ in range(ROUNDS):
        process = subprocess.Popen(
            args, env=env, cwd=ROOT, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        assert process.stdout is not None
        steps = chance.randint(1, 2)  # a step deletes about a page: the sweep is some forty steps
        # Killed a random number of steps in, at a random moment of the next step's three transactions.
        if all(process.stdout.readline() for _ in range(steps)):
            time.sleep(chance.uniform(0, 0.02))
            os.killpg(process.pid, signal.SIGKILL)
            killed += 1
        _, errors = process.communicate(timeout=60)
        assert process.returncode in (0, -signal.SIGKILL), errors.decode()
    assert killed >= 8, "the sweep should be killed before it completes, round after round"
    assert subprocess.run(args, env=env, cwd=ROOT, check=False, timeout=300).returncode == 0
    try:
        while asyncio.run(reference.delete_older(cutoff, exclude=("svc-0",), limit=10_000)) >= 10_000:
            pass
    finally:
        asyncio.run(reference.close())
    hot, cold = HotFile(directory / "hot.db", KEY), ColdFile(directory / "cold.db", KEY)
    try:
        assert tiered_rows(hot, cold) == sqlite_rows(tmp_path / "logs.db", KEY)
        assert counts(hot.connection) == sqlite_counts(tmp_path / "logs.db", KEY)
        assert hot.select("SELECT count(*) FROM retention_pending") == [(0,)]
    finally:
        hot.close()
        cold.close()
