"""The writer that the worker processes of ``serve --workers N`` share (decision 46), in one process here:
the supervisor's side (``serve_sqlite_writer``) and a worker's store sending it its rows over the real Unix
socket, both on one real SQLite file."""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

import apsw
import msgspec
import pytest

from logsvc.errors import StoreUnavailable
from logsvc.storage.shared_writer import serve_sqlite_writer
from logsvc.storage.sqlite import SQLiteStore
from tests.integration.test_sqlite_store import entry


def _stored(path: Path) -> list[tuple[bytes, str]]:
    conn = apsw.Connection(str(path))
    try:
        return conn.execute("SELECT log_id, message FROM logs ORDER BY seq").fetchall()
    finally:
        conn.close()


def test_a_workers_rows_are_committed_by_the_shared_writer_and_by_its_own_once_that_is_gone(
    tmp_path: Path,
) -> None:
    path = tmp_path / "logs.db"
    shared_commits: list[int] = []
    local_commits: list[int] = []
    shared = serve_sqlite_writer(path, None, shared_commits.append)
    sent = [entry(i, f"entry {i}") for i in range(40)]

    async def worker() -> None:
        store = SQLiteStore(path, on_commit=local_commits.append, shared_writer=shared.name)
        try:
            await asyncio.gather(*(store.append([e]) for e in sent[:30]))
            await asyncio.to_thread(shared.stop)
            assert sum(shared_commits) == 30
            assert not local_commits
            # The reply of a request can be lost with the writer: its worker writes it again, and a log_id
            # the store holds is skipped.
            await asyncio.gather(*(store.append([e]) for e in sent[25:]))
        finally:
            await store.close()

    asyncio.run(worker())
    assert sum(local_commits) == 15
    assert _stored(path) == [(e.log_id, e.message) for e in sent]


def test_a_row_the_group_cannot_carry_fails_only_its_own_request_through_the_shared_writer(
    tmp_path: Path,
) -> None:
    path = tmp_path / "logs.db"
    shared = serve_sqlite_writer(path, None, lambda count: None)
    good, bad = entry(1, "kept"), entry(2, "short id")
    bad = msgspec.structs.replace(bad, log_id=bad.log_id[:15])

    async def worker() -> list[BaseException | None]:
        store = SQLiteStore(path, shared_writer=shared.name)
        try:
            return await asyncio.gather(store.append([good]), store.append([bad]), return_exceptions=True)
        finally:
            await store.close()

    try:
        outcomes = asyncio.run(worker())
    finally:
        shared.stop()
    assert outcomes[0] is None
    assert isinstance(outcomes[1], StoreUnavailable)
    assert _stored(path) == [(good.log_id, "kept")]


def test_a_frame_the_shared_writer_cannot_read_ends_only_its_own_connection(tmp_path: Path) -> None:
    path = tmp_path / "logs.db"
    commits: list[int] = []
    shared = serve_sqlite_writer(path, None, commits.append)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as stranger:
            stranger.connect(f"\0{shared.name}")
            stranger.sendall(b"\x05\x00\x00\x00hello")
            stranger.settimeout(30)
            assert stranger.recv(100) == b""  # hung up

        async def worker() -> None:
            store = SQLiteStore(path, shared_writer=shared.name)
            try:
                await store.append([entry(1, "after the stranger")])
            finally:
                await store.close()

        asyncio.run(worker())
    finally:
        shared.stop()
    assert commits == [1]


@pytest.mark.skipif(os.getuid() != 0, reason="connecting as another user needs root")
def test_the_shared_writer_serves_its_own_user_only(tmp_path: Path) -> None:
    """Its socket has no file modes (abstract namespace): the peer's user id is checked instead."""
    path = tmp_path / "logs.db"
    shared = serve_sqlite_writer(path, None, lambda count: None)
    e = entry(1, "from another user")
    body = msgspec.msgpack.encode([1, [[[e.log_id, e.ts_us, e.service_name, 3, "application", e.message]]]])
    frame = len(body).to_bytes(4, "little") + body
    readable, writable = os.pipe()
    try:
        child = os.fork()
        if child == 0:  # the stranger: another user, who can reach the abstract namespace
            try:
                os.setuid(65534)
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as stranger:
                    stranger.connect(f"\0{shared.name}")
                    stranger.settimeout(30)
                    try:
                        stranger.sendall(frame)
                        answered = stranger.recv(100)
                    except (BrokenPipeError, ConnectionResetError):  # hung up before or after the frame
                        answered = b""
                    os.write(writable, b"hung up" if answered == b"" else b"answered")
            finally:
                os._exit(0)
        os.close(writable)
        os.waitpid(child, 0)
        answer = os.read(readable, 100)
    finally:
        os.close(readable)
        shared.stop()
    assert answer == b"hung up"
    assert _stored(path) == []
