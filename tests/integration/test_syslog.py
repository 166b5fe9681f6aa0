"""The syslog listener, driven by util-linux `logger` and by raw sockets against real servers on 127.0.0.1,
with every entry read back over the HTTP API."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from logsvc.connection import new_event_loop
from logsvc.datadir import DataDir
from logsvc.domain.queries import Query
from logsvc.domain.timestamps import parse_timestamp
from logsvc.errors import ConfigError
from logsvc.jobs import JobsLease
from logsvc.root import Root
from logsvc.settings import Settings, load_settings
from logsvc.syslog_listener import SyslogListener
from tests.conftest import (
    ServerProcess,
    ServerThread,
    bearer,
    eventually,
    make_settings,
    read_service,
    run_logsvc,
)
from tests.integration.test_auth_schemes import self_signed
from tests.integration.test_tail import Tail

LOGGER = "/usr/bin/logger"
SERVICES = ["myapp", "app-*"]


def syslog_port() -> int:
    """A port free for both TCP and UDP just now."""
    for _ in range(50):
        with socket.socket() as tcp, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            tcp.bind(("127.0.0.1", 0))
            port: int = tcp.getsockname()[1]
            try:
                udp.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no port free for TCP and UDP")


def logger(port: int, *args: str) -> None:
    """`logger` sending one message to the listener (its clock read as UTC, like the server's 3164 rule)."""
    subprocess.run(
        [LOGGER, "-n", "127.0.0.1", "-P", str(port), *args],
        check=True,
        timeout=30,
        env={**os.environ, "TZ": "UTC"},
    )


def metric(url: str, headers: dict[str, str], name: str, **labels: str) -> float:
    """A counter's value on /metrics (0 when it has not been counted yet)."""
    text = httpx.get(f"{url}/metrics", headers=headers, timeout=10).text
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    pattern = re.escape(f"{name}_total") + (r"\{" + re.escape(wanted) + r"\}" if wanted else "") + r" (\S+)"
    found = re.search("^" + pattern + "$", text, re.M)
    return float(found[1]) if found else 0.0


def octet(message: bytes) -> bytes:
    return b"%d %s" % (len(message), message)


class Syslog:
    """A ServerThread with the listener on, and how a test talks to it."""

    def __init__(self, server: ServerThread, port: int) -> None:
        self.server = server
        self.port = port

    def metric(self, name: str, **labels: str) -> float:
        return metric(self.server.url, bearer(self.server.admin), name, **labels)

    def dropped(self, reason: str) -> float:
        return self.metric("logsvc_syslog_messages_dropped", reason=reason)

    def closed(self, reason: str) -> float:
        return self.metric("logsvc_syslog_connections_closed", reason=reason)

    def entries(self, service: str, count: int) -> list[dict[str, Any]]:
        def read() -> list[dict[str, Any]]:
            answer = httpx.get(
                f"{self.server.url}/logs",
                params={"service_name": service, "limit": "1000"},
                headers=bearer(self.server.admin),
                timeout=10,
            )
            logs: list[dict[str, Any]] = answer.json()["logs"]
            return logs

        assert eventually(lambda: len(read()) >= count), service
        found = read()
        assert len(found) == count, found
        return found

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=30)

    def send_udp(self, datagram: bytes) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.sendto(datagram, ("127.0.0.1", self.port))


def start_syslog(tmp_path: Path, *, loop: str = "auto", **overrides: Any) -> Syslog:
    port = syslog_port()
    settings = make_settings(
        tmp_path / "data",
        syslog_port=port,
        syslog_services=SERVICES,
        syslog_timezone="UTC",
        **overrides,
    )
    return Syslog(ServerThread(settings, loop=loop).start(), port)


@pytest.fixture
def syslog(tmp_path: Path) -> Iterator[Syslog]:
    running = start_syslog(tmp_path)
    yield running
    running.server.stop()


def closed_by_server(sock: socket.socket) -> bool:
    """Whether the server closed the connection (EOF or reset) within the test's deadline."""
    sock.settimeout(30)
    try:
        while sock.recv(4096):
            pass
    except ConnectionResetError:
        pass
    return True


