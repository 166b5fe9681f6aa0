"""``serve --workers N``: each worker accepts on a socket of its own on the shared port (decision 32)."""

from __future__ import annotations

import collections
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import ServerProcess, eventually


def _workers(supervisor: int) -> list[int]:
    """The worker processes of uvicorn's supervisor (its other child is multiprocessing's tracker)."""
    children = Path(f"/proc/{supervisor}/task/{supervisor}/children").read_text().split()
    return [int(pid) for pid in children if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()]


def _listening(server_port: int) -> int:
    """How many sockets listen on ``server_port`` (a worker's socket listens once the worker serves)."""
    lines = Path("/proc/net/tcp").read_text().splitlines()[1:]
    return sum(
        1
        for line in lines
        if int(line.split()[1].split(":")[1], 16) == server_port and line.split()[3] == "0A"
    )


def _holders(workers: list[int], server_port: int) -> collections.Counter[int]:
    """How many established connections to ``server_port`` each worker holds, from /proc."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == server_port and fields[3] == "01":  # 01: established
            inodes.add(f"socket:[{fields[9]}]")
    held: collections.Counter[int] = collections.Counter()
    for pid in workers:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                if os.readlink(fd) in inodes:
                    held[pid] += 1
            except OSError:
                continue
    return held


def test_connections_are_spread_over_the_workers(tmp_path: Path) -> None:
    """Opened at once, as a load generator or a pool opens them: the kernel gives each worker a share, not
    all to whichever worker was awake."""
    server = ServerProcess(tmp_path / "data", "--workers", "2")
    connections: list[socket.socket] = []
    try:
        server.start()
        assert server.proc is not None
        supervisor = server.proc.pid
        assert eventually(lambda: len(_workers(supervisor)) == 2)
        assert eventually(lambda: _listening(server.port) == 2), "the workers did not both start serving"
        workers = _workers(supervisor)
        connections = [socket.create_connection(("127.0.0.1", server.port), timeout=30) for _ in range(40)]
        assert eventually(lambda: sum(_holders(workers, server.port).values()) == 40)
        held = _holders(workers, server.port)
        # Spread by a hash of the addresses: fewer than 5 of 40 on one worker has a chance of about 1e-7.
        assert len(held) == 2, held
        assert min(held.values()) >= 5, held
        with httpx.Client(base_url=server.url, headers=server.headers, timeout=30) as client:
            assert client.post("/logs", json={"message": "served"}).status_code == 201
    finally:
        for connection in connections:
            connection.close()
        server.kill()


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_port_in_use_by_workers_is_not_shared_by_another_server(tmp_path: Path, workers: str) -> None:
    """The workers' sockets share their port with each other only: another server on it fails to start."""
    first = ServerProcess(tmp_path / "first", "--workers", "2")
    second = ServerProcess(tmp_path / "second")
    try:
        first.start()
        argv = [sys.executable, "-m", "logsvc", "serve", "--data-dir", str(second.data_dir)]
        argv += ["--port", str(first.port), "--workers", workers]
        refused = subprocess.run(
            argv, env=second.env, capture_output=True, text=True, timeout=99, check=False
        )
        assert refused.returncode != 0
        assert "address already in use" in (refused.stdout + refused.stderr).lower()
        with httpx.Client(base_url=first.url, headers=first.headers, timeout=30) as client:
            assert client.post("/logs", json={"message": "still the first"}).status_code == 201
    finally:
        first.kill()


def test_sighup_replaces_each_worker_on_its_socket(tmp_path: Path) -> None:
    """uvicorn's rolling restart: each replacement serves its predecessor's socket, so both sockets are
    served again afterwards and requests keep being answered."""
    server = ServerProcess(tmp_path / "data", "--workers", "2")
    try:
        server.start()
        assert server.proc is not None
        supervisor = server.proc.pid
        assert eventually(lambda: len(_workers(supervisor)) == 2)
        before = set(_workers(supervisor))
        os.kill(supervisor, signal.SIGHUP)
        assert eventually(
            lambda: not before & set(_workers(supervisor)) and len(_workers(supervisor)) == 2, 90
        )
        # New connections each, spread over both sockets: one that no worker served would time out.
        for _ in range(10):
            with httpx.Client(base_url=server.url, headers=server.headers, timeout=30) as client:
                assert client.post("/logs", json={"message": "after the restart"}).status_code == 201
    finally:
        server.kill()
