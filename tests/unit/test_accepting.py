"""The serving event loop accepts every connection waiting at a turn of the loop (decision 50): a burst of
new connections to a busy server is served at the next turn, not one connection a turn."""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import subprocess
import sys
import threading
from pathlib import Path
from typing import cast

import pytest

from logsvc.connection import new_event_loop
from tests.integration.test_auth_schemes import self_signed

_CONNECTIONS = 40


class _Counted(asyncio.Protocol):
    made: list[int]
    turns: list[int]
    transports: list[asyncio.BaseTransport]

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.made.append(self.turns[0])
        self.transports.append(transport)
        cast(asyncio.Transport, transport).write(b"hello")  # uvloop's are not asyncio's subclasses


def _turns_to_connect_all(sock: socket.socket) -> list[int]:
    """The turn of the loop at which each of a burst of connections was made: the connections are all
    waiting in the kernel's queue while the loop is busy, then the loop goes on."""
    loop = new_event_loop()
    made: list[int] = []
    turns = [0]
    transports: list[asyncio.BaseTransport] = []
    _Counted.made, _Counted.turns, _Counted.transports = made, turns, transports
    connected = threading.Event()
    clients: list[socket.socket] = []

    def connect() -> None:
        port = sock.getsockname()[1]
        clients.extend(socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(_CONNECTIONS))
        connected.set()

    def tick() -> None:
        turns[0] += 1
        if len(made) < _CONNECTIONS:
            loop.call_soon(tick)
        else:
            loop.stop()

    async def serve() -> asyncio.AbstractServer:
        server = await loop.create_server(_Counted, sock=sock, backlog=128)
        # The loop busy (here: blocked) while every connection arrives.
        threading.Thread(target=connect, daemon=True).start()
        assert connected.wait(30)
        loop.call_soon(tick)
        return server

    async def close(server: asyncio.AbstractServer) -> None:
        for transport in transports:
            transport.close()
        server.close()
        await server.wait_closed()
        await asyncio.sleep(0)  # the transports' closing callbacks

    server = loop.run_until_complete(serve())
    try:
        loop.run_forever()
        for client in clients:
            assert client.recv(5) == b"hello"  # each one served
    finally:
        for client in clients:
            client.close()
        loop.run_until_complete(close(server))
        loop.close()
    return made


def test_a_burst_of_connections_is_accepted_at_one_turn() -> None:
    sock = socket.create_server(("127.0.0.1", 0))
    made = _turns_to_connect_all(sock)
    assert len(made) == _CONNECTIONS
    # Accepted at the first turn and set up at the next; libuv alone takes one connection a turn (40).
    assert max(made) - min(made) <= 2, made


# Run in a process of its own, whose descriptors run out while a client process connects: the connections
# beyond them wait in the kernel's queue, and are served as descriptors come free again.
_OUT_OF_DESCRIPTORS = """
import asyncio, logging, os, resource, socket, subprocess, sys, threading
from logsvc.connection import new_event_loop

logging.basicConfig(stream=sys.stdout, level=logging.ERROR, format="%(message)s")
CLIENT = (
    "import socket, sys\\n"
    "clients = [socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=60) for _ in range(12)]\\n"
    "print(sum(client.recv(5) == b'hello' for client in clients))\\n"
)
loop = new_event_loop()


class Hello(asyncio.Protocol):
    def connection_made(self, transport):
        transport.write(b"hello")
        loop.call_later(0.1, transport.close)  # its descriptor free again soon


sock = socket.create_server(("127.0.0.1", 0))
client = subprocess.Popen(
    [sys.executable, "-c", CLIENT, str(sock.getsockname()[1])], stdout=subprocess.PIPE, text=True
)
served = []


def wait_for_client():
    served.append(client.communicate(timeout=90)[0].strip())
    loop.call_soon_threadsafe(loop.stop)


async def serve():
    await loop.create_server(Hello, sock=sock, backlog=64)


used = len(os.listdir("/proc/self/fd"))
resource.setrlimit(resource.RLIMIT_NOFILE, (used + 3, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
loop.run_until_complete(serve())
threading.Thread(target=wait_for_client, daemon=True).start()
loop.run_forever()
print("served", served[0], "of 12")
"""


def test_out_of_descriptors_the_connections_wait_and_are_served(tmp_path: Path) -> None:
    script = tmp_path / "out_of_descriptors.py"
    script.write_text(_OUT_OF_DESCRIPTORS)
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "cannot accept connections" in result.stdout
    assert "served 12 of 12" in result.stdout


class _Closing(asyncio.Protocol):
    """Closes the server as soon as a connection is made, as a shutdown beginning just then does."""

    server: list[asyncio.AbstractServer]

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        asyncio.get_running_loop().call_soon(self.server[0].close)

    def data_received(self, data: bytes) -> None:
        self.transport.write(b"answer to " + data)


def test_closing_the_server_leaves_the_connections_made_open(tmp_path: Path) -> None:
    """asyncio's Server.close stops listening and leaves the connections already made open (uvicorn then
    asks each of them to end after its answer): a TLS connection whose handshake ended as the server closed
    still gets its answer."""
    cert, key = self_signed(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    loop = new_event_loop()
    sock = socket.create_server(("127.0.0.1", 0))
    _Closing.server = []
    answers: list[bytes] = []

    def client() -> None:
        trusted = ssl.create_default_context(cafile=str(cert))
        with trusted.wrap_socket(
            socket.create_connection(sock.getsockname(), timeout=30), server_hostname="127.0.0.1"
        ) as tls:
            tls.sendall(b"a request")
            answers.append(tls.recv(100))

    async def serve() -> None:
        _Closing.server.append(await loop.create_server(_Closing, sock=sock, ssl=context, backlog=8))
        connecting = threading.Thread(target=client, daemon=True)
        connecting.start()
        while connecting.is_alive():
            await asyncio.sleep(0.01)
        await _Closing.server[0].wait_closed()

    try:
        loop.run_until_complete(asyncio.wait_for(serve(), 60))
    finally:
        loop.close()
    assert answers == [b"answer to a request"]


def _broken() -> asyncio.Protocol:
    raise RuntimeError("a protocol that cannot be made")


def test_a_connection_that_cannot_be_set_up_for_want_of_code_is_logged_as_an_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A client's own trouble (a failed handshake, a reset) is logged at debug only, but a connection that
    our code fails to set up is an error in the log, as asyncio's loop reports it."""
    loop = new_event_loop()
    sock = socket.create_server(("127.0.0.1", 0))

    async def serve() -> None:
        server = await loop.create_server(_broken, sock=sock, backlog=8)
        with socket.create_connection(sock.getsockname(), timeout=30) as client:
            assert await asyncio.to_thread(client.recv, 10) == b""  # closed, not left open
        server.close()
        await server.wait_closed()

    with caplog.at_level(logging.INFO, logger="uvicorn.error"):
        try:
            loop.run_until_complete(asyncio.wait_for(serve(), 30))
        finally:
            loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()
    assert [record.levelno for record in caplog.records] == [logging.ERROR], caplog.text
    assert "a protocol that cannot be made" in caplog.text
