"""What a client can make the server spend before it is refused: memory, time and connections, measured on
a real ``logsvc serve`` process (its RSS read from /proc)."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import select
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from logsvc.auth.policy import Permission, Role
from logsvc.auth.sigv4 import SignedRequest, sign
from logsvc.endpoints import ENDPOINTS
from logsvc.routing import Answer, Call, Endpoint, json_answer
from tests.conftest import ServerProcess, ServerThread, bearer, make_key, make_settings

# Latencies under attack and head timeouts: measured while no other test runs (see the serial marker).
pytestmark = pytest.mark.serial

MB = 1024 * 1024
# 32 MiB - 1 byte once inflated: just under max_decompressed_bytes, about 32 KB as sent.
BOMB_ENTRIES = 11_184_810
JSON_BOMB = gzip.compress(b"[" + b"{}," * (BOMB_ENTRIES - 1) + b"{}]")
NDJSON_BOMB = gzip.compress(b"{}\n" * BOMB_ENTRIES)


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for process {pid}")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[ServerProcess]:
    server = ServerProcess(tmp_path / "data").start()
    yield server
    server.kill()


class TestGzipBombs:
    def post_bomb(self, server: ServerProcess, headers: dict[str, str], ndjson: bool) -> httpx.Response:
        content_type = "application/x-ndjson" if ndjson else "application/json"
        return httpx.post(
            f"{server.url}/logs",
            content=NDJSON_BOMB if ndjson else JSON_BOMB,
            headers={**headers, "Content-Type": content_type, "Content-Encoding": "gzip"},
            timeout=60,
        )

    def test_bombs_are_refused_naming_the_limit_in_bounded_memory_while_healthz_answers(
        self, served: ServerProcess
    ) -> None:
        assert len(JSON_BOMB) < 64 * 1024
        assert len(NDJSON_BOMB) < 64 * 1024
        key = make_key(make_settings(served.data_dir), Role.INGEST, services=("app*",))
        assert served.proc is not None
        pid = served.proc.pid
        small = httpx.post(
            f"{served.url}/logs", json={"service_name": "app", "message": "warm"}, headers=bearer(key)
        )
        assert small.status_code == 201
        baseline = rss_bytes(pid)

        answers: list[httpx.Response] = []
        peak = [baseline]

        def attack(ndjson: bool) -> None:
            for _ in range(3):
                answers.append(self.post_bomb(served, bearer(key), ndjson))

        attackers = [threading.Thread(target=attack, args=(n,)) for n in (False, True, False)]
        for thread in attackers:
            thread.start()
        latencies = []
        with httpx.Client(base_url=served.url, timeout=30) as probe:
            while any(thread.is_alive() for thread in attackers):
                started = time.perf_counter()
                assert probe.get("/healthz").status_code == 200
                latencies.append(time.perf_counter() - started)
                peak[0] = max(peak[0], rss_bytes(pid))
                time.sleep(0.02)
        for thread in attackers:
            thread.join()

        assert len(answers) == 9
        for answer in answers:
            problem = answer.json()
            assert (answer.status_code, problem["code"]) in {
                (413, "payload_too_large"),
                (400, "validation_error"),
            }
            assert "a batch holds at most 10000 entries" in problem["detail"]
        assert len(latencies) >= 5
        assert max(latencies) < 0.5, f"/healthz took up to {max(latencies):.2f} s during the bombs"
        grown = (max(peak[0], rss_bytes(pid)) - baseline) / MB
        assert grown < 200, f"the server grew by {grown:.0f} MB"


def read_answer(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes; a reset after its answer ends it too."""
    chunks = []
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def read_one_response(sock: socket.socket) -> bytes:
    """One response with a Content-Length, on a connection that stays open."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


class TestRequestHeads:
    def test_an_unfinished_head_over_the_limit_is_answered_431_at_once(self, served: ServerProcess) -> None:
        with socket.create_connection(("127.0.0.1", served.port), timeout=10) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: " + b"a" * 17_000)
            answer = read_answer(sock)
        assert answer.startswith(b"HTTP/1.1 431 ")
        assert b'"code":"headers_too_large"' in answer

    def test_a_100_mb_head_is_not_read_let_alone_kept(self, served: ServerProcess) -> None:
        assert served.proc is not None
        baseline = rss_bytes(served.proc.pid)
        sent = 0
        with socket.create_connection(("127.0.0.1", served.port), timeout=10) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: ")
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                while sent < 100 * MB:
                    sock.sendall(b"a" * 65536)
                    sent += 65536
            answer = read_answer(sock)
        assert sent < 100 * MB, "the server read the whole head"
        assert answer == b"" or answer.startswith(b"HTTP/1.1 431 ")
        assert (rss_bytes(served.proc.pid) - baseline) / MB < 20
        assert httpx.get(f"{served.url}/healthz", timeout=10).status_code == 200

    def test_slow_heads_are_closed_after_header_timeout_while_others_are_served(self, tmp_path: Path) -> None:
        server = ServerProcess(tmp_path / "data", env={"LOGSVC_HEADER_TIMEOUT": "1"}).start()
        try:
            silent = [socket.create_connection(("127.0.0.1", server.port), timeout=10) for _ in range(100)]
            slow = [socket.create_connection(("127.0.0.1", server.port), timeout=10) for _ in range(100)]
            for sock in slow:
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            assert httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200
            answers: dict[socket.socket, bytes] = {}
            deadline = time.monotonic() + 30
            # A slowloris client sends one more header line now and then, which must not keep it open.
            while len(answers) < 200 and time.monotonic() < deadline:
                for sock in slow:
                    if sock not in answers:
                        with contextlib.suppress(OSError):
                            sock.sendall(b"X-More: 1\r\n")
                readable, _, _ = select.select([s for s in silent + slow if s not in answers], [], [], 0.2)
                for sock in readable:
                    answers[sock] = read_answer(sock)
            assert len(answers) == 200, f"{200 - len(answers)} connections still open"
            assert all(answers[sock] == b"" for sock in silent)
            assert all(answers[sock].startswith(b"HTTP/1.1 408 ") for sock in slow)
            for sock in silent + slow:
                sock.close()
        finally:
            server.kill()


class TestSignedRequestsBeforeTheBody:
    @pytest.mark.parametrize(
        ("authorization", "region"),
        [("AWS4-HMAC-SHA256 garbage", "us-east-1"), (None, "eu-west-1")],
        ids=["garbage", "other region"],
    )
    def test_a_bad_signature_header_is_refused_before_the_body_arrives(
        self, served: ServerProcess, authorization: str | None, region: str
    ) -> None:
        host = f"127.0.0.1:{served.port}"
        request = SignedRequest(
            "POST", "/logs", "", [("Host", host), ("Content-Type", "application/json")], b""
        )
        signature = dict(
            sign(request, access_key_id="LSKNOSUCHKEY", secret_access_key="not-a-secret", region=region)
        )
        if authorization is not None:
            signature["Authorization"] = authorization
        head = f"POST /logs HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        head += f"Content-Length: {10 * MB}\r\n"
        head += "".join(f"{name}: {value}\r\n" for name, value in signature.items()) + "\r\n"
        with socket.create_connection(("127.0.0.1", served.port), timeout=10) as sock:
            sock.sendall(head.encode() + b"[" * 1024)
            # The rest of the 10 MiB is never sent: only an answer given without the body can arrive.
            answer = read_one_response(sock)
        assert answer.startswith(b"HTTP/1.1 403 ")
        assert b'"code":"invalid_signature"' in answer


async def _slow(call: Call) -> Answer:
    await asyncio.sleep(1.5)
    return json_answer({"slow": True})


SLOW = Endpoint(path="/slow", method="GET", name="slow", permission=Permission.PUBLIC, operation=_slow)


def _response(sock: socket.socket) -> bytes:
    """One response with a Content-Length; b"" if the server closed the connection first."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return b""
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def test_a_pipelined_head_waits_for_a_slow_answer_without_losing_it(tmp_path: Path) -> None:
    """The head timer of a request that arrives while the one before it is answered does not run out on the
    answer: the slow answer comes whole, then the next request is served."""
    settings = make_settings(tmp_path / "data", header_timeout=0.5)
    server = ServerThread(settings, endpoints=(*ENDPOINTS, SLOW)).start()
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
            sock.sendall(b"GET /slow HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            time.sleep(0.2)  # so that the next head arrives on its own, while /slow is being answered
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            first = _response(sock)
            assert first.startswith(b"HTTP/1.1 200 "), first
            assert b'{"slow":true}' in first
            sock.sendall(b"\r\n")
            second = _response(sock)
            assert second.startswith(b"HTTP/1.1 200 "), second
    finally:
        server.stop()