def near_now(timestamp: str, seconds: float = 120) -> bool:
    return abs(parse_timestamp(timestamp) / 1e6 - time.time()) < seconds


# ---- logger ----------------------------------------------------------------------------------------------


def test_logger_tcp_rfc5424_octet_counted(syslog: Syslog) -> None:
    logger(
        syslog.port, "--tcp", "--rfc5424", "--octet-count", "-t", "myapp", "-p", "user.err", "disk is full"
    )
    (entry,) = syslog.entries("myapp", 1)
    assert (entry["level"], entry["message"], entry["log_type"]) == ("ERROR", "disk is full", "application")
    assert near_now(entry["timestamp"])
    assert entry["timestamp"][20:26] != "000000"  # RFC 5424 keeps microseconds
    metadata = entry["metadata"]
    assert (metadata["facility"], metadata["severity"], metadata["format"]) == ("user", "err", "rfc5424")
    assert metadata["hostname"] == socket.gethostname()
    assert metadata["peer"] == "127.0.0.1"
    assert metadata["structured_data"]["timeQuality"]["tzKnown"] == "1"  # logger's own SD element
    assert syslog.metric("logsvc_syslog_messages_received", transport="tcp") == 1


def test_logger_tcp_newline_framing_and_udp(syslog: Syslog) -> None:
    logger(syslog.port, "--tcp", "--rfc5424", "-t", "app-lines", "-p", "daemon.warning", "one line")
    logger(syslog.port, "--udp", "--rfc5424", "-t", "app-lines", "-p", "local3.debug", "one datagram")
    entries = {e["message"]: e for e in syslog.entries("app-lines", 2)}
    assert entries["one line"]["level"] == "WARN"
    assert entries["one line"]["metadata"]["facility"] == "daemon"
    assert entries["one datagram"]["level"] == "DEBUG"
    assert entries["one datagram"]["metadata"]["facility"] == "local3"
    assert syslog.metric("logsvc_syslog_messages_received", transport="udp") == 1


def test_logger_rfc3164_over_udp_and_tcp(syslog: Syslog) -> None:
    before = int(time.time())
    logger(syslog.port, "--udp", "--rfc3164", "-t", "app-bsd", "-p", "auth.crit", "-i", "over udp")
    logger(syslog.port, "--tcp", "--rfc3164", "-t", "app-bsd", "-p", "mail.notice", "over tcp")
    after = time.time()
    entries = {e["message"]: e for e in syslog.entries("app-bsd", 2)}
    udp, tcp = entries["over udp"], entries["over tcp"]
    assert (udp["level"], tcp["level"]) == ("FATAL", "INFO")
    for entry in (udp, tcp):
        # RFC 3164 has whole seconds, no year and no zone: read in syslog_timezone (UTC, as logger wrote).
        assert before <= parse_timestamp(entry["timestamp"]) / 1e6 <= after
        assert entry["timestamp"].endswith(".000000Z")
        assert entry["metadata"]["format"] == "rfc3164"
        assert entry["metadata"]["hostname"] == socket.gethostname()
    assert udp["metadata"]["procid"].isdigit()  # logger -i: tag[pid]
    assert (udp["metadata"]["facility"], udp["metadata"]["severity"]) == ("auth", "crit")


def test_logger_structured_data_and_msgid(syslog: Syslog) -> None:
    logger(
        syslog.port,
        "--tcp",
        "--octet-count",
        "--rfc5424",
        "-t",
        "myapp",
        "--msgid",
        "ORDER42",
        "--sd-id",
        "order@32473",
        "--sd-param",
        'id="42"',
        "--sd-param",
        r'note="a \"quoted\" \] word"',
        "order placed",
    )
    (entry,) = syslog.entries("myapp", 1)
    assert entry["metadata"]["msgid"] == "ORDER42"
    assert entry["metadata"]["structured_data"]["order@32473"] == {"id": "42", "note": 'a "quoted" ] word'}
    assert entry["message"] == "order placed"


