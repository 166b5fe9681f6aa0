"""The writer that the worker processes of ``serve --workers N`` share (decision 46), in one process here:
the supervisor's side (``serve_sqlite_writer``) and a worker's store sending it its rows over the real Unix
socket, both on one real SQLite file."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import apsw
import msgspec
import pytest

from logsvc.domain.entries import NewEntry
from logsvc.errors import StoreUnavailable
from logsvc.storage.shared_writer import serve_sqlite_writer
from logsvc.storage.sqlite import SQLiteStore
from logsvc.storage.sqlite_schema import new_rows
from logsvc.storage.sqlite_writer import encode_rows
from tests.conftest import Commits, eventually
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
    shared_commits = Commits()
    local_commits = Commits()
    shared = serve_sqlite_writer(path, None, shared_commits)
    sent = [entry(i, f"entry {i}") for i in range(40)]

    async def worker() -> None:
        store = SQLiteStore(path, on_commit=local_commits, shared_writer=shared.name)
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
    assert sum(local_commits) == 10  # stored: the 5 it wrote again were skipped
    assert _stored(path) == [(e.log_id, e.message) for e in sent]


def test_a_row_the_group_cannot_carry_fails_only_its_own_request_through_the_shared_writer(
    tmp_path: Path,
) -> None:
    path = tmp_path / "logs.db"
    shared = serve_sqlite_writer(path, None, Commits())
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
    commits = Commits()
    shared = serve_sqlite_writer(path, None, commits)
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


def _frame(*entries: NewEntry) -> bytes:
    """A worker's frame of one request holding ``entries``, as the workers encode it."""
    body = msgspec.msgpack.encode((1, [encode_rows(new_rows(entries))]))
    return len(body).to_bytes(4, "little") + body


def _as_nobody(act: Callable[[], bytes]) -> bytes:
    """What ``act`` returns, run in a child process as user 65534 (``nobody``); killed after 60 s, so that
    a broken server fails the test instead of hanging it."""
    readable, writable = os.pipe()
    try:
        child = os.fork()
        if child == 0:
            try:
                os.setuid(65534)
                os.write(writable, act())
            finally:
                os._exit(0)
        os.close(writable)
        if not eventually(lambda: os.waitpid(child, os.WNOHANG) != (0, 0), seconds=60):
            os.kill(child, signal.SIGKILL)
            os.waitpid(child, 0)
        return os.read(readable, 100)
    finally:
        os.close(readable)


def _send_and_read(name: str, frame: bytes) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(f"\0{name}")
        sock.settimeout(30)
        try:
            sock.sendall(frame)
            return sock.recv(100) or b"hung up"
        except (BrokenPipeError, ConnectionResetError):  # hung up before or after the frame
            return b"hung up"


needs_root = pytest.mark.skipif(os.getuid() != 0, reason="acting as another user needs root")


@needs_root
def test_the_shared_writer_serves_its_own_user_only(tmp_path: Path) -> None:
    """Its socket has no file modes (abstract namespace): the peer's user id is checked instead."""
    path = tmp_path / "logs.db"
    shared = serve_sqlite_writer(path, None, Commits())
    own, stranger = entry(1, "from this user"), entry(2, "from another user")
    try:
        assert _as_nobody(lambda: _send_and_read(shared.name, _frame(stranger))) == b"hung up"
        assert _send_and_read(shared.name, _frame(own)) != b"hung up"  # the reply
    finally:
        shared.stop()
    assert _stored(path) == [(own.log_id, own.message)]


@needs_root
def test_a_worker_sends_nothing_to_a_socket_another_user_holds(tmp_path: Path) -> None:
    """The supervisor was killed and another user bound its name: the worker must neither send its rows
    there nor take that user's replies for commits; it writes the store itself."""
    name = f"logsvc-writer-test-{os.getpid()}"
    path = tmp_path / "logs.db"

    def squat() -> bytes:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
            listener.bind(f"\0{name}")
            listener.listen()
            os.write(ready_w, b"1")
            connection, _ = listener.accept()
            connection.settimeout(30)
            received = b""
            while data := connection.recv(1 << 16):
                received += data
            return str(len(received)).encode()

    ready_r, ready_w = os.pipe()
    with ThreadPoolExecutor(1) as pool:
        squatter = pool.submit(_as_nobody, squat)
        assert os.read(ready_r, 1) == b"1"
        e = entry(1, "kept here")

        async def worker() -> None:
            store = SQLiteStore(path, shared_writer=name)
            try:
                await store.append([e])
            finally:
                await store.close()

        asyncio.run(worker())
        assert squatter.result(timeout=60) == b"0"
    os.close(ready_r)
    os.close(ready_w)
    assert _stored(path) == [(e.log_id, e.message)]


def test_a_request_whose_reply_is_lost_is_written_by_its_worker(tmp_path: Path) -> None:
    """The writer read the frame and hung up without a reply (the supervisor killed mid-commit, say): the
    worker writes the request itself, and the request returns."""
    name = f"logsvc-writer-test-{os.getpid()}-lost"
    path = tmp_path / "logs.db"
    received: list[bytes] = []

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(f"\0{name}")
        listener.listen()

        def read_one_frame_and_hang_up() -> None:
            connection, _ = listener.accept()
            with connection:
                received.append(connection.recv(1 << 16))

        with ThreadPoolExecutor(1) as pool:
            fake = pool.submit(read_one_frame_and_hang_up)
            e = entry(1, "written by its worker")

            async def worker() -> None:
                store = SQLiteStore(path, shared_writer=name)
                try:
                    await asyncio.wait_for(store.append([e]), timeout=60)
                finally:
                    await store.close()

            asyncio.run(worker())
            fake.result(timeout=60)
    assert received
    assert received[0]  # the frame was sent before the hang-up
    assert _stored(path) == [(e.log_id, e.message)]


def test_a_request_cancelled_while_its_worker_connects_leaves_the_others_connected(tmp_path: Path) -> None:
    path = tmp_path / "logs.db"
    commits = Commits()
    shared = serve_sqlite_writer(path, None, commits)
    first, second = entry(1, "cancelled"), entry(2, "sent after")

    async def worker() -> None:
        store = SQLiteStore(path, shared_writer=shared.name)
        try:
            cancelled = asyncio.ensure_future(store.append([first]))
            await asyncio.sleep(0)  # it waits for the connection now
            cancelled.cancel()
            with pytest.raises(asyncio.CancelledError):
                await cancelled
            await store.append([second])
        finally:
            await store.close()

    try:
        asyncio.run(worker())
    finally:
        shared.stop()
    assert commits == [1]  # through the shared writer
    assert _stored(path) == [(second.log_id, second.message)]
