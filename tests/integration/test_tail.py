"""GET /logs/tail against real servers: Server-Sent Events of new entries that resume without gaps or repeats,
a bounded queue for a slow reader, the scopes and filters of GET /logs, the stream limits, entries written by
another worker process or another replica (DynamoDB in moto), the polling page, and `logsvc tail`."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx_sse import EventSource, ServerSentEvent
from msgspec import msgpack

from logsvc.auth.policy import Role
from logsvc.auth.profiles import write_profile
from logsvc.client import AsyncClient, Client, Unreachable
from logsvc.settings import Settings, settings_environment
from logsvc.tail import TailHub
from tests.conftest import ServerProcess, ServerThread, bearer, eventually, make_key, make_settings

STREAM = {"Accept": "text/event-stream"}


class Tail:
    """One GET /logs/tail stream, read in a thread as a client would: its events as they come."""

    def __init__(
        self,
        url: str,
        headers: dict[str, str],
        params: Sequence[tuple[str, str]] = (),
        *,
        last_event_id: str | None = None,
    ) -> None:
        self.events: list[ServerSentEvent] = []
        self.status = 0
        self.headers: httpx.Headers = httpx.Headers()
        self.problem: dict[str, Any] = {}
        self.ended = False
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._opened = threading.Event()
        extra = {"Last-Event-ID": last_event_id} if last_event_id else {}
        self._request = (f"{url}/logs/tail", list(params), headers | STREAM | extra)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        assert self._opened.wait(30), "the stream did not answer"

    def _read(self) -> None:
        url, params, headers = self._request
        try:
            with (
                httpx.Client(timeout=httpx.Timeout(10, read=30)) as client,
                client.stream("GET", url, params=params, headers=headers) as response,
            ):
                self.status, self.headers = response.status_code, response.headers
                if response.status_code != 200:
                    response.read()
                    self.problem = response.json()
                    return
                self._opened.set()
                for event in EventSource(response).iter_sse():
                    self.events.append(event)
                    if self._stop.is_set():  # heartbeats come often in these tests: a stop is seen soon
                        return
                self.ended = True
        except BaseException as exc:
            self.error = exc
        finally:
            self._opened.set()

    def entries(self) -> list[dict[str, Any]]:
        return [json.loads(event.data) for event in list(self.events) if event.event == "entry"]

    def messages(self) -> list[str]:
        return [entry["message"] for entry in self.entries()]

    def dropped(self) -> int:
        return sum(json.loads(e.data)["dropped"] for e in list(self.events) if e.event == "dropped")

    @property
    def last_id(self) -> str:
        return next(event.id for event in reversed(list(self.events)) if event.id)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(30)
        assert not self._thread.is_alive(), "the stream did not end"


@pytest.fixture
def tails() -> Iterator[list[Tail]]:
    """Streams a test opened, closed at its end whatever happened."""
    opened: list[Tail] = []
    yield opened
    for tail in opened:
        tail.close()


def open_tail(
    tails: list[Tail], server: ServerThread, headers: dict[str, str] | None = None, **kwargs: Any
) -> Tail:
    tail = Tail(server.url, bearer(server.admin) if headers is None else headers, **kwargs)
    tails.append(tail)
    return tail


def tail_settings(tmp_path: Path, **overrides: Any) -> Settings:
    return make_settings(tmp_path / "data", **({"tail_heartbeat_seconds": 0.2} | overrides))


@pytest.fixture
def tail_server(tmp_path: Path) -> Iterator[ServerThread]:
    running = ServerThread(tail_settings(tmp_path)).start()
    yield running
    running.stop()


def send(server: ServerThread, *entries: dict[str, Any], headers: dict[str, str] | None = None) -> None:
    body: Any = entries[0] if len(entries) == 1 else list(entries)
    answer = httpx.post(f"{server.url}/logs", json=body, headers=headers or bearer(server.admin), timeout=30)
    assert answer.status_code == 201, answer.text


def hub(server: ServerThread) -> TailHub:
    hub: TailHub = server.server.config.app.state.root.tail_hub()
    return hub


def test_new_entries_arrive_in_commit_order_with_cursor_ids(
    tail_server: ServerThread, tails: list[Tail]
) -> None:
    tail = open_tail(tails, tail_server)
    assert tail.status == 200
    assert tail.headers["content-type"].startswith("text/event-stream")
    assert tail.headers["cache-control"] == "no-store"
    send(tail_server, {"message": "one", "service_name": "api"})
    # Committed later but an hour older by event time: a tail follows the commit order, not event time.
    send(tail_server, {"message": "two", "timestamp": "2020-01-01T00:00:00Z"}, {"message": "three"})
    assert eventually(lambda: len(tail.entries()) == 3)
    entries = tail.entries()
    assert [e["message"] for e in entries] == ["one", "two", "three"]
    assert entries[0]["service_name"] == "api"
    assert entries[1]["timestamp"] == "2020-01-01T00:00:00.000000Z"
    ids = [event.id for event in tail.events if event.event == "entry"]
    assert len(set(ids)) == 3
    (read,) = httpx.get(
        f"{tail_server.url}/logs", params={"service_name": "api"}, headers=bearer(tail_server.admin)
    ).json()["logs"]
    assert read == entries[0]  # the same shape as GET /logs


def test_a_heartbeat_comment_keeps_a_quiet_stream_open(tail_server: ServerThread) -> None:
    headers = bearer(tail_server.admin) | STREAM
    with httpx.stream("GET", f"{tail_server.url}/logs/tail", headers=headers, timeout=10) as response:
        lines = response.iter_lines()
        assert next(lines).startswith("id: ")  # where this stream starts: a reconnect resumes there
        assert next(lines) == ""
        assert next(lines) == ": heartbeat"
        assert next(lines) == ""


def test_a_reconnect_with_last_event_id_has_no_gap_and_no_repeat(
    tail_server: ServerThread, tails: list[Tail]
) -> None:
    first = open_tail(tails, tail_server)
    send(tail_server, *({"message": f"m{i}"} for i in range(3)))
    assert eventually(lambda: len(first.entries()) == 3)
    first.close()
    send(tail_server, *({"message": f"m{i}"} for i in range(3, 6)))  # while disconnected
    send(tail_server, {"message": "m6", "timestamp": "2021-06-01T00:00:00Z"})
    second = open_tail(tails, tail_server, last_event_id=first.last_id)
    send(tail_server, {"message": "m7"})
    assert eventually(lambda: len(second.entries()) == 5)
    assert second.messages() == ["m3", "m4", "m5", "m6", "m7"]
    assert first.messages() + second.messages() == [f"m{i}" for i in range(8)]
    # A stream that saw no entry still gave its position: a reconnect from there misses nothing either.
    quiet = open_tail(tails, tail_server, params=[("service_name", "quiet")])
    assert eventually(lambda: bool(quiet.events))
    quiet.close()
    send(tail_server, {"message": "while away", "service_name": "quiet"})
    back = open_tail(tails, tail_server, params=[("service_name", "quiet")], last_event_id=quiet.last_id)
    assert eventually(lambda: back.messages() == ["while away"])
    # The cursor also goes as a query parameter, and the polling page continues from it as well.
    page = httpx.get(
        f"{tail_server.url}/logs/tail",
        params={"cursor": first.last_id},
        headers=bearer(tail_server.admin),
        timeout=10,
    ).json()
    assert [e["message"] for e in page["logs"]] == ["m3", "m4", "m5", "m6", "m7", "while away"]


def test_the_polling_page_follows_its_cursor_oldest_first(tail_server: ServerThread) -> None:
    url, headers = f"{tail_server.url}/logs/tail", bearer(tail_server.admin) | {"Accept": "application/json"}
    start = httpx.get(url, headers=headers, timeout=10)
    assert start.headers["content-type"] == "application/json"
    assert start.json()["count"] == 0
    send(tail_server, *({"message": f"p{i}", "level": "error" if i % 2 else "info"} for i in range(5)))
    page = httpx.get(
        url, params={"cursor": start.json()["next_cursor"], "limit": "3"}, headers=headers
    ).json()
    assert ([e["message"] for e in page["logs"]], page["more"]) == (["p0", "p1", "p2"], True)
    rest = httpx.get(
        url, params={"cursor": page["next_cursor"], "min_level": "error"}, headers=headers
    ).json()
    assert ([e["message"] for e in rest["logs"]], rest["more"]) == (["p3"], False)
    empty = httpx.get(url, params={"cursor": rest["next_cursor"]}, headers=headers).json()
    assert (empty["count"], empty["next_cursor"]) == (0, rest["next_cursor"])


@pytest.mark.parametrize(
    "bound",
    [{"tail_queue_entries": 4}, {"tail_queue_entries": 100_000, "tail_queue_bytes": 256 * 1024}],
    ids=["entries", "bytes"],
)
def test_a_slow_reader_gets_dropped_and_the_stream_goes_on(tmp_path: Path, bound: dict[str, int]) -> None:
    server = ServerThread(tail_settings(tmp_path, **bound)).start()
    reader = socket.socket()
    try:
        # A reader that takes almost nothing off the wire: its stream's queue fills, the writers go on.
        reader.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        reader.settimeout(30)
        reader.connect(("127.0.0.1", server.port))
        request = (
            f"GET /logs/tail HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n"
            f"Authorization: Bearer {server.admin.api_key}\r\n\r\n"
        )
        reader.sendall(request.encode())
        received = b""
        while b"id: " not in received:
            received += reader.recv(4096)
        big = "x" * 100_000
        for batch in range(4):  # 20 MB: far more than the socket buffers and the queue hold
            send(server, *({"message": f"{batch}-{i} {big}"} for i in range(50)))
        send(server, {"message": "last"})

        def counted(stream: bytes) -> tuple[int, int]:
            dropped = sum(
                int(line.split(b":")[-1].strip(b" }")) for line in stream.split(b"\n") if b'"dropped"' in line
            )
            return stream.count(b"event: entry"), dropped

        # Read on (heartbeats keep coming) until the last entry came and every entry is accounted for:
        # the dropped event and the last entry may come in any chunks, not only the newest ones.
        stream, deadline = received, time.monotonic() + 120
        while not (b"last" in stream and sum(counted(stream)) >= 201) and time.monotonic() < deadline:
            stream += reader.recv(1 << 20)
        delivered, dropped = counted(stream)
        assert dropped > 0
        assert delivered + dropped == 201  # every entry either reached the reader or was counted
        send(server, {"message": "after the drop"})
        while b"after the drop" not in stream:
            stream += reader.recv(1 << 20)
    finally:
        reader.close()
        server.stop()


def test_a_scoped_key_sees_only_its_services(tail_server: ServerThread, tails: list[Tail]) -> None:
    scoped = make_key(tail_server.settings, Role.READ, services=("app-*",))
    mine = open_tail(tails, tail_server, bearer(scoped))
    everything = open_tail(tails, tail_server)
    send(tail_server, {"message": "a", "service_name": "app-1"})
    send(tail_server, {"message": "secret", "service_name": "billing"})
    send(tail_server, {"message": "b", "service_name": "app-2"})
    assert eventually(lambda: everything.messages() == ["a", "secret", "b"])
    assert eventually(lambda: mine.messages() == ["a", "b"])
    outside = open_tail(tails, tail_server, bearer(scoped), params=[("service_name", "billing")])
    assert outside.status == 403
    page = httpx.get(
        f"{tail_server.url}/logs/tail", params={"cursor": mine.last_id}, headers=bearer(scoped)
    ).json()
    assert page["count"] == 0
    first = everything.events[0].id  # the start of the stream, before every entry
    page = httpx.get(f"{tail_server.url}/logs/tail", params={"cursor": first}, headers=bearer(scoped)).json()
    assert [e["message"] for e in page["logs"]] == ["a", "b"]


def test_the_filters_of_get_logs_apply(tail_server: ServerThread, tails: list[Tail]) -> None:
    filtered = open_tail(
        tails,
        tail_server,
        params=[("service_name", "api"), ("min_level", "warn"), ("log_type", "audit"), ("q", "disk full")],
    )
    exact = open_tail(tails, tail_server, params=[("level", "WARN")])
    base = {"service_name": "api", "level": "error", "log_type": "audit", "message": "the disk is full"}
    send(
        tail_server,
        base,
        base | {"service_name": "web"},
        base | {"level": "info"},
        base | {"log_type": "application"},
        base | {"message": "the disk is fine"},
        base | {"level": "warn", "message": "DISK nearly FULL"},
    )
    send(tail_server, base | {"message": "disk full at last"})
    assert eventually(lambda: filtered.messages()[-1:] == ["disk full at last"])
    assert filtered.messages() == ["the disk is full", "DISK nearly FULL", "disk full at last"]
    assert exact.messages() == ["DISK nearly FULL"]
    bad = open_tail(tails, tail_server, params=[("min_level", "loud"), ("since", "yesterday")])
    assert bad.status == 400
    assert {error["field"] for error in bad.problem["errors"]} == {"min_level", "since"}


def test_streams_over_the_limits_are_refused_with_429(tmp_path: Path, tails: list[Tail]) -> None:
    server = ServerThread(tail_settings(tmp_path, tail_streams=2, tail_streams_per_credential=1)).start()
    try:
        first = open_tail(tails, server)
        again = open_tail(tails, server)
        assert again.status == 429
        assert again.problem["code"] == "too_many_streams"
        assert int(again.headers["retry-after"]) >= 1
        other = make_key(server.settings, Role.READ)
        assert open_tail(tails, server, bearer(other)).status == 200
        third = make_key(server.settings, Role.READ)
        assert open_tail(tails, server, bearer(third)).status == 429  # the server's limit
        first.close()
        assert eventually(lambda: hub(server).open_streams == 1)
        assert open_tail(tails, server).status == 200
    finally:
        for tail in tails:
            tail.close()
        server.stop()


def test_credentials_permissions_and_cursors_are_checked(
    tail_server: ServerThread, tails: list[Tail]
) -> None:
    assert open_tail(tails, tail_server, {}).status == 401
    writer = make_key(tail_server.settings, Role.INGEST)
    assert open_tail(tails, tail_server, bearer(writer)).status == 403
    assert open_tail(tails, tail_server, last_event_id="not-a-cursor").status == 400
    send(tail_server, {"message": "one"}, {"message": "two"})
    page = httpx.get(
        f"{tail_server.url}/logs", params={"limit": "1"}, headers=bearer(tail_server.admin)
    ).json()
    read_cursor = open_tail(tails, tail_server, last_event_id=page["next_cursor"])
    assert read_cursor.status == 400
    assert read_cursor.problem["errors"][0]["field"] == "Last-Event-ID"


def _position_cursor(number: int) -> str:
    """A tail cursor as the service writes one (msgpack, base64url), made up here as a client could."""
    raw = msgpack.encode((2, number, ""))
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@pytest.mark.parametrize("engine", ["sqlite", "tiered"])
def test_a_cursor_past_the_newest_commit_is_refused(tmp_path: Path, tails: list[Tail], engine: str) -> None:
    server = ServerThread(tail_settings(tmp_path, store_engine=engine)).start()
    try:
        url, headers = f"{server.url}/logs/tail", bearer(server.admin)
        send(server, {"message": "before"})
        head = httpx.get(url, headers=headers, timeout=10).json()["next_cursor"]
        _, number, _ = msgpack.decode(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
        for forged in (_position_cursor(2**63 - 1), _position_cursor(number + 1)):
            page = httpx.get(url, params={"cursor": forged}, headers=headers, timeout=10)
            assert page.status_code == 400, page.text
            assert page.headers["content-type"] == "application/problem+json"
            assert [error["field"] for error in page.json()["errors"]] == ["cursor"]
            resumed = open_tail(tails, server, last_event_id=forged)
            assert (resumed.status, resumed.problem["errors"][0]["field"]) == (400, "Last-Event-ID")
            in_url = open_tail(tails, server, params=[("cursor", forged)])
            assert (in_url.status, in_url.problem["errors"][0]["field"]) == (400, "cursor")
        # The newest commit's own position is where a tail starts: taken by both forms.
        stream = open_tail(tails, server, last_event_id=head)
        assert stream.status == 200
        assert httpx.get(url, params={"cursor": head}, headers=headers, timeout=10).json()["count"] == 0
        send(server, {"message": "after"})
        assert eventually(lambda: stream.messages() == ["after"])
        page = httpx.get(url, params={"cursor": head}, headers=headers, timeout=10).json()
        assert [entry["message"] for entry in page["logs"]] == ["after"]
    finally:
        for tail in tails:
            tail.close()
        tails.clear()
        server.stop()


def test_a_stream_ends_once_its_key_is_revoked_or_expires(
    tail_server: ServerThread, tails: list[Tail]
) -> None:
    revoked = make_key(tail_server.settings, Role.READ)
    expiring = make_key(tail_server.settings, Role.READ, expires_at_us=time.time_ns() // 1000 + 3_000_000)
    kept = open_tail(tails, tail_server, bearer(make_key(tail_server.settings, Role.READ)))
    to_revoke = open_tail(tails, tail_server, bearer(revoked))
    to_expire = open_tail(tails, tail_server, bearer(expiring))
    send(tail_server, {"service_name": "s", "message": "before"})
    for tail in (kept, to_revoke, to_expire):
        assert eventually(lambda tail=tail: tail.messages() == ["before"])
    answer = httpx.delete(
        f"{tail_server.url}/admin/keys/{revoked.access_key_id}", headers=bearer(tail_server.admin), timeout=10
    )
    assert answer.status_code == 200
    assert eventually(lambda: to_revoke.ended)  # at its next heartbeat (0.2 s here)
    assert eventually(lambda: to_expire.ended)  # once its key expired
    send(tail_server, {"service_name": "s", "message": "after"})
    assert eventually(lambda: kept.messages() == ["before", "after"])
    assert not kept.ended
    assert to_revoke.messages() == to_expire.messages() == ["before"]
    again = Tail(tail_server.url, bearer(revoked))  # and it cannot come back
    assert again.status == 401


def test_streams_end_cleanly_when_the_server_stops(tmp_path: Path, tails: list[Tail]) -> None:
    server = ServerThread(tail_settings(tmp_path, tail_heartbeat_seconds=60)).start()
    tail = open_tail(tails, server)
    server.stop()
    assert not server.thread.is_alive()
    tails.remove(tail)
    tail.close()
    assert (tail.ended, tail.error) == (True, None)  # the last chunk came: no broken stream


def _workers(supervisor: int) -> list[int]:
    """The worker processes of uvicorn's supervisor (its other child is multiprocessing's tracker)."""
    children = Path(f"/proc/{supervisor}/task/{supervisor}/children").read_text().split()
    return [int(pid) for pid in children if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()]


def _serving(workers: list[int], server_port: int, client_port: int) -> int | None:
    """The worker holding the server's end of the connection from ``client_port``, found in /proc."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, remote = (int(address.split(":")[1], 16) for address in fields[1:3])
            if (local, remote) == (server_port, client_port):
                inodes.add(f"socket:[{fields[9]}]")
    for pid in workers:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                if os.readlink(fd) in inodes:
                    return pid
            except OSError:
                continue
    return None