# ---- what is refused -------------------------------------------------------------------------------------


def test_malformed_messages_are_counted_and_the_connection_reads_on(syslog: Syslog) -> None:
    with syslog.connect() as sock:
        sock.sendall(
            b"<999>1 - - myapp - - - bad PRI\n"
            + octet(b"<13>1 2026-13-45T00:00:00Z - myapp - - - bad time")
            + b'<13>1 - - myapp - - [x@1 a="1] unescaped bracket\n'
            + b"<13>1 - - my@app - - - bad name\n"
            + b"<13>1 - - myapp - - - \n"  # blank: the rule of POST /logs
            + octet(b"<13>1 - - myapp - - - the good one")
        )
        (entry,) = syslog.entries("myapp", 1)
    assert entry["message"] == "the good one"
    assert eventually(lambda: syslog.dropped("malformed") == 3)
    assert syslog.dropped("bad_app_name") == 1
    assert syslog.dropped("invalid") == 1


def test_a_line_without_pri_that_starts_with_a_digit_is_a_line(syslog: Syslog) -> None:
    """rsyslog forwards a message without PRI with an RFC 3339 time first: digits, but not an octet count,
    so the connection reads on and keeps what was sent after it."""
    sent = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 60)).encode()
    with syslog.connect() as sock:
        sock.sendall(
            b"<13>1 - host app-iso - - - before\n"
            + sent
            + b" host app-iso: iso no pri\n"
            + octet(b"<13>1 - host app-iso - - - after")
        )
        entries = {e["message"]: e for e in syslog.entries("app-iso", 3)}
        sock.sendall(b"<13>1 - host app-iso - - - still open\n")  # the same connection reads on
        syslog.entries("app-iso", 4)
    assert entries.keys() == {"before", "iso no pri", "after"}
    assert entries["iso no pri"]["timestamp"] == sent.decode().replace("Z", ".000000Z")
    assert entries["iso no pri"]["metadata"]["hostname"] == "host"


def test_oversized_frames(tmp_path: Path) -> None:
    syslog = start_syslog(tmp_path, syslog_max_frame_bytes=1024)
    try:
        big = b"<13>1 - - myapp - - - " + b"x" * 2000
        with syslog.connect() as sock:  # an octet count over the limit: closed before the frame is read
            sock.sendall(b"5000000 " + big[:100])
            assert closed_by_server(sock)
        with syslog.connect() as sock:  # a line that passes the limit without its LF
            with contextlib.suppress(ConnectionResetError, BrokenPipeError):
                sock.sendall(big)
            assert closed_by_server(sock)
        syslog.send_udp(big)
        assert eventually(lambda: syslog.dropped("frame_too_large") == 3)
        assert syslog.closed("frame_too_large") == 2
        with syslog.connect() as sock:  # at the limit: stored
            fits = b"<13>1 - - myapp - - - " + b"y" * (1024 - 22)
            sock.sendall(octet(fits))
            (entry,) = syslog.entries("myapp", 1)
        assert len(entry["message"]) == 1024 - 22
    finally:
        syslog.server.stop()


def test_services_outside_syslog_services_are_never_stored(syslog: Syslog) -> None:
    logger(syslog.port, "--tcp", "--octet-count", "-t", "payments", "transfer 1000")
    logger(syslog.port, "--udp", "-t", "payments", "transfer 2000")
    logger(syslog.port, "--udp", "--rfc3164", "no tag here")  # the default service, not in the scope
    logger(syslog.port, "--tcp", "-t", "app-ok", "allowed")
    syslog.entries("app-ok", 1)
    assert eventually(lambda: syslog.dropped("outside_scope") == 3)
    assert read_service(syslog.server, "payments") == []
    assert read_service(syslog.server, "default") == []


