"""A head's time runs from its own first byte, also on a kept-alive connection whose earlier heads left the
connection's one timer running (it is set again for the later deadline, never made per request)."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from tests.conftest import ServerThread, make_settings

_TIMEOUT = 1.0
# Each test lets a timeout run out, or keeps within one: no other test runs meanwhile (serial marker).
pytestmark = pytest.mark.serial


def _answer(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def test_a_later_head_gets_its_whole_time_then_408(tmp_path: Path) -> None:
    server = ServerThread(make_settings(tmp_path / "data", header_timeout=_TIMEOUT)).start()
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")
            # Past half the timeout of the first head (whose timer is still pending), a head that never ends.
            time.sleep(_TIMEOUT * 0.6)
            started = time.monotonic()
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            answer = _answer(sock)
            waited = time.monotonic() - started
        assert answer.startswith(b"HTTP/1.1 408 ")
        # Not when the first head's time ran out, but the whole timeout after this head's first byte.
        assert waited >= _TIMEOUT * 0.9
    finally:
        server.stop()


def test_heads_that_come_in_time_are_served_on_and_on(tmp_path: Path) -> None:
    server = ServerThread(make_settings(tmp_path / "data", header_timeout=_TIMEOUT)).start()
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
            # Longer in all than the timeout, each head well within it.
            for _ in range(6):
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
                time.sleep(_TIMEOUT * 0.3)
                sock.sendall(b"\r\n")
                assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")
    finally:
        server.stop()


def test_an_idle_kept_alive_connection_is_closed_after_the_keep_alive_timeout(tmp_path: Path) -> None:
    """uvicorn's timeout_keep_alive (5 s), kept by the same timer: an idle connection is closed, one that
    asks again within it is served."""
    server = ServerThread(make_settings(tmp_path / "data", header_timeout=30.0)).start()
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
            for _ in range(3):
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")
                time.sleep(1.0)  # idle, well within the keep-alive timeout
            started = time.monotonic()
            assert _answer(sock) == b""  # closed by the server, without an answer
            waited = time.monotonic() - started
        assert 5.0 - 1.0 - 0.1 <= waited <= 25
    finally:
        server.stop()