def _accepted_by(workers: list[int], server_port: int, connection: socket.socket) -> int:
    client_port = connection.getsockname()[1]
    found: list[int] = []

    def accepted() -> bool:
        pid = _serving(workers, server_port, client_port)
        if pid is not None:
            found.append(pid)
        return bool(found)

    assert eventually(accepted)
    return found[0]


def _raw_post(connection: socket.socket, headers: dict[str, str], entry: dict[str, Any]) -> None:
    body = json.dumps(entry).encode()
    head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    connection.sendall(
        f"POST /logs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n{head}"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
        + body
    )
    answer = b""
    while chunk := connection.recv(65536):
        answer += chunk
    assert answer.startswith(b"HTTP/1.1 201"), answer[:200]


def test_every_worker_process_feeds_every_stream(tmp_path: Path, tails: list[Tail]) -> None:
    server = ServerProcess(tmp_path / "data", "--workers", "2", env={"LOGSVC_TAIL_HEARTBEAT_SECONDS": "0.2"})
    try:
        server.start()
        assert server.proc is not None
        assert eventually(lambda: len(_workers(server.proc.pid)) == 2)  # type: ignore[union-attr]
        workers = _workers(server.proc.pid)
        tail = Tail(server.url, server.headers)
        tails.append(tail)
        # One connection accepted by each worker: whichever serves the stream, the other wrote an entry too.
        by_worker: dict[int, socket.socket] = {}
        for _ in range(100):
            connection = socket.create_connection(("127.0.0.1", server.port), timeout=30)
            pid = _accepted_by(workers, server.port, connection)
            if pid in by_worker:
                connection.close()
            else:
                by_worker[pid] = connection
            if len(by_worker) == 2:
                break
        assert len(by_worker) == 2, "the kernel gave every connection to one worker"
        for pid, connection in by_worker.items():
            _raw_post(connection, server.headers, {"message": f"from worker {pid}"})
            connection.close()
        expected = sorted(f"from worker {pid}" for pid in by_worker)
        assert eventually(lambda: sorted(tail.messages()) == expected)
    finally:
        for tail in tails:
            tail.close()
        tails.clear()
        server.kill()


