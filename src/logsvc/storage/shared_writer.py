"""One writer for the SQLite store of every worker process (``serve --workers N``; decision 46).

Workers that each wrote the file took turns through a lock (decisions 26 and 32): every turn committed a
small group, and found SQLite's page cache stale after the other worker's commit, so it read and decrypted
again the pages it was about to write. Here the supervisor process holds the store's one writer thread
(``sqlite_writer``, with its group commit) and serves it on a Unix socket. Each worker sends it the rows
of its requests, one frame per turn of its event loop (``LoopBatches``), and answers a
request once the reply says that the transaction holding its rows committed.

A frame is a 4-byte little-endian length and a MessagePack body: ``[frame id, [rows of each request]]``
from a worker (each request's rows ``Encoded``), ``[frame id, [null or [error code, detail] for each
request]]`` back.

A worker that cannot reach the shared writer (the supervisor was killed) writes through its own writer
from then on, taking turns with any other as before. Its requests still waiting for a reply are written
there again: safe, since a log_id already stored for its service is skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import os
import secrets
import socket
import struct
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import msgspec

from logsvc.errors import LogServiceError, StoreFull, StoreUnavailable
from logsvc.storage.port import OnCommit
from logsvc.storage.sqlite_schema import open_connection
from logsvc.storage.sqlite_writer import encode_rows, sqlite_writer
from logsvc.storage.writer import Encoded, Frame, LoopBatches, Rows, Writer, translate

__all__ = ["SharedWriter", "WriterClient", "serve_sqlite_writer"]

log = logging.getLogger("logsvc.storage.sqlite")

_LENGTH: Final = struct.Struct("<I")
# A request's outcome in a reply: None (committed) or the error's code and detail.
Outcome = tuple[str, str] | None
_REQUESTS: Final = msgspec.msgpack.Decoder(tuple[int, list[Encoded]])
_REPLIES: Final = msgspec.msgpack.Decoder(tuple[int, list[Outcome]])
_ENCODER: Final = msgspec.msgpack.Encoder()
_ERRORS: Final[dict[str, type[LogServiceError]]] = {StoreFull.code: StoreFull}
_READ_BYTES: Final = 1 << 18
_SEND_TIMEOUT: Final = struct.pack("ll", 5, 0)  # SO_SNDTIMEO's struct timeval on 64-bit Linux: 5 s


def _address(name: str) -> str:
    return f"\0{name}"


def _framed(message: object) -> bytes:
    body = _ENCODER.encode(message)
    return _LENGTH.pack(len(body)) + body


class _Frames:
    """Whole frames out of a byte stream, as they complete."""

    def __init__(self, decode: Callable[[memoryview], Any]) -> None:
        self._decode = decode
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[Any]:
        buffer = self._buffer
        buffer += data
        messages = []
        start = 0
        with memoryview(buffer) as view:
            while len(buffer) - start >= _LENGTH.size:
                (length,) = _LENGTH.unpack_from(buffer, start)
                end = start + _LENGTH.size + length
                if end > len(buffer):
                    break
                messages.append(self._decode(view[start + _LENGTH.size : end]))
                start = end
        del buffer[:start]
        return messages


def serve_sqlite_writer(path: Path, key: bytes | None, on_commit: OnCommit) -> SharedWriter:
    """The one writer of the SQLite store at ``path``, serving the workers from now on."""
    shared = SharedWriter(sqlite_writer(open_connection(path, key, write=True), on_commit))
    shared.start()
    return shared


class SharedWriter:
    """The supervisor's side: ``writer`` served to the workers on a Unix socket (named ``name``), a thread
    reading each worker's frames into it; the writer thread replies once a frame's transaction returned.
    ``stop`` finishes every accepted write and closes the writer."""

    def __init__(self, writer: Writer[Any]) -> None:
        self._writer = writer
        # In Linux's abstract namespace: no file to leave behind when the supervisor is killed, and no limit
        # from the length of the data directory's path. It has no file modes, and its names are listed in
        # /proc/net/unix: each side checks that the other runs as this user (who can write the store file
        # anyway).
        self.name = f"logsvc-writer-{secrets.token_hex(12)}"
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._lock = threading.Lock()
        self._connections: set[_Connection] = set()
        self._readers: set[threading.Thread] = set()
        self._accepting = threading.Thread(target=self._accept, name="logsvc-writer-accept", daemon=True)
        self._stopping = False
        self._refusals = _Rarely()

    def start(self) -> None:
        self._listener.bind(_address(self.name))
        self._listener.listen()
        self._accepting.start()

    def stop(self) -> None:
        """After the workers: close the socket, then write what was read and close the writer."""
        self._stopping = True
        # shutdown(), unlike close(), wakes the threads blocked in accept() and recv() on these sockets.
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._accepting.join()
        with self._lock:
            connections, readers = list(self._connections), list(self._readers)
        for connection in connections:
            connection.hang_up()
        for thread in readers:
            thread.join()
        asyncio.run(self._writer.close())
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self._listener.accept()
            except OSError as exc:
                if self._stopping:
                    return
                if self._refusals.now("accept"):
                    log.error("the shared writer cannot accept a connection: %s", exc)
                time.sleep(0.1)  # out of file descriptors, say: no busy loop while it lasts
                continue
            try:
                self._serve(sock)
            except Exception as exc:  # no thread, say: the worker sees the hang-up and writes itself
                if self._refusals.now("serve"):
                    log.error("the shared writer cannot serve a connection: %s", exc)
                sock.close()

    def _serve(self, sock: socket.socket) -> None:
        uid = _peer_uid(sock)
        if uid != os.getuid():
            if self._refusals.now("uid"):
                log.error("refused a connection to the shared writer from user id %d", uid)
            sock.close()
            return
        # A worker that stops reading must not hold the writer thread up in a reply for long.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, _SEND_TIMEOUT)
        connection = _Connection(sock)
        reader = threading.Thread(
            target=self._read, args=(connection,), name="logsvc-writer-read", daemon=True
        )
        with self._lock:
            reader.start()
            self._connections.add(connection)
            self._readers.add(reader)

    def _read(self, connection: _Connection) -> None:
        frames = _Frames(_REQUESTS.decode)
        try:
            while data := connection.sock.recv(_READ_BYTES):
                for frame_id, requests in frames.feed(data):
                    self._writer.put(Frame(requests, functools.partial(connection.reply, frame_id)))
        except msgspec.DecodeError as exc:
            log.error("a worker sent the shared writer a frame it cannot read, hanging up: %s", exc)
        except OSError:
            pass  # the worker is gone (killed with replies unread: reset)
        except Exception:
            log.exception("the shared writer failed reading a worker's frames, hanging up")
        finally:
            # The worker sees the hang-up and writes what it still waits for itself. Closed here, by
            # the one thread that reads it, so that its descriptor is never another's while read.
            connection.close()
            with self._lock:
                self._connections.discard(connection)
                self._readers.discard(threading.current_thread())


class _Connection:
    """A worker's connection: replies from the writer thread, the hang-up from its reader or ``stop``."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._lock = threading.Lock()
        self._open = True

    def reply(self, frame_id: int, outcomes: list[LogServiceError | None]) -> None:
        """Run by the writer thread once the frame's transaction returned."""
        replies = [None if outcome is None else (outcome.code, outcome.detail) for outcome in outcomes]
        with self._lock:
            if not self._open:
                return  # the worker writes its requests itself
            try:
                self.sock.sendall(_framed((frame_id, replies)))
                return
            except OSError:
                pass  # gone, or not reading for _SEND_TIMEOUT: a reply may be half sent
            except Exception:
                log.exception("a reply to a worker could not be sent")
        self.hang_up()  # the worker writes what still waits for a reply itself

    def hang_up(self) -> None:
        """No more replies, and the reader wakes (its ``recv`` ends) to close it."""
        with self._lock:
            if self._open:
                self._open = False
                with contextlib.suppress(OSError):
                    self.sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.hang_up()
        self.sock.close()


