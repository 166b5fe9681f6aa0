"""Crash safety of storage v2's compaction (decision 28): a writer and a compactor are killed with
SIGKILL at random moments, over and over, on the same two files; after each kill, once ``finish`` has
completed what was interrupted, every acknowledged entry is stored exactly once and no entry twice."""

from __future__ import annotations

import os
import random
import re
import secrets
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from logsvc.storage.tiers import ColdFile, HotFile, finish
from tests.conftest import eventually
from tests.crash.tiers_worker import ROWS_PER_GENERATION

ROUNDS = 50  # the figure
ROOT = Path(__file__).resolve().parents[2]


def start(role: str, tmp: Path, key: bytes, seed: int) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    args = [role, str(tmp / "hot.db"), str(tmp / "cold.db"), key.hex(), str(tmp / "acks"), str(seed)]
    with (tmp / f"{role}.log").open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.crash.tiers_worker", *args],
            env=env,
            cwd=ROOT,
            start_new_session=True,
            stderr=log,
        )


def kill(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


def acknowledged(acks: Path, *, growing: bool = False) -> set[bytes]:
    """The ids the writer recorded. ``growing``: read while it writes, when a read can see a write half
    copied (bytes not yet filled in), so lines that are not whole ids are left for a later read; once the
    writer is dead the file is settled and every line must be one."""
    if not acks.exists():
        return set()
    lines = acks.read_bytes().split(b"\n")[:-1]  # a line cut by the kill was never whole: not recorded
    if growing:
        lines = [line for line in lines if _ID_LINE.fullmatch(line)]
    return {bytes.fromhex(line.decode()) for line in lines}


_ID_LINE = re.compile(rb"[0-9a-f]{32}")


def check(tmp: Path, key: bytes, acked: set[bytes]) -> int:
    hot = HotFile(tmp / "hot.db", key, rows_per_generation=ROWS_PER_GENERATION)
    cold = ColdFile(tmp / "cold.db", key)
    try:
        finish(hot, cold)
        assert hot.check() == []
        stored: Counter[bytes] = Counter(row[1] for row in cold.rows())
        for generation in hot.generations(0, 1):
            stored.update(row[1] for row in hot.rows(generation))
    finally:
        hot.close()
        cold.close()
    missing = acked - stored.keys()
    assert not missing, f"{len(missing)} acknowledged entries are gone"
    assert not [log_id for log_id, n in stored.items() if n > 1], "an entry is stored twice"
    return len(stored)


@pytest.mark.crash
def test_acknowledged_entries_survive_sigkill_of_writer_and_compactor(tmp_path: Path) -> None:
    rng = random.Random(28)
    key = secrets.token_bytes(32)
    acks = tmp_path / "acks"
    stored = 0
    for round_ in range(ROUNDS):
        writer = start("writer", tmp_path, key, round_)
        compactor = start("compactor", tmp_path, key, round_)
        try:
            before = len(acknowledged(acks))
            target = before + rng.randrange(200, 4_000)
            assert eventually(lambda goal=target: len(acknowledged(acks, growing=True)) >= goal, 60), (  # type: ignore[misc]
                (tmp_path / "writer.log").read_text()
            )
            assert compactor.poll() is None, (tmp_path / "compactor.log").read_text()
            time.sleep(rng.uniform(0, 0.05))  # so the kills fall anywhere in a compaction
            first, second = rng.sample([writer, compactor], 2)
            kill(first)
            time.sleep(rng.choice([0, 0, rng.uniform(0, 0.05)]))
            kill(second)
        finally:
            kill(writer)
            kill(compactor)
        acked = acknowledged(acks)
        now = check(tmp_path, key, acked)
        assert now >= stored
        stored = now
    assert len(acknowledged(acks)) > ROUNDS * 200