@pytest.mark.usefixtures("aws_credentials")
def test_the_dynamodb_store_feeds_every_replica(dynamodb_url: str, tmp_path: Path, tails: list[Tail]) -> None:
    first = ServerThread(
        make_settings(tmp_path / "one", store=dynamodb_url, tail_heartbeat_seconds=0.2)
    ).start()
    second = ServerThread(make_settings(tmp_path / "two", store=dynamodb_url)).start()
    try:
        tail = open_tail(tails, first)
        send(second, *({"message": f"r{i}", "service_name": f"svc-{i % 3}"} for i in range(5)))
        send(first, {"message": "r5"})
        send(second, {"message": "r6", "timestamp": "2022-02-02T00:00:00Z"})
        assert eventually(lambda: len(tail.entries()) == 7)
        assert tail.messages() == [f"r{i}" for i in range(7)]
        later = open_tail(tails, first, last_event_id=tail.events[0].id)
        assert eventually(lambda: len(later.entries()) == 7)
        assert later.messages() == tail.messages()  # resumed from the stream's start: the same, once each
        page = httpx.get(
            f"{second.url}/logs/tail",
            params={"cursor": tail.events[0].id, "service_name": "svc-1"},
            headers=bearer(second.admin),
            timeout=10,
        ).json()
        assert [e["message"] for e in page["logs"]] == ["r1", "r4"]
    finally:
        for tail in tails:
            tail.close()
        tails.clear()
        first.stop()
        second.stop()


