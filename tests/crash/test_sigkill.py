"""Crash safety: clients ingest while the server is killed with SIGKILL at random moments.

After every restart, every entry that was acknowledged with 201 must be there exactly once, and SQLite's
integrity check must pass.
"""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx
import pytest

from logsvc.crypto import store_key
from logsvc.crypto.sqlite import connect
from tests.conftest import ServerProcess, make_settings

KILLS = 20
CLIENTS = 6


def client_loop(
    server: ServerProcess,
    stop: threading.Event,
    acked: set[bytes],
    lock: threading.Lock,
    seed: int,
    *,
    sizes: tuple[int, ...] = (1, 1, 1, 5, 50),
    services: int = 0,
    timeout: float = 5,
) -> None:
    """A client posting batches of ``sizes`` (over ``services`` services, or the default one) until
    ``stop``, recording in ``acked`` the ids of every batch answered 201."""
    rng = random.Random(seed)
    with httpx.Client(base_url=server.url, timeout=timeout, headers=server.headers) as client:
        while not stop.is_set():
            size = rng.choice(sizes)
            batch: list[dict[str, str]] = [
                {"log_id": str(uuid.uuid4()), "message": f"crash test {rng.random()}"} for _ in range(size)
            ]
            if services:
                for entry in batch:
                    entry["service_name"] = f"svc-{rng.randrange(services)}"
            body = batch[0] if size == 1 else batch
            try:
                response = client.post(
                    "/logs", content=json.dumps(body), headers={"Content-Type": "application/json"}
                )
            except httpx.TransportError:
                time.sleep(0.01)
                continue
            if response.status_code == 201:
                with lock:
                    acked.update(uuid.UUID(e["log_id"]).bytes for e in batch)


def check_store(db: Path, acked: set[bytes]) -> int:
    key = store_key(make_settings(db.parent))
    conn = connect(db, key)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        stored = Counter(row[0] for row in conn.execute("SELECT log_id FROM logs"))
    finally:
        conn.close()
    missing = acked - stored.keys()
    assert not missing, f"{len(missing)} acknowledged entries are gone"
    assert not [log_id for log_id, n in stored.items() if n > 1], "an entry is stored twice"
    # The full-text index is written in the same transactions: it must agree with the table. (The check is
    # an INSERT into the index's control column, so it needs a writable connection; it changes nothing.)
    fts = connect(db, key)
    fts.set_busy_timeout(10_000)
    try:
        fts.execute("INSERT INTO logs_fts(logs_fts, rank) VALUES ('integrity-check', 1)")
    finally:
        fts.close()
    return len(stored)


@pytest.mark.crash
def test_acknowledged_entries_survive_sigkill(tmp_path: Path) -> None:
    rng = random.Random(2024)
    data = tmp_path / "data"
    server = ServerProcess(data)
    acked: set[bytes] = set()
    lock = threading.Lock()
    stored_before = 0
    try:
        for kill in range(KILLS):
            server.start()
            if kill:
                with lock:
                    stored_before = check_store(data / "logs.db", acked)
            stop = threading.Event()
            clients = [
                threading.Thread(target=client_loop, args=(server, stop, acked, lock, kill * 100 + n))
                for n in range(CLIENTS)
            ]
            for thread in clients:
                thread.start()
            time.sleep(rng.uniform(0.2, 0.8))
            server.kill()
            stop.set()
            for thread in clients:
                thread.join(timeout=30)
        server.start()
        with lock:
            stored = check_store(data / "logs.db", acked)
    finally:
        server.kill()
    assert stored >= stored_before
    print(f"{len(acked)} entries acknowledged across {KILLS} kills; {stored} stored")
    assert len(acked) > KILLS * 10, "the clients hardly got anything acknowledged: the test proved little"
