"""The syslog listener: RFC 5424 and RFC 3164 messages over TCP (RFC 6587 framing; TLS as RFC 5425 with
``syslog_tls``) and UDP (RFC 5426) on ``syslog_port``, stored through ``LogService.ingest_syslog`` within
``syslog_services``. Decision 20 gives the reasons; in short:

- **TCP back-pressure.** What a connection reads is framed, and its complete messages are committed
  durably before it reads again (reading is paused meanwhile, so the sender's TCP window closes). A
  connection holds at most one read and one unfinished frame; concurrent connections commit together
  in the store's group commit.
- **UDP** has no back-pressure: datagrams wait in a queue bounded in bytes, and past it they are dropped
  and counted.
- **Bounds.** A frame over ``syslog_max_frame_bytes`` or a broken octet count closes the connection;
  past ``syslog_max_connections`` a new connection is closed at once; a connection that completes no
  message for ``syslog_idle_timeout`` seconds is closed (slow or silent senders).
- **TLS** connections are admitted as they are accepted, before their handshake, which must end within
  ``syslog_idle_timeout`` (at most ``MAX_HANDSHAKE_SECONDS``): connections in the handshake count
  against ``syslog_max_connections``.
- **One listener per data directory**, in the process holding ``syslog.lock`` (``--workers N``: one
  worker; another takes over within a second when it exits).
- **Stop** (SIGTERM): no more reads, and what was read is committed before the store closes.

Every message not stored is counted by reason (``SyslogObserver``, the Prometheus metrics) and logged at
most once per reason every ``DROP_LOG_SECONDS``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import ssl
import time
from collections import deque
from typing import Protocol, cast

from logsvc.datadir import DataDir
from logsvc.domain.syslog_frames import FramingError, SyslogFramer
from logsvc.errors import ConfigError, LogServiceError, RetryLater, StoreFull
from logsvc.jobs import JobsLease
from logsvc.service import LogService
from logsvc.settings import Settings

__all__ = ["SyslogListener", "SyslogObserver", "probe_syslog_port"]

log = logging.getLogger("logsvc.syslog")

# Datagrams read but not yet committed, at most (a datagram is at most 64 KiB).
UDP_QUEUE_BYTES = 8 * 1024 * 1024
# How often a process without the listener tries to take it over.
TAKE_OVER_SECONDS = 1.0
DROP_LOG_SECONDS = 10.0
# A failing store is tried again after this long, doubling up to the maximum, while the connection waits.
RETRY_FIRST_SECONDS = 0.1
RETRY_MAX_SECONDS = 5.0
MAX_HANDSHAKE_SECONDS = 60.0
# The TCP port's listen backlog, uvicorn's for the HTTP port: the senders reconnecting at once after a
# restart wait in the kernel's queue, where past it they would try again only a second later (decision 54).
ACCEPT_BACKLOG = 2048
# How long the TLS port stops accepting after a failure such as EMFILE (as asyncio's own servers do).
ACCEPT_RETRY_SECONDS = 1.0

# Reasons, besides those of the parser and the service, that a message is dropped or a connection closed.
QUEUE_FULL = "queue_full"
STORE_UNAVAILABLE = "store_unavailable"
STORE_ERROR = "store_error"
TOO_MANY_CONNECTIONS = "too_many_connections"
IDLE_TIMEOUT = "idle_timeout"
HANDSHAKE_TIMEOUT = "handshake_timeout"
HANDSHAKE_FAILED = "handshake_failed"


class SyslogObserver(Protocol):
    """Told what the listener received, dropped and closed (metrics)."""

    def syslog_received(self, transport: str, count: int) -> None: ...

    def syslog_dropped(self, reason: str, count: int) -> None: ...

    def syslog_closed(self, reason: str) -> None: ...


def probe_syslog_port(settings: Settings) -> None:
    """Bind the syslog port once (TCP, and UDP without TLS) and let it go, so that a port in use or one that
    needs privileges stops the start with a clear error before any worker starts."""
    kinds = [socket.SOCK_STREAM] if settings.syslog_tls else [socket.SOCK_STREAM, socket.SOCK_DGRAM]
    for kind in kinds:
        name = "TCP" if kind == socket.SOCK_STREAM else "UDP"
        try:
            for family, address in _addresses(settings.host, settings.syslog_port, kind):
                with socket.socket(family, kind) as probe:
                    if kind == socket.SOCK_STREAM:
                        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    probe.bind(address)
        except OSError as exc:
            raise _cannot_listen(settings, name, exc) from None


def _cannot_listen(settings: Settings, transport: str, exc: OSError) -> ConfigError:
    privileged = settings.syslog_port < 1024
    hint = " (ports below 1024 need root or CAP_NET_BIND_SERVICE)" if privileged else ""
    return ConfigError(
        f"syslog_port: cannot listen on {settings.host}:{settings.syslog_port}/{transport}: "
        f"{exc.strerror}{hint}"
    )


def _addresses(host: str, port: int, kind: int) -> list[tuple[int, tuple[str, int]]]:
    """The addresses ``host`` names, each once, as (family, (address, port))."""
    found = socket.getaddrinfo(host, port, type=kind, flags=socket.AI_PASSIVE)
    return list(dict.fromkeys((family, (str(address[0]), int(address[1]))) for family, *_, address in found))


class _DropLog:
    """At most one log line per kind of event every DROP_LOG_SECONDS, saying how many happened since the
    last line and what the last one was: a flood of bad messages cannot flood the service's log."""

    def __init__(self) -> None:
        self._last: dict[str, float] = {}
        self._pending: dict[str, tuple[int, str, str | None]] = {}

    def add(self, what: str, count: int, detail: str, peer: str | None) -> None:
        """``what`` names the event, such as "message(s) dropped (malformed)"."""
        previous = self._pending.get(what, (0, "", None))[0]
        self._pending[what] = (previous + count, detail, peer)
        now = time.monotonic()
        if now - self._last.get(what, -DROP_LOG_SECONDS) >= DROP_LOG_SECONDS:
            self._last[what] = now
            self._emit(what)

    def flush(self) -> None:
        for what in list(self._pending):
            self._emit(what)

    def _emit(self, what: str) -> None:
        count, detail, peer = self._pending.pop(what)
        log.warning("syslog: %d %s; the last from %s: %s", count, what, peer or "an unknown address", detail)