def _peer_uid(sock: socket.socket) -> int:
    _, uid, _ = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
    return int(uid)


class _Rarely:
    """Whether to log a repeated error now: once a minute per kind, so that nobody floods the log."""

    def __init__(self) -> None:
        self._last: dict[str, float] = {}

    def now(self, kind: str) -> bool:
        at = time.monotonic()
        if at - self._last.get(kind, -math.inf) < 60:
            return False
        self._last[kind] = at
        return True


class WriterClient:
    """A worker's side: ``submit`` sends a request's rows to the shared writer named ``name`` and waits for
    their commit; through ``local`` (the worker's own writer) once that cannot be reached."""

    def __init__(self, name: str, local: Writer[Any]) -> None:
        self._name = name
        self._local = local
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connecting: asyncio.Task[None] | None = None
        self._transport: asyncio.Transport | None = None
        self._batches = LoopBatches(self._send)
        # Per frame sent, its requests; a request's future is True once committed, False when its worker
        # must write it itself (the connection was lost before the reply).
        self._waiting: dict[int, list[tuple[Rows, asyncio.Future[bool]]]] = {}
        self._frame_id = 0
        self._frames = _Frames(_REPLIES.decode)
        self._gone = False
        self._closing = False

    async def submit(self, rows: Rows) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
        if loop is self._loop and self._transport is None and not self._gone:
            await self._connect()
        if self._gone or loop is not self._loop:
            await self._local.submit(rows)
            return
        future: asyncio.Future[bool] = loop.create_future()
        self._batches.add(loop, (rows, future))
        if not await future:
            await self._local.submit(rows)

    async def _connect(self) -> None:
        if self._connecting is None:
            assert self._loop is not None
            self._connecting = self._loop.create_task(self._open())
        # Shielded: a request cancelled while connecting must not cancel the connection of the others.
        await asyncio.shield(self._connecting)

    async def _open(self) -> None:
        assert self._loop is not None
        sock: socket.socket | None = None
        try:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.setblocking(False)
            await self._loop.sock_connect(sock, _address(self._name))
            if _peer_uid(sock) != os.getuid():
                # The supervisor is gone and another user took its name: rows must not go there.
                raise ConnectionRefusedError(f"the socket is held by user id {_peer_uid(sock)}")
            transport, _ = await self._loop.create_unix_connection(lambda: _Replies(self), sock=sock)
        except Exception as exc:  # any: a worker that cannot connect must still write
            if sock is not None:
                sock.close()
            log.warning("the shared writer cannot be reached (%s); this worker writes the store itself", exc)
            self._gone = True
            return
        self._transport = transport

    def _send(self, batch: list[tuple[Rows, asyncio.Future[bool]]]) -> None:
        if self._gone or self._transport is None:
            for _, future in batch:
                if not future.done():
                    future.set_result(False)
            return
        sent: list[tuple[Rows, asyncio.Future[bool]]] = []
        encoded: list[Encoded] = []
        for rows, future in batch:
            try:
                # Here, where the cores of several workers share the work, not by the one writer.
                encoded.append(encode_rows(rows))
            except Exception as exc:  # as the writer would answer it: this request fails, not the others
                if not future.done():
                    future.set_exception(translate(exc))
                continue
            sent.append((rows, future))
        if sent:
            self._frame_id += 1
            self._waiting[self._frame_id] = sent
            self._transport.write(_framed((self._frame_id, encoded)))

    def replied(self, data: bytes) -> None:
        for frame_id, outcomes in self._frames.feed(data):
            batch = self._waiting.get(frame_id)
            if batch is None or len(batch) != len(outcomes):
                log.error("the shared writer replied to a frame it was not sent; hanging up")
                assert self._transport is not None
                self._transport.close()  # its requests fall back to this worker's writer
                return
            del self._waiting[frame_id]
            for (_, future), outcome in zip(batch, outcomes, strict=True):
                if future.done():
                    continue
                if outcome is None:
                    future.set_result(True)
                else:
                    code, detail = outcome
                    future.set_exception(_ERRORS.get(code, StoreUnavailable)(detail))

    def lost(self, exc: Exception | None) -> None:
        if not self._closing:
            log.warning("the shared writer is gone (%s); this worker now writes the store", exc or "closed")
        self._gone = True
        self._transport = None
        waiting, self._waiting = self._waiting, {}
        for batch in waiting.values():
            for _, future in batch:
                if not future.done():
                    future.set_result(False)

    def close(self) -> None:
        """Hang up (every request answered: the store is closing)."""
        self._closing = True
        if self._transport is not None:
            self._transport.close()


class _Replies(asyncio.Protocol):
    def __init__(self, client: WriterClient) -> None:
        self._client = client

    def data_received(self, data: bytes) -> None:
        self._client.replied(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self._client.lost(exc)
