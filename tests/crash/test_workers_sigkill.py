"""Crash safety with ``--workers 2``: one worker at a time is killed with SIGKILL while clients ingest through
both, and the supervisor starts its replacement on the worker's own socket.

Clients retry a request that got no answer or a 5xx with the same entries (retries are idempotent). At the
end every entry that was acknowledged with 201 must be stored exactly once.
"""

from __future__ import annotations

import functools
import json
import os
import random
import signal
import threading
import uuid
from pathlib import Path

import httpx
import pytest

from logsvc.crypto import store_key
from tests.conftest import ServerProcess, eventually, make_settings
from tests.crash.test_sigkill import check_store
from tests.crash.test_tiered_sigkill import check

KILLS = 5
CLIENTS = 6
_RETRIES = 50


def _workers(supervisor: int) -> list[int]:
    """The worker processes of uvicorn's supervisor (its other child is multiprocessing's tracker)."""
    children = Path(f"/proc/{supervisor}/task/{supervisor}/children").read_text().split()
    found = []
    for pid in children:
        try:
            if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(int(pid))
        except OSError:
            continue
    return found


def _wait_for_acknowledgements(acked: set[bytes], lock: threading.Lock, count: int = 50) -> None:
    with lock:
        target = len(acked) + count
    assert eventually(lambda: len(acked) >= target, seconds=60), "the clients got no acknowledgements"


def _replaced(supervisor: int, victim: int) -> bool:
    workers = _workers(supervisor)
    return len(workers) == 2 and victim not in workers


def client_loop(
    server: ServerProcess,
    stop: threading.Event,
    acked: set[bytes],
    lock: threading.Lock,
    refused: list[str],
    seed: int,
) -> None:
    rng = random.Random(seed)
    # A new connection now and then, so that each client reaches both workers' sockets over the run.
    while not stop.is_set():
        with httpx.Client(base_url=server.url, timeout=10, headers=server.headers) as client:
            for _ in range(20):
                if stop.is_set():
                    return
                size = rng.choice([1, 1, 1, 5, 20])
                batch = [
                    {"log_id": str(uuid.uuid4()), "message": f"workers crash test {rng.random()}"}
                    for _ in range(size)
                ]
                body = json.dumps(batch[0] if size == 1 else batch)
                for _ in range(_RETRIES):
                    try:
                        response = client.post(
                            "/logs", content=body, headers={"Content-Type": "application/json"}
                        )
                    except httpx.TransportError:
                        continue  # the worker died with the request: the same entries again
                    if response.status_code == 201:
                        with lock:
                            acked.update(uuid.UUID(e["log_id"]).bytes for e in batch)
                        break
                    if response.status_code < 500:
                        refused.append(f"{response.status_code} {response.text}")
                        return
                    if stop.is_set():
                        return


@pytest.mark.crash
@pytest.mark.parametrize("engine", ["sqlite", "tiered"])
def test_acknowledged_entries_survive_a_worker_killed(tmp_path: Path, engine: str) -> None:
    """Both workers write one store; for the tiered store each worker also starts a compactor, of which one
    at a time compacts (small generations here, so compactions run all along and a kill meets one)."""
    rng = random.Random(15)
    data = tmp_path / "data"
    tiered = data / "logs-v2"
    store = ("--store", f"tiered:///{tiered}?generation_rows=300") if engine == "tiered" else ()
    server = ServerProcess(data, "--workers", "2", *store, env={"LOGSVC_STORE_ENGINE": engine})
    acked: set[bytes] = set()
    lock = threading.Lock()
    stop = threading.Event()
    refused: list[str] = []
    clients = [
        threading.Thread(target=client_loop, args=(server, stop, acked, lock, refused, n))
        for n in range(CLIENTS)
    ]
    try:
        server.start()
        assert server.proc is not None
        supervisor = server.proc.pid
        assert eventually(lambda: len(_workers(supervisor)) == 2)
        for thread in clients:
            thread.start()
        for _ in range(KILLS):
            _wait_for_acknowledgements(acked, lock)
            victim = rng.choice(_workers(supervisor))
            os.kill(victim, signal.SIGKILL)
            assert eventually(functools.partial(_replaced, supervisor, victim), seconds=60), "not replaced"
        _wait_for_acknowledgements(acked, lock)
        stop.set()
        for thread in clients:
            thread.join(timeout=60)
        assert server.terminate() == 0
        with lock:
            if engine == "tiered":
                stored = check(tiered, store_key(make_settings(data)), acked)
            else:
                stored = check_store(data / "logs.db", acked)
    finally:
        stop.set()
        server.kill()
    assert not refused, refused[:3]
    assert stored >= len(acked)
    print(f"{len(acked)} entries acknowledged across {KILLS} kills of a worker; {stored} stored")


@pytest.mark.crash
def test_acknowledged_entries_survive_the_shared_writer_killed(tmp_path: Path) -> None:
    """The workers' one writer lives in the supervisor (decision 46): SIGKILL it while clients ingest. The
    workers write the store themselves from then on; a request whose reply the kill took is written again
    by its worker (a log_id already stored is skipped). Every acknowledged entry is stored, once."""
    data = tmp_path / "data"
    server = ServerProcess(data, "--workers", "2")
    acked: set[bytes] = set()
    lock = threading.Lock()
    stop = threading.Event()
    refused: list[str] = []
    clients = [
        threading.Thread(target=client_loop, args=(server, stop, acked, lock, refused, n))
        for n in range(CLIENTS)
    ]
    try:
        server.start()
        assert server.proc is not None
        supervisor = server.proc.pid
        assert eventually(lambda: len(_workers(supervisor)) == 2)
        for thread in clients:
            thread.start()
        _wait_for_acknowledgements(acked, lock, 200)
        os.kill(supervisor, signal.SIGKILL)
        server.proc.wait(timeout=30)
        _wait_for_acknowledgements(acked, lock, 200)
        stop.set()
        for thread in clients:
            thread.join(timeout=60)
    finally:
        stop.set()
        server.kill()
    with lock:
        stored = check_store(data / "logs.db", acked)
    assert not refused, refused[:3]
    assert "this worker now writes the store" in server.log_path.read_text()
    print(f"{len(acked)} entries acknowledged, the shared writer killed; {stored} stored")