class SyslogListener:
    """The listener of one app: ``start`` in its lifespan, ``stop`` before the store closes."""

    def __init__(self, settings: Settings, service: LogService, observer: SyslogObserver | None) -> None:
        self.settings = settings
        self.service = service
        self.observer = observer
        self._lease = JobsLease(DataDir(settings.data_dir).syslog_lock)
        self._waiting: asyncio.Task[None] | None = None
        self._servers: list[asyncio.Server] = []
        self._listening: list[socket.socket] = []
        self._accepting: list[asyncio.Task[None]] = []
        self._handshakes: set[asyncio.Task[None]] = set()
        self.tls = False  # with TLS, connections are admitted on accept (_accept), not in connection_made
        self._datagrams: list[asyncio.DatagramTransport] = []
        self._connections: set[_Connection] = set()
        self._commits: set[asyncio.Task[None]] = set()
        self._queue: deque[tuple[bytes, str | None]] = deque()
        self._queued_bytes = 0
        self._queue_ready = asyncio.Event()
        self._drainer: asyncio.Task[None] | None = None
        self._drops = _DropLog()
        self.stopping = False

    async def start(self) -> None:
        """Listen now if this process takes the lease (a bind that fails raises); otherwise wait for it."""
        if self._lease.try_take():
            try:
                await self._open()
            except BaseException:
                await self._close_servers()
                self._lease.release()
                raise
        else:
            self._waiting = asyncio.create_task(self._take_over())

    async def _take_over(self) -> None:
        while True:
            await asyncio.sleep(TAKE_OVER_SECONDS)
            if not self._lease.try_take():
                continue
            try:
                await self._open()
            except (OSError, ConfigError) as exc:
                log.error("syslog listener could not start, next try in %g s: %s", TAKE_OVER_SECONDS, exc)
                await self._close_servers()
                self._lease.release()
                continue
            return

    async def _open(self) -> None:
        settings = self.settings
        loop = asyncio.get_running_loop()
        if settings.syslog_tls:
            self.tls = True
            self._listen_tls(self._tls_context())
        else:
            # On sockets given, the serving loop's server accepts every connection waiting at each turn,
            # where uvloop's takes one a turn (decision 54): every sender reconnects at once after a restart.
            for listening in self._bind():
                server = await loop.create_server(
                    lambda: _Connection(self), sock=listening, backlog=ACCEPT_BACKLOG
                )
                self._servers.append(server)
            for family, address in _addresses(settings.host, settings.syslog_port, socket.SOCK_DGRAM):
                transport, _ = await loop.create_datagram_endpoint(
                    lambda: _Datagrams(self), local_addr=address, family=family
                )
                self._datagrams.append(transport)
            self._drainer = asyncio.create_task(self._drain())
        transports = "TCP with TLS" if settings.syslog_tls else "TCP and UDP"
        log.info(
            "syslog listener on %s:%d (%s) in process %d, for services %s",
            settings.host,
            settings.syslog_port,
            transports,
            os.getpid(),
            ", ".join(settings.syslog_services),
        )

    def _bind(self) -> list[socket.socket]:
        """A listening TCP socket for each address of host (an IPv6 one for IPv6 only: the IPv4 address has
        its own, or the second bind would fail)."""
        settings = self.settings
        bound: list[socket.socket] = []
        for family, address in _addresses(settings.host, settings.syslog_port, socket.SOCK_STREAM):
            listening = socket.socket(family, socket.SOCK_STREAM)
            self._listening.append(listening)  # closed by _close_servers, whatever happens next
            bound.append(listening)
            listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                listening.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                listening.bind(address)
            except OSError as exc:
                raise _cannot_listen(settings, "TCP", exc) from None
            listening.listen(ACCEPT_BACKLOG)
            listening.setblocking(False)
        return bound

    def _listen_tls(self, context: ssl.SSLContext) -> None:
        """Listen and accept here rather than through ``create_server(ssl=...)``, whose connections reach
        their protocol, and so the connection limit, only once their handshake is done."""
        self._accepting = [asyncio.create_task(self._accept(sock, context)) for sock in self._bind()]

    async def _accept(self, listening: socket.socket, context: ssl.SSLContext) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                sock, address = await loop.sock_accept(listening)
            except ConnectionAbortedError:  # the client left before it was accepted
                continue
            except OSError as exc:  # out of file descriptors or memory: wait, as asyncio's servers do
                self._drops.add(
                    f"accept failure(s), retried in {ACCEPT_RETRY_SECONDS:g} s", 1, str(exc), None
                )
                await asyncio.sleep(ACCEPT_RETRY_SECONDS)
                continue
            self._start_handshake(sock, str(address[0]), context)
            # uvloop's sock_accept takes one connection a turn of the loop: the others waiting now are taken
            # at once (decision 54). A failure is left to the next sock_accept, which waits if it persists.
            for _ in range(ACCEPT_BACKLOG - 1):
                try:
                    sock, address = listening.accept()
                except ConnectionAbortedError:
                    continue
                except OSError:  # BlockingIOError: none waits any more
                    break
                sock.setblocking(False)
                self._start_handshake(sock, str(address[0]), context)

    def _start_handshake(self, sock: socket.socket, peer: str, context: ssl.SSLContext) -> None:
        connection = _Connection(self)
        connection.peer = peer
        if not self.admit(connection):
            sock.close()
            return
        handshake = asyncio.create_task(connection.handshake(sock, context))
        self._handshakes.add(handshake)
        handshake.add_done_callback(self._handshakes.discard)

    def _tls_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            context.load_cert_chain(self.settings.tls_cert, self.settings.tls_key)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"syslog_tls: cannot load tls_cert and tls_key: {exc}") from None
        return context

    async def stop(self) -> None:
        """Read no more; commit what was read (within shutdown_timeout); close every connection."""
        self.stopping = True
        if self._waiting is not None:
            self._waiting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._waiting
        for server in self._servers:
            server.close()
        await self._stop_accepting()
        for connection in list(self._connections):
            connection.stop_reading()
        for transport in self._datagrams:
            transport.close()
        self._queue_ready.set()
        pending = [*self._commits, *([self._drainer] if self._drainer is not None else [])]
        if pending:
            _, late = await asyncio.wait(pending, timeout=self.settings.shutdown_timeout)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late)
                log.error("syslog: the store did not take what was read within shutdown_timeout")
        for connection in list(self._connections):
            connection.close()
        for handshake in self._handshakes:
            handshake.cancel()
        if self._handshakes:
            await asyncio.wait(self._handshakes)
        await self._close_servers()
        self._lease.release()
        self._drops.flush()

    async def _stop_accepting(self) -> None:
        accepting, self._accepting = self._accepting, []
        for task in accepting:
            task.cancel()
        if accepting:
            await asyncio.wait(accepting)

    async def _close_servers(self) -> None:
        servers, self._servers = self._servers, []
        for server in servers:
            server.close()
            await server.wait_closed()
        await self._stop_accepting()
        listening, self._listening = self._listening, []
        for sock in listening:
            sock.close()
        for transport in self._datagrams:
            transport.close()
        self._datagrams = []

    # ---- what connections and datagrams hand over -----------------------------------------------------

    def admit(self, connection: _Connection) -> bool:
        if len(self._connections) >= self.settings.syslog_max_connections:
            limit = f"over syslog_max_connections ({len(self._connections)})"
            self.closed(TOO_MANY_CONNECTIONS, limit, connection.peer)
            return False
        self._connections.add(connection)
        return True

    @property
    def handshake_timeout(self) -> float:
        return min(self.settings.syslog_idle_timeout, MAX_HANDSHAKE_SECONDS)

    def forget(self, connection: _Connection) -> None:
        self._connections.discard(connection)

    def spawn_commit(self, commit: asyncio.Task[None]) -> None:
        self._commits.add(commit)
        commit.add_done_callback(self._commits.discard)

    def received(self, transport: str, count: int) -> None:
        if self.observer is not None:
            self.observer.syslog_received(transport, count)

    def dropped(self, reason: str, count: int, detail: str, peer: str | None) -> None:
        if self.observer is not None:
            self.observer.syslog_dropped(reason, count)
        self._drops.add(f"message(s) dropped ({reason})", count, detail, peer)

    def closed(self, reason: str, detail: str, peer: str | None) -> None:
        if self.observer is not None:
            self.observer.syslog_closed(reason)
        self._drops.add(f"connection(s) closed ({reason})", 1, detail, peer)

    async def ingest(self, messages: list[tuple[bytes, str | None]]) -> None:
        """Commit ``messages`` durably; a store that refuses for a while is tried again until it takes
        them or the listener stops (the connection waits meanwhile, and so does its sender)."""
        delay = RETRY_FIRST_SECONDS
        peer = messages[0][1]
        while True:
            try:
                outcome = await self.service.ingest_syslog(
                    messages, scope=self.settings.syslog_services, zone=self.settings.syslog_zone
                )
                break
            except (RetryLater, StoreFull) as exc:
                if self.stopping:
                    self.dropped(STORE_UNAVAILABLE, len(messages), exc.detail, peer)
                    return
                self._drops.add("store refusal(s), tried again", 1, exc.detail, peer)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_SECONDS)
            except LogServiceError as exc:
                self.dropped(STORE_ERROR, len(messages), exc.detail, peer)
                return
            except asyncio.CancelledError:
                self.dropped(STORE_UNAVAILABLE, len(messages), "the server stopped first", peer)
                raise
            except Exception:
                # A background task has nobody to answer: the failure is logged and counted, and the
                # connection reads on.
                log.exception("syslog: storing %d message(s) failed", len(messages))
                self.dropped(STORE_ERROR, len(messages), "an internal error (logged)", peer)
                return
        for reason, count in outcome.dropped.items():
            self.dropped(reason, count, outcome.details[reason], peer)

    def datagram(self, data: bytes, peer: str | None) -> None:
        self.received("udp", 1)
        if len(data) > self.settings.syslog_max_frame_bytes:
            limit = self.settings.syslog_max_frame_bytes
            self.dropped("frame_too_large", 1, f"a datagram over syslog_max_frame_bytes ({limit})", peer)
        elif self._queued_bytes + len(data) > UDP_QUEUE_BYTES:
            self.dropped(QUEUE_FULL, 1, f"{UDP_QUEUE_BYTES} bytes of datagrams wait for the store", peer)
        else:
            self._queue.append((data, peer))
            self._queued_bytes += len(data)
            self._queue_ready.set()

    async def _drain(self) -> None:
        """Commit queued datagrams, as many as a batch holds at a time, until stopped and empty."""
        batch_size = self.service.limits.max_batch_entries
        while True:
            await self._queue_ready.wait()
            self._queue_ready.clear()
            while self._queue:
                batch = [self._queue.popleft() for _ in range(min(batch_size, len(self._queue)))]
                self._queued_bytes -= sum(len(data) for data, _ in batch)
                await self.ingest(batch)
            if self.stopping:
                return


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection: frames what it reads and, while its messages are committed, reads
    nothing more. A TLS one is admitted on accept, then ``handshake`` makes its transport."""

    def __init__(self, listener: SyslogListener) -> None:
        self.listener = listener
        self.framer = SyslogFramer(listener.settings.syslog_max_frame_bytes)
        self.transport: asyncio.Transport | None = None
        self.peer: str | None = None
        self._pending: list[tuple[bytes, str | None]] = []
        self._committing: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._reading = True
        self._closed = False

    async def handshake(self, sock: socket.socket, context: ssl.SSLContext) -> None:
        """TLS on the accepted ``sock``; ``connection_made`` follows when it is done. A handshake over its
        limit or one that fails is closed and counted; the connection's place is given back."""
        limit = self.listener.handshake_timeout
        deadline = asyncio.timeout(limit)
        try:
            async with deadline:
                # The loop's own limit is a backstop that comes later: a timeout is counted here.
                await asyncio.get_running_loop().connect_accepted_socket(
                    lambda: self, sock, ssl=context, ssl_handshake_timeout=2 * limit
                )
        except OSError as exc:  # the loop has closed the socket
            if deadline.expired():
                self.listener.closed(HANDSHAKE_TIMEOUT, f"no TLS handshake within {limit:g} s", self.peer)
            elif isinstance(exc, ssl.SSLError):  # not TLS, or no version or cipher in common
                self.listener.closed(
                    HANDSHAKE_FAILED, f"TLS handshake failed ({exc.reason or exc})", self.peer
                )
            # else the sender hung up
            self._closed = True
            self.listener.forget(self)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not asyncio's subclasses
        if not self.listener.tls:  # a TLS connection was admitted before its handshake
            peer = transport.get_extra_info("peername")
            self.peer = str(peer[0]) if peer else None
            if not self.listener.admit(self):
                self._closed = True
                self.transport.abort()
                return
        self._restart_timer()

    def data_received(self, data: bytes) -> None:
        try:
            frames = self.framer.feed(data)
        except FramingError as exc:
            self._refuse(exc)
            return
        if frames:
            self._submit(frames)

    def eof_received(self) -> bool:
        try:
            last = self.framer.finish()
        except FramingError as exc:
            self._refuse(exc)
            return False
        if last is not None:
            self._submit([last])
        return False  # the transport closes; what was read is committed all the same

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._stop_timer()
        if self._committing is None:
            self.listener.forget(self)

    def stop_reading(self) -> None:
        if self._reading and not self._closed and self.transport is not None:
            self._reading = False
            self.transport.pause_reading()

    def close(self) -> None:
        if not self._closed and self.transport is not None:
            self._closed = True
            self.transport.close()
        self.listener.forget(self)

    def _submit(self, frames: list[bytes]) -> None:
        self.listener.received("tcp", len(frames))
        self._pending.extend((frame, self.peer) for frame in frames)
        self._restart_timer()
        if self._committing is None:
            self.stop_reading()
            self._committing = asyncio.create_task(self._commit())
            self.listener.spawn_commit(self._committing)

    async def _commit(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                await self.listener.ingest(batch)
        finally:
            self._committing = None
            if self._closed:
                self.listener.forget(self)
            elif not self.listener.stopping and self.transport is not None:
                self._reading = True
                self.transport.resume_reading()
                self._restart_timer()

    def _refuse(self, exc: FramingError) -> None:
        if exc.frames:
            self._submit(exc.frames)
        self.listener.dropped(exc.reason, 1, exc.detail, self.peer)
        self.listener.closed(exc.reason, exc.detail, self.peer)
        self.close()

    def _restart_timer(self) -> None:
        self._stop_timer()
        if not self._closed and self.transport is not None:
            timeout = self.listener.settings.syslog_idle_timeout
            self._timer = asyncio.get_running_loop().call_later(timeout, self._idle)

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _idle(self) -> None:
        self._timer = None
        if self._committing is not None:
            self._restart_timer()  # the store is slow, not the sender
            return
        timeout = self.listener.settings.syslog_idle_timeout
        self.listener.closed(IDLE_TIMEOUT, f"no complete message within {timeout:g} s", self.peer)
        self.close()


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, listener: SyslogListener) -> None:
        self.listener = listener

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        self.listener.datagram(data, str(addr[0]) if addr else None)