def test_a_syslog_message_reaches_an_open_tail_at_once(tmp_path: Path) -> None:
    # The tail polls the store only every minute here: what it sees sooner, it was told of by the ingest.
    syslog = start_syslog(tmp_path, tail_poll_seconds=60, tail_heartbeat_seconds=0.2)
    tail = Tail(syslog.server.url, bearer(syslog.server.admin), [("service_name", "myapp")])
    try:
        assert tail.status == 200
        logger(syslog.port, "--tcp", "--octet-count", "-t", "myapp", "over syslog")
        assert eventually(lambda: tail.messages() == ["over syslog"], seconds=20)
    finally:
        tail.close()
        syslog.server.stop()


# ---- connections -----------------------------------------------------------------------------------------


def test_concurrent_connections_each_store_every_message(syslog: Syslog) -> None:
    per_connection = 300

    def send(number: int) -> None:
        with syslog.connect() as sock:
            for index in range(per_connection):
                message = b"<14>1 - - app-c%d - - - message %d" % (number, index)
                sock.sendall(octet(message) if index % 2 else message + b"\n")

    threads = [threading.Thread(target=send, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    for number in range(8):
        entries = syslog.entries(f"app-c{number}", per_connection)
        assert {e["message"] for e in entries} == {f"message {i}" for i in range(per_connection)}


class _Turns:
    """A SyslogObserver noting the turn of the event loop at which each message was received and each
    connection closed."""

    def __init__(self) -> None:
        self.turn = 0
        self.received: list[int] = []
        self.dropped: list[str] = []
        self.closed: list[tuple[str, int]] = []

    def syslog_received(self, transport: str, count: int) -> None:
        self.received.extend([self.turn] * count)

    def syslog_dropped(self, reason: str, count: int) -> None:
        self.dropped.append(reason)

    def syslog_closed(self, reason: str) -> None:
        self.closed.append((reason, self.turn))


_BURST = 40
_LOOP_FACTORIES = pytest.mark.parametrize(
    "loop_factory", [new_event_loop, asyncio.new_event_loop], ids=["served", "asyncio"]
)


def _burst(
    settings: Settings,
    loop_factory: Callable[[], asyncio.AbstractEventLoop],
    line: bytes | None,
    over: Callable[[_Turns], bool],
) -> tuple[_Turns, set[str]]:
    """A listener on a loop busy with 10 ms of work a turn: _BURST connections arrive while it is blocked
    and wait in the listening socket's queue, each sending ``line`` (and its number), then the loop turns
    until ``over``. What it noted, and the messages of service app-burst stored."""
    loop = loop_factory()
    root = Root(settings)
    observer = _Turns()
    listener = SyslogListener(settings, root.log_service(), observer)
    clients: list[socket.socket] = []

    def connect() -> None:
        for number in range(_BURST):
            clients.append(socket.create_connection(("127.0.0.1", settings.syslog_port), timeout=30))
            if line is not None:
                clients[-1].sendall(b"%s %d\n" % (line, number))

    async def serve() -> None:
        await root.start()
        await listener.start()
        connecting = threading.Thread(target=connect, daemon=True)
        connecting.start()
        connecting.join(30)
        done = loop.create_future()

        def turn() -> None:
            observer.turn += 1
            time.sleep(0.01)  # not a wait: the work of a busy loop
            if over(observer) or observer.turn >= 1000:
                done.set_result(None)
            else:
                loop.call_soon(turn)

        loop.call_soon(turn)
        await done

    async def stop() -> set[str]:
        await listener.stop()  # what was read is committed
        page = await root.store().recent(Query(limit=100, service_name="app-burst"))
        await root.stop()
        await loop.shutdown_default_executor()
        return {entry.message for entry in page.logs}

    try:
        loop.run_until_complete(serve())
    finally:
        for client in clients:
            client.close()
        messages = loop.run_until_complete(stop())
        loop.close()
    return observer, messages


@_LOOP_FACTORIES
def test_a_burst_of_connections_is_accepted_at_once_by_a_busy_loop(
    tmp_path: Path, loop_factory: Callable[[], asyncio.AbstractEventLoop]
) -> None:
    """After a restart every sender reconnects at once. The serving loop (`logsvc serve`'s) accepts every
    connection waiting at each turn (decision 54), where uvloop alone takes one a turn: 40 turns of a busy
    loop. asyncio's own loop accepts them at once too. Each message is stored."""
    settings = make_settings(tmp_path / "data", syslog_port=syslog_port(), syslog_services=SERVICES)
    line = b"<14>1 - - app-burst - - - message"
    observer, messages = _burst(settings, loop_factory, line, lambda seen: len(seen.received) >= _BURST)
    assert len(observer.received) == _BURST, observer.turn
    # Accepted at the first turn, set up and read at the next ones; one connection a turn would take 40.
    assert max(observer.received) - min(observer.received) <= 3, observer.received
    assert (observer.dropped, observer.closed) == ([], [])
    assert messages == {f"message {number}" for number in range(_BURST)}


@_LOOP_FACTORIES
def test_a_burst_of_tls_connections_is_admitted_at_once_by_a_busy_loop(
    tmp_path: Path, loop_factory: Callable[[], asyncio.AbstractEventLoop]
) -> None:
    """TLS connections are admitted as they are accepted, before their handshake: the last of a burst, one
    over syslog_max_connections, is refused at the first turns (uvloop's sock_accept alone: the 40th)."""
    cert, key = self_signed(tmp_path)
    settings = make_settings(
        tmp_path / "data",
        syslog_port=syslog_port(),
        syslog_services=SERVICES,
        syslog_tls=True,
        tls_cert=str(cert),
        tls_key=str(key),
        syslog_max_connections=_BURST - 1,
    )
    observer, _ = _burst(settings, loop_factory, None, lambda seen: bool(seen.closed))
    assert observer.closed, observer.turn
    ((reason, turn),) = observer.closed
    assert reason == "too_many_connections"
    assert turn <= 3, turn


def test_idle_and_slow_connections_are_closed(tmp_path: Path) -> None:
    syslog = start_syslog(tmp_path, syslog_idle_timeout=0.5)
    try:
        with syslog.connect() as silent, syslog.connect() as slow:
            slow.sendall(b"<13>1 - - myapp - - - never end")  # no LF: the message never completes
            assert closed_by_server(silent)
            assert closed_by_server(slow)
        assert eventually(lambda: syslog.closed("idle_timeout") == 2)
    finally:
        syslog.server.stop()


def test_connections_over_the_limit_are_closed(tmp_path: Path) -> None:
    syslog = start_syslog(tmp_path, syslog_max_connections=2)
    try:
        with syslog.connect() as first, syslog.connect() as second:
            for number, sock in enumerate((first, second)):
                sock.sendall(b"<13>1 - - myapp - - - held %d\n" % number)
            syslog.entries("myapp", 2)  # both admitted
            with syslog.connect() as third:
                assert closed_by_server(third)
            assert syslog.closed("too_many_connections") == 1
    finally:
        syslog.server.stop()


def test_tls(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    syslog = start_syslog(tmp_path, tls_cert=str(cert), tls_key=str(key), syslog_tls=True)
    try:
        context = ssl.create_default_context(cafile=str(cert))
        with (
            socket.create_connection(("127.0.0.1", syslog.port), timeout=30) as raw,
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            assert tls.version() in {"TLSv1.2", "TLSv1.3"}
            tls.sendall(octet(b"<11>1 - - myapp - - - over tls"))  # RFC 5425: octet counting
            (entry,) = syslog.entries("myapp", 1)
        assert entry["level"] == "ERROR"
        with syslog.connect() as plain:  # clear text on a TLS port is not syslog
            plain.sendall(b"<13>1 - - myapp - - - clear\n")
            assert closed_by_server(plain)
        assert eventually(lambda: syslog.closed("handshake_failed") == 1)
        # With TLS there is no UDP: clear text would go around it.
        syslog.send_udp(b"<13>1 - - myapp - - - datagram")
        assert syslog.metric("logsvc_syslog_messages_received", transport="udp") == 0
    finally:
        syslog.server.stop()


# The TLS handshake is the event loop's (start_tls), and asyncio and uvloop each have their own: both are run.
LOOPS = ["uvloop", "asyncio"]


def start_tls_syslog(tmp_path: Path, loop: str, **overrides: Any) -> tuple[Syslog, ssl.SSLContext]:
    """A listener with syslog_tls on, and a client context that trusts its certificate."""
    cert, key = self_signed(tmp_path)
    syslog = start_syslog(
        tmp_path, loop=loop, tls_cert=str(cert), tls_key=str(key), syslog_tls=True, **overrides
    )
    return syslog, ssl.create_default_context(cafile=str(cert))


def sent_over_tls(syslog: Syslog, context: ssl.SSLContext, message: bytes) -> bool:
    """Whether a TLS client got through the handshake and sent ``message`` (False: the server refused)."""
    try:
        with (
            syslog.connect() as raw,
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            tls.sendall(octet(message))
    except OSError:  # ssl.SSLError, reset or EOF: closed by the server during the handshake
        return False
    return True


@pytest.mark.parametrize("loop", LOOPS)
def test_tls_handshakes_count_against_the_connection_limit(tmp_path: Path, loop: str) -> None:
    """Connections still in the handshake hold their place: past the limit a new one is closed at once,
    not left to wait for its handshake, and the places come back when they close."""
    syslog, context = start_tls_syslog(tmp_path, loop, syslog_max_connections=3)
    try:
        silent = [syslog.connect() for _ in range(3)]  # connected, and never a ClientHello
        try:
            with syslog.connect() as fourth:
                assert closed_by_server(fourth)
            assert eventually(lambda: syslog.closed("too_many_connections") == 1)
        finally:
            for sock in silent:
                sock.close()
        assert eventually(lambda: sent_over_tls(syslog, context, b"<13>1 - - myapp - - - in again"))
        (entry,) = syslog.entries("myapp", 1)
        assert entry["message"] == "in again"
        assert syslog.closed("handshake_timeout") == 0
    finally:
        syslog.server.stop()


@pytest.mark.parametrize("loop", LOOPS)
def test_a_stalled_tls_handshake_is_closed_after_its_limit(tmp_path: Path, loop: str) -> None:
    """The handshake's limit is syslog_idle_timeout (at most 60 s): a silent client and one whose
    ClientHello never ends are closed and counted, and give their places back."""
    syslog, context = start_tls_syslog(tmp_path, loop, syslog_idle_timeout=1.0, syslog_max_connections=2)
    try:
        with syslog.connect() as silent, syslog.connect() as partial:
            partial.sendall(b"\x16\x03\x01\x02\x00\x01")  # a handshake record of 512 bytes; 1 sent
            assert closed_by_server(silent)
            assert closed_by_server(partial)
        assert eventually(lambda: syslog.closed("handshake_timeout") == 2)
        assert eventually(lambda: sent_over_tls(syslog, context, b"<13>1 - - myapp - - - a place again"))
        syslog.entries("myapp", 1)
        assert syslog.closed("too_many_connections") == 0
    finally:
        syslog.server.stop()


@pytest.mark.parametrize("loop", LOOPS)
def test_stopping_closes_connections_in_the_handshake(tmp_path: Path, loop: str) -> None:
    syslog, _ = start_tls_syslog(tmp_path, loop, syslog_max_connections=1)
    stopped = False
    try:
        with syslog.connect() as silent:
            with syslog.connect() as second:  # closed at once: the silent one holds the only place
                assert closed_by_server(second)
            syslog.server.stop()
            stopped = True
            assert not syslog.server.thread.is_alive()
            assert closed_by_server(silent)
    finally:
        if not stopped:
            syslog.server.stop()


@pytest.mark.parametrize("loop", LOOPS)
def test_messages_in_the_last_flight_of_the_handshake_are_stored(tmp_path: Path, loop: str) -> None:
    """A client whose Finished, messages and close_notify leave in one write: the server reads them all
    at once, as the handshake ends."""
    syslog, context = start_tls_syslog(tmp_path, loop)
    try:
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        client = context.wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
        with syslog.connect() as sock:
            while True:
                try:
                    client.do_handshake()
                    break
                except ssl.SSLWantReadError:
                    sock.sendall(outgoing.read())
                    answer = sock.recv(65536)
                    assert answer, "the server closed the connection during the handshake"
                    incoming.write(answer)
            client.write(octet(b"<13>1 - - myapp - - - first") + b"<13>1 - - myapp - - - second\n")
            with contextlib.suppress(ssl.SSLWantReadError):
                client.unwrap()  # close_notify; the server's is not waited for
            sock.sendall(outgoing.read())
            assert closed_by_server(sock)
        assert sorted(e["message"] for e in syslog.entries("myapp", 2)) == ["first", "second"]
    finally:
        syslog.server.stop()


# ---- settings and the server's life ----------------------------------------------------------------------


def test_listener_is_off_by_default(server: ServerThread) -> None:
    assert server.settings.syslog_port == 0
    assert not (Path(server.settings.data_dir) / "syslog.lock").exists()
    metrics = httpx.get(f"{server.url}/metrics", headers=bearer(server.admin), timeout=10).text
    assert "logsvc_syslog_messages_received_total{" not in metrics


def test_a_port_without_services_refuses_to_start(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="syslog_port needs syslog_services"):
        load_settings(environ={}, overrides={"syslog_port": 5514})
    with pytest.raises(ConfigError, match="syslog_tls uses the server's certificate"):
        load_settings(
            environ={}, overrides={"syslog_port": 5514, "syslog_services": ["a"], "syslog_tls": True}
        )
    with pytest.raises(ConfigError, match="syslog_services"):
        load_settings(environ={}, overrides={"syslog_port": 5514, "syslog_services": ["a[b]"]})
    settings = make_settings(tmp_path / "data")
    result = run_logsvc(settings, "serve", "--port", "0", "--syslog-port", str(syslog_port()))
    assert result.returncode == 2
    assert "syslog_port needs syslog_services" in result.stderr


@contextlib.contextmanager
def _udp_port_whose_tcp_twin_is_free() -> Iterator[socket.socket]:
    """A bound UDP socket; its port number is free on TCP too, or the start would fail on TCP instead (a
    random UDP port can be some TCP client's ephemeral port)."""
    for _ in range(100):
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.bind(("127.0.0.1", 0))
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                tcp.bind(("127.0.0.1", udp.getsockname()[1]))
            except OSError:
                udp.close()
                continue
        with udp:
            yield udp
        return
    raise AssertionError("no UDP port with a free TCP twin in 100 tries")


def test_a_port_in_use_stops_the_start(tmp_path: Path) -> None:
    with _udp_port_whose_tcp_twin_is_free() as taken:
        port = taken.getsockname()[1]
        settings = make_settings(tmp_path / "data")
        result = run_logsvc(
            settings, "serve", "--port", "0", "--syslog-port", str(port), "--syslog-service", "a"
        )
    assert result.returncode == 2
    assert f"syslog_port: cannot listen on 127.0.0.1:{port}/UDP" in result.stderr


@pytest.mark.parametrize("tls", [False, True], ids=["tcp", "tls"])
def test_a_tcp_port_taken_after_the_probe_is_named_and_let_go(tmp_path: Path, tls: bool) -> None:
    """The port can be taken between the start's probe and the listener's bind (or before a worker takes the
    listener over): the error names it as the probe's does, and the listener's lease is given back."""
    cert, key = self_signed(tmp_path)
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        settings = make_settings(
            tmp_path / "data",
            syslog_port=port,
            syslog_services=SERVICES,
            syslog_tls=tls,
            tls_cert=str(cert),
            tls_key=str(key),
        )
        loop = new_event_loop()
        root = Root(settings)

        async def start() -> None:
            await root.start()
            try:
                listener = SyslogListener(settings, root.log_service(), None)
                with pytest.raises(ConfigError, match=f"cannot listen on 127.0.0.1:{port}/TCP: Address"):
                    await listener.start()
            finally:
                await root.stop()
                await loop.shutdown_default_executor()

        try:
            loop.run_until_complete(start())
        finally:
            loop.close()
    lease = JobsLease(DataDir(settings.data_dir).syslog_lock)
    assert lease.try_take()
    lease.release()


class Stream:
    """One TCP connection sending numbered messages (each framing in turn) until the server goes away."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.stop = threading.Event()

    def _run(self) -> None:
        number = 0
        with contextlib.suppress(OSError):
            while not self.stop.is_set() and number < 300_000:
                chunk = []
                for _ in range(100):
                    message = b"<14>1 - - myapp - - - %d" % number
                    chunk.append(octet(message) if number % 2 else message + b"\n")
                    number += 1
                self.sock.sendall(b"".join(chunk))

    def __enter__(self) -> Stream:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.sock.close()
        self.thread.join(timeout=30)


def _numbers(server: ServerProcess) -> list[int]:
    numbers: list[int] = []
    cursor = None
    while True:
        params = {"service_name": "myapp", "limit": "1000"} | ({"cursor": cursor} if cursor else {})
        page = httpx.get(f"{server.url}/logs", params=params, headers=server.headers, timeout=30).json()
        numbers += [int(e["message"]) for e in page["logs"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return numbers


@pytest.mark.crash
@pytest.mark.parametrize("how", ["SIGKILL", "SIGTERM"])
def test_stopping_mid_stream_loses_nothing_committed(tmp_path: Path, how: str) -> None:
    """Messages of one connection are committed in order, each read before the next: whatever the
    server counted as stored survives SIGKILL, and what it holds is a gapless prefix of the stream.
    SIGTERM commits what was read and exits cleanly."""
    port = syslog_port()
    args = ("--syslog-port", str(port), "--syslog-service", "myapp")
    server = ServerProcess(tmp_path / "data", *args).start()
    try:
        with Stream(port):
            assert eventually(lambda: metric(server.url, server.headers, "logsvc_entries_ingested") >= 3000)
            committed = metric(server.url, server.headers, "logsvc_entries_ingested")
            if how == "SIGKILL":
                server.kill()
            else:
                assert server.terminate() == -signal.SIGTERM  # uvicorn re-raises it once shut down
        log = server.log_path.read_text()
        assert "did not take what was read" not in log
        server = ServerProcess(tmp_path / "data", *args).start()
        numbers = sorted(_numbers(server))
        assert numbers == list(range(len(numbers)))  # no gap, no duplicate
        assert len(numbers) >= committed
    finally:
        server.kill()


def test_with_workers_one_listens_and_another_takes_over(tmp_path: Path) -> None:
    port = syslog_port()
    server = ServerProcess(
        tmp_path / "data", "--workers", "2", "--syslog-port", str(port), "--syslog-service", "myapp"
    ).start()
    try:
        listening = re.compile(r"syslog listener on 127\.0\.0\.1:\d+ \(TCP and UDP\) in process (\d+)")

        def listeners() -> list[int]:
            return [int(pid) for pid in listening.findall(server.log_path.read_text())]

        assert eventually(lambda: len(listeners()) == 1)
        logger(port, "--tcp", "--octet-count", "-t", "myapp", "first")
        assert eventually(lambda: _messages(server) == {"first"})
        os.kill(listeners()[0], signal.SIGKILL)

        def second_stored() -> bool:
            if len(listeners()) < 2:
                return False
            logger(port, "--udp", "-t", "myapp", "second")
            return "second" in _messages(server)

        assert eventually(second_stored)
        assert listeners()[1] != listeners()[0]
    finally:
        server.kill()


def _messages(server: ServerProcess) -> set[str]:
    page = httpx.get(
        f"{server.url}/logs", params={"service_name": "myapp"}, headers=server.headers, timeout=10
    ).json()
    return {e["message"] for e in page["logs"]}