# `logsvc` as Ctrl-C reaches it in a terminal, also when the suite runs as a background job: a shell
# starts those with SIGINT ignored, a disposition the child inherits and Python then leaves alone.
_INTERRUPTIBLE = (
    "import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "sys.argv[0] = 'logsvc'; runpy.run_module('logsvc', run_name='__main__')"
)


def test_logsvc_tail_prints_ndjson_and_text_safely(tail_server: ServerThread) -> None:
    write_profile(
        Path(tail_server.settings.credentials_file),
        "default",
        endpoint=tail_server.url,
        credential=tail_server.admin,
    )
    environ = {k: v for k, v in os.environ.items() if not k.startswith("LOGSVC_")}
    environ |= {k: v for k, v in settings_environment(tail_server.settings).items() if k != "LOGSVC_PORT"}
    commands = {
        "json": ["tail", "--json", "--service", "cli"],
        "text": ["tail", "--service", "cli", "--bearer"],
    }
    processes = {
        name: subprocess.Popen(
            [sys.executable, "-c", _INTERRUPTIBLE, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=environ,
            start_new_session=True,
        )
        for name, args in commands.items()
    }
    lines: dict[str, queue.Queue[str]] = {name: queue.Queue() for name in processes}
    for name, process in processes.items():
        assert process.stdout is not None
        threading.Thread(
            target=lambda s=process.stdout, q=lines[name]: [q.put(line) for line in s], daemon=True
        ).start()
    try:
        # Two interpreters starting on a loaded machine: a generous deadline.
        assert eventually(lambda: hub(tail_server).open_streams == 2, seconds=120)
        send(tail_server, {"message": "plain", "service_name": "other"})
        send(
            tail_server,
            {"message": "red \x1b[31malert\x1b[0m [bold]x[/]", "service_name": "cli", "level": "error"},
        )
        line = lines["json"].get(timeout=120)
        entry = json.loads(line)
        assert (entry["message"], entry["level"]) == ("red \x1b[31malert\x1b[0m [bold]x[/]", "ERROR")
        assert "\x1b" not in line
        text = lines["text"].get(timeout=120)
        assert "cli" in text
        assert "ERROR" in text
        assert "red \\x1b[31malert\\x1b[0m [bold]x[/]" in text  # shown, not obeyed
    finally:
        for process in processes.values():
            process.send_signal(signal.SIGINT)
        for process in processes.values():
            _, errors = process.communicate(timeout=120)
            assert process.returncode == 0, errors


def _tail_streams_ended(server: ServerThread) -> int:
    metrics = httpx.get(f"{server.url}/metrics", headers=bearer(server.admin), timeout=10).text
    counts = [
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("logsvc_http_requests_total{")
        and 'route="/logs/tail"' in line
        and 'status="200"' in line
    ]
    return int(sum(counts))


def _sync_reader(url: str, key: str, got: list[str]) -> None:
    with Client(url, api_key=key) as client:
        for event in client.tail(service_name="resumed", retries=2):
            got.append(event.entry["message"] if event.entry else "")


def _async_reader(url: str, key: str, got: list[str]) -> None:
    async def read() -> None:
        async with AsyncClient(url, api_key=key) as client:
            async for event in client.tail(service_name="resumed", retries=2):
                got.append(event.entry["message"] if event.entry else "")

    asyncio.run(read())


@pytest.mark.parametrize("reader_of", [_sync_reader, _async_reader], ids=["Client", "AsyncClient"])
def test_the_client_resumes_after_every_end_of_its_stream(
    tmp_path: Path, reader_of: Callable[[str, str, list[str]], None]
) -> None:
    server = ServerThread(tail_settings(tmp_path, tail_stream_seconds=0.5)).start()
    got: list[str] = []
    failure: list[BaseException] = []

    def read() -> None:
        try:
            reader_of(server.url, server.admin.api_key, got)
        except Unreachable as exc:  # the server stopped: the test is over
            failure.append(exc)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert eventually(lambda: hub(server).open_streams == 1)
        for round_ in range(3):
            ended = _tail_streams_ended(server)
            send(server, {"message": f"r{round_}", "service_name": "resumed"})
            assert eventually(
                lambda ended=ended: _tail_streams_ended(server) > ended
            )  # then the stream ended
            send(server, {"message": f"between {round_}", "service_name": "resumed"})
        assert eventually(lambda: len(got) == 6)
        assert got == [message for r in range(3) for message in (f"r{r}", f"between {r}")]
    finally:
        server.stop()
        reader.join(30)
    assert not reader.is_alive()
