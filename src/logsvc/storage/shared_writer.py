"""One writer for the SQLite store of every worker process (``serve --workers N``; decision 46).

Workers that each wrote the file took turns through a lock (decisions 26 and 32): every turn committed a
small group, and found SQLite's page cache stale after the other worker's commit, so it read and decrypted
again the pages it was about to write. Here the supervisor process holds the store's one writer thread
(``sqlite_writer``, with its group commit) and serves it on a Unix socket in a private directory. Each
worker sends it the rows of its requests, one frame per turn of its event loop (or per ``HAND_OVER_AT``
requests), and answers a request once the reply says that the transaction holding its rows committed.

A frame is a 4-byte little-endian length and a MessagePack body: ``[frame id, [rows of each request]]``
from a worker, ``[frame id, [null or [error code, detail] for each request]]`` back.

A worker that cannot reach the shared writer (the supervisor was killed) writes through its own writer
from then on, taking turns with any other as before. Its requests still waiting for a reply are written
there again: safe, since a log_id already stored for its service is skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import secrets
import socket
import struct
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import msgspec

from logsvc.errors import LogServiceError, StoreFull, StoreUnavailable
from logsvc.storage.sqlite_schema import open_connection
from logsvc.storage.sqlite_writer import encode_rows, sqlite_writer
from logsvc.storage.writer import HAND_OVER_AT, Encoded, Frame, Rows, Writer

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
_SEND_TIMEOUT: Final = struct.pack("ll", 5, 0)  # struct timeval: 5 s
# The result of a request's future when its frame must be written by the worker's own writer instead.
_WRITE_HERE: Final = -1


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


def serve_sqlite_writer(path: Path, key: bytes | None, on_commit: Callable[[int], None]) -> SharedWriter:
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
        # from the length of the data directory's path. It has no file modes, so a connection is served
        # only when its peer runs as this user (as only this user can write the store); the random name
        # cannot be taken first by another user.
        self.name = f"logsvc-writer-{secrets.token_hex(12)}"
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._connections: list[socket.socket] = []
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        self._listener.bind(_address(self.name))
        self._listener.listen()
        self._spawn(self._accept, "logsvc-writer-accept")

    def stop(self) -> None:
        """After the workers: close the socket, then write what was read and close the writer."""
        # shutdown(), unlike close(), wakes the threads blocked in accept() and recv() on these sockets.
        for sock in [self._listener, *self._connections]:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for thread in self._threads:
            thread.join()
        asyncio.run(self._writer.close())
        for sock in [self._listener, *self._connections]:
            sock.close()

    def _spawn(self, target: Callable[..., None], name: str, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return  # shut down by stop()
            _, uid, _ = struct.unpack("3i", connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
            if uid != os.getuid():
                log.error("refused a connection to the shared writer from user id %d", uid)
                connection.close()
                continue
            # A worker that stops reading must not hold the writer thread up in a reply for long.
            connection.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, _SEND_TIMEOUT)
            self._connections.append(connection)
            self._spawn(self._read, "logsvc-writer-read", connection)

    def _read(self, connection: socket.socket) -> None:
        frames = _Frames(_REQUESTS.decode)
        while data := connection.recv(_READ_BYTES):
            try:
                messages = frames.feed(data)
            except msgspec.DecodeError as exc:
                log.error("a worker sent the shared writer a frame it cannot read, hanging up: %s", exc)
                connection.shutdown(socket.SHUT_RDWR)
                return
            for frame_id, requests in messages:
                self._writer.put(Frame(requests, functools.partial(_reply, connection, frame_id)))


def _reply(connection: socket.socket, frame_id: int, outcomes: list[LogServiceError | None]) -> None:
    """Run by the writer thread once the frame's transaction returned."""
    replies = [None if outcome is None else (outcome.code, outcome.detail) for outcome in outcomes]
    with contextlib.suppress(OSError):  # the worker is gone, or hung: it writes its requests itself
        connection.sendall(_framed((frame_id, replies)))


class WriterClient:
    """A worker's side: ``submit`` sends a request's rows to the shared writer named ``name`` and waits for
    their commit; through ``local`` (the worker's own writer) once that cannot be reached."""

    def __init__(self, name: str, local: Writer[Any]) -> None:
        self._name = name
        self._local = local
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connecting: asyncio.Task[None] | None = None
        self._transport: asyncio.Transport | None = None
        self._batch: list[tuple[Rows, asyncio.Future[int]]] | None = None
        self._waiting: dict[int, list[tuple[Rows, asyncio.Future[int]]]] = {}
        self._frame_id = 0
        self._frames = _Frames(_REPLIES.decode)
        self._gone = False
        self._closing = False

    async def submit(self, rows: Rows) -> None:
        if self._transport is None and not self._gone:
            await self._connect()
        loop = asyncio.get_running_loop()
        if self._gone or loop is not self._loop:
            await self._local.submit(rows)
            return
        future: asyncio.Future[int] = loop.create_future()
        batch = self._batch
        if batch is None:
            batch = self._batch = []
            loop.call_soon(self._send)
        batch.append((rows, future))
        if len(batch) >= HAND_OVER_AT:
            self._send()
        if await future == _WRITE_HERE:
            await self._local.submit(rows)

    async def _connect(self) -> None:
        if self._connecting is None:
            self._loop = asyncio.get_running_loop()
            self._connecting = self._loop.create_task(self._open())
        await self._connecting

    async def _open(self) -> None:
        assert self._loop is not None
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            await self._loop.sock_connect(sock, _address(self._name))
            transport, _ = await self._loop.create_unix_connection(lambda: _Replies(self), sock=sock)
        except OSError as exc:
            sock.close()
            log.warning("the shared writer cannot be reached (%s); this worker writes the store itself", exc)
            self._gone = True
            return
        self._transport = transport

    def _send(self) -> None:
        batch, self._batch = self._batch, None
        if batch is None:
            return  # sent already: full
        if self._gone or self._transport is None:
            for _, future in batch:
                future.set_result(_WRITE_HERE)
            return
        self._frame_id += 1
        self._waiting[self._frame_id] = batch
        # Encoded here, where the cores of several workers share the work, not by the one writer.
        self._transport.write(_framed((self._frame_id, [encode_rows(rows) for rows, _ in batch])))

    def replied(self, data: bytes) -> None:
        for frame_id, outcomes in self._frames.feed(data):
            for (_, future), outcome in zip(self._waiting.pop(frame_id), outcomes, strict=True):
                if future.done():
                    continue
                if outcome is None:
                    future.set_result(0)
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
                    future.set_result(_WRITE_HERE)

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
