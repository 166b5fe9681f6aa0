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


class _Clients:
    """CLIENTS threads ingesting through a server, each acknowledged log_id in ``acked``."""

    def __init__(self, server: ServerProcess) -> None:
        self.acked: set[bytes] = set()
        self.lock = threading.Lock()
        self.refused: list[str] = []
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(
                target=client_loop, args=(server, self._stop, self.acked, self.lock, self.refused, n)
            )
            for n in range(CLIENTS)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def acknowledged(self, count: int = 50) -> None:
        """Wait for ``count`` more acknowledgements."""
        _wait_for_acknowledgements(self.acked, self.lock, count)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout=60)


def _two_workers(server: ServerProcess) -> int:
    """Start ``server``; its supervisor's pid once both workers run."""
    server.start()
    assert server.proc is not None
    supervisor = server.proc.pid
    assert eventually(lambda: len(_workers(supervisor)) == 2)
    return supervisor


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
    clients = _Clients(server)
    try:
        supervisor = _two_workers(server)
        clients.start()
        for _ in range(KILLS):
            clients.acknowledged()
            victim = rng.choice(_workers(supervisor))
            os.kill(victim, signal.SIGKILL)
            assert eventually(functools.partial(_replaced, supervisor, victim), seconds=60), "not replaced"
        clients.acknowledged()
        clients.stop()
        assert server.terminate() == 0
        with clients.lock:
            if engine == "tiered":
                stored = check(tiered, store_key(make_settings(data)), clients.acked)
            else:
                stored = check_store(data / "logs.db", clients.acked)
    finally:
        clients.stop()
        server.kill()
    assert not clients.refused, clients.refused[:3]
    assert stored >= len(clients.acked)
    print(f"{len(clients.acked)} entries acknowledged across {KILLS} kills of a worker; {stored} stored")


@pytest.mark.crash
def test_acknowledged_entries_survive_the_shared_writer_killed(tmp_path: Path) -> None:
    """The workers' one writer lives in the supervisor (decision 46): SIGKILL it while clients ingest. The
    workers write the store themselves from then on; a request whose reply the kill took is written again
    by its worker (a log_id already stored is skipped). Every acknowledged entry is stored, once."""
    data = tmp_path / "data"
    server = ServerProcess(data, "--workers", "2")
    clients = _Clients(server)
    try:
        supervisor = _two_workers(server)
        clients.start()
        clients.acknowledged(200)
        os.kill(supervisor, signal.SIGKILL)
        assert server.proc is not None
        server.proc.wait(timeout=30)
        clients.acknowledged(200)
        clients.stop()
    finally:
        clients.stop()
        server.kill()
    with clients.lock:
        stored = check_store(data / "logs.db", clients.acked)
    assert not clients.refused, clients.refused[:3]
    assert "this worker now writes the store" in server.log_path.read_text()
    print(f"{len(clients.acked)} entries acknowledged, the shared writer killed; {stored} stored")
