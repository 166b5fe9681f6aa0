"""Crash safety of the tiered store (decision 33): clients ingest over HTTP while the server process and
its compactor process are killed with SIGKILL at random moments, over and over, with generations small
enough that kills fall in compactions often.

A round kills, at random: the compactor alone (the server restarts it, and ingest goes on), then the
server's whole process group; or the server process alone (its compactor sees its pipe close and exits,
wherever it is); or both together. After each round the two files are read directly: once ``finish`` has
completed what was interrupted, every entry acknowledged with 201 is stored exactly once, the files pass
SQLite's integrity checks, and the counts (``service_counts``, written in each append's transaction and
never changed by a compaction) add up to the entries stored.

``TIERED_CRASH_ROUNDS`` sets the number of rounds (the suite's default keeps it near a minute; the issue's
50 rounds were run with ``TIERED_CRASH_ROUNDS=50``, see decision 33).
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections import Counter
from functools import partial
from pathlib import Path

import pytest

from logsvc.crypto import store_key
from logsvc.storage.tiers import ColdFile, HotFile, finish
from tests.conftest import ServerProcess, eventually, make_settings
from tests.crash.test_sigkill import client_loop
from tests.integration.test_tiered_server import alive, compactor_of

ROUNDS = int(os.environ.get("TIERED_CRASH_ROUNDS", "15"))
CLIENTS = 4
GENERATION_ROWS = 300


def gone(pid: int) -> bool:
    return not alive(pid)


def check(directory: Path, key: bytes | None, acked: set[bytes]) -> int:
    hot = HotFile(directory / "hot.db", key)
    cold = ColdFile(directory / "cold.db", key)
    try:
        finish(hot, cold)
        assert hot.check() == []
        stored: Counter[bytes] = Counter(row[1] for row in cold.rows())
        for generation in hot.generations(0, 1):
            stored.update(row[1] for row in hot.rows(generation))
        (counted,) = hot.connection.execute("SELECT coalesce(sum(n), 0) FROM service_counts").fetchone()
    finally:
        hot.close()
        cold.close()
    missing = acked - stored.keys()
    assert not missing, f"{len(missing)} acknowledged entries are gone"
    assert not [log_id for log_id, n in stored.items() if n > 1], "an entry is stored twice"
    assert counted == sum(stored.values()), "the counts do not add up to the entries stored"
    return len(stored)


@pytest.mark.crash
def test_acknowledged_entries_survive_sigkill_of_server_and_compactor(tmp_path: Path) -> None:
    rng = random.Random(33)
    data = tmp_path / "data"
    directory = data / "logs-v2"
    server = ServerProcess(
        data,
        "--store",
        f"tiered:///{directory}?generation_rows={GENERATION_ROWS}",
        env={"LOGSVC_STORE_ENGINE": "tiered"},
    )
    key = store_key(make_settings(data))
    acked: set[bytes] = set()
    lock = threading.Lock()
    stored = 0
    ways = Counter[str]()
    try:
        for round_ in range(ROUNDS):
            server.start()
            assert server.proc is not None
            stop = threading.Event()
            clients = [
                threading.Thread(
                    target=client_loop,
                    args=(server, stop, acked, lock, round_ * 100 + n),
                    kwargs={"sizes": (1, 10, 100, 250), "services": 5, "timeout": 10},
                )
                for n in range(CLIENTS)
            ]
            for thread in clients:
                thread.start()
            try:
                assert eventually(lambda: compactor_of(server) is not None, 30)
                compactor = compactor_of(server)
                assert compactor is not None
                time.sleep(rng.uniform(0.3, 1.5))
                way = rng.choice(["compactor first", "server alone", "both"])
                ways[way] += 1
                if way == "compactor first":
                    os.kill(compactor, signal.SIGKILL)
                    time.sleep(rng.uniform(0, 1.5))  # restarted meanwhile, most often
                    server.kill()
                elif way == "server alone":
                    os.kill(server.proc.pid, signal.SIGKILL)
                    server.proc.wait(timeout=30)
                else:
                    server.kill()
                assert eventually(partial(gone, compactor), 30), "the compactor outlived its server"
                server.kill()  # a compactor restarted after the first kill, too
            finally:
                stop.set()
                for thread in clients:
                    thread.join(timeout=30)
            with lock:
                now = check(directory, key, acked)
            assert now >= stored
            stored = now
    finally:
        server.kill()
    print(f"{ROUNDS} rounds {dict(ways)}: {len(acked)} entries acknowledged, {stored} stored")
    assert len(acked) > ROUNDS * 500, "the clients hardly got anything acknowledged: the test proved little"
