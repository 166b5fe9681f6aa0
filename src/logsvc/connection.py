"""HTTP/1.1 connections: uvicorn's httptools protocol, with each request head bounded while it is read.

uvicorn buffers a request head without a limit of size or time: httptools gathers a header line of any
length, and the keep-alive timer stops at the first byte of the next request. Here a head must be complete
within ``max_header_bytes`` (else 431) and ``header_timeout`` seconds from its first byte (else 408), or
from the connect for a new connection (else it is closed); either answer closes the connection. See
decision 18.

A server that shuts down waits for the answers in progress before it tells the application (lifespan
shutdown); a stream would never end. So each connection, when the server asks it to shut down, calls the
callable the application left under ``SHUTDOWN_HOOK`` in its lifespan state, which ends its streams cleanly.

The event loop is uvloop's, but a server on a listening socket accepts every connection waiting at each turn
of the loop (``new_event_loop``; decision 50).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import logging
import socket
import ssl
from collections.abc import Callable, Sequence
from typing import Any, Final

import uvicorn
import uvloop
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from logsvc.errors import HeadersTooLarge, HeadTimeout, LogServiceError, problem_of

__all__ = [
    "BODY_ARRIVED",
    "SHUTDOWN_HOOK",
    "HeadLimitedProtocol",
    "ServerConfig",
    "new_event_loop",
    "tune_gc_for_serving",
]

log = logging.getLogger("uvicorn.error")

SHUTDOWN_HOOK = "logsvc.shutdown_hook"
# Set in a request's scope once its whole body is in (``logsvc.api.body`` then reads it without a timer).
BODY_ARRIVED = "logsvc.body_arrived"
_CONTINUE = b"HTTP/1.1 100 "
# Young objects the collector lets pile up before it looks at them: Python's 700 is less than 64 requests in
# flight hold at once, so it ran every 30-odd single POSTs and found little (reference counts free most).
# Cyclic garbage is collected all the same, only later.
_YOUNG_OBJECTS: Final = 10_000
# At most this many connections accepted at one turn of the loop (asyncio's own loop takes up to its backlog).
_ACCEPTS_PER_TURN: Final = 512
# Accept errors that are the server's (out of descriptors or memory), not one client's: accepting waits.
_SERVER_SHORT: Final = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
_LOOP_FACTORY: Final = "logsvc.connection:new_event_loop"


def tune_gc_for_serving() -> None:
    """For a serving process, once its app is made: what is alive now (the modules, the app, its tables)
    lives as long as the process, so it is frozen out of the collector's reach (a full collection walked
    it: 12 ms with the event loop stopped, every few thousand requests), and the young generation gets
    room for the requests in flight. About 8 µs less event-loop CPU per single POST (decision 49)."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(_YOUNG_OBJECTS, middle, old)


def new_event_loop() -> asyncio.AbstractEventLoop:
    """The serving processes' event loop (uvicorn's loop factory): uvloop, with ``_AcceptingServer``."""
    return _Loop()


class _Loop(uvloop.Loop):
    async def create_server(  # type: ignore[override]
        self,
        protocol_factory: Callable[[], asyncio.BaseProtocol],
        host: Any = None,
        port: Any = None,
        **kwargs: Any,
    ) -> asyncio.AbstractServer:
        """uvloop's, but a server on a socket given (as uvicorn's are) is an ``_AcceptingServer``."""
        sock = kwargs.get("sock")
        if sock is None or set(kwargs) - {"sock", "ssl", "backlog"}:
            return await super().create_server(protocol_factory, host, port, **kwargs)
        return _AcceptingServer(self, protocol_factory, sock, kwargs.get("ssl"), kwargs.get("backlog", 100))


class _AcceptingServer(asyncio.AbstractServer):
    """Serves a listening socket, accepting every connection waiting at each turn of the loop.

    libuv accepts one connection a turn (libuv#3696): with requests in flight a turn takes 10-20 ms, so a
    burst of new connections waited in the kernel's queue, one more taken each turn. 64 connections opened
    at once got their first answers after up to 0.65 s, while those already open were answered in 20 ms.
    Each accepted socket is handed to uvloop (``connect_accepted_socket``), which serves it as its own."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        protocol_factory: Callable[[], asyncio.BaseProtocol],
        sock: socket.socket,
        ssl_context: ssl.SSLContext | None,
        backlog: int,
    ) -> None:
        self._loop = loop
        self._protocol_factory = protocol_factory
        self._sock = sock
        self._ssl = ssl_context
        self._accepts = max(1, min(backlog, _ACCEPTS_PER_TURN))
        self._connecting: set[asyncio.Task[None]] = set()
        self._closed = loop.create_future()
        sock.setblocking(False)
        sock.listen(backlog)
        loop.add_reader(sock.fileno(), self._accept)

    def _accept(self) -> None:
        for _ in range(self._accepts):
            try:
                conn, _ = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno not in _SERVER_SHORT:
                    continue  # that client's trouble (it gave up, say): the next one
                # The waiting connections stay in the kernel's queue meanwhile, as asyncio's loop does.
                log.error("cannot accept connections (%s); trying again in a second", exc)
                self._loop.remove_reader(self._sock.fileno())
                self._loop.call_later(1.0, self._resume)
                return
            task = self._loop.create_task(self._connect(conn))
            self._connecting.add(task)
            task.add_done_callback(self._connecting.discard)

    def _resume(self) -> None:
        if not self._closed.done():
            self._loop.add_reader(self._sock.fileno(), self._accept)

    async def _connect(self, conn: socket.socket) -> None:
        try:
            await self._loop.connect_accepted_socket(self._protocol_factory, conn, ssl=self._ssl)
        except asyncio.CancelledError:
            conn.close()
            raise
        except OSError as exc:  # a TLS handshake that failed or timed out, a client gone: that client's
            log.debug("a connection could not be set up: %s", exc)
            conn.close()
        except Exception:  # ours, not the client's: an error, as asyncio's loop reports it
            log.exception("a connection accepted could not be set up")
            conn.close()

    def close(self) -> None:
        if self._closed.done():
            return
        with contextlib.suppress(ValueError, OSError):  # a socket closed already
            self._loop.remove_reader(self._sock.fileno())
        # The connections being set up (a TLS handshake) are left to finish, as asyncio's Server.close leaves
        # the connections it accepted: uvicorn may already count one (its handshake over) among its own.
        self._sock.close()
        self._closed.set_result(None)

    async def wait_closed(self) -> None:
        await asyncio.shield(self._closed)

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def is_serving(self) -> bool:
        return not self._closed.done()

    async def start_serving(self) -> None:
        """Serving since it was made."""

    async def serve_forever(self) -> None:
        await asyncio.shield(self._closed)


class ServerConfig(uvicorn.Config):
    """uvicorn's Config serving with HeadLimitedProtocol, and the limits it applies; its event loop is
    ``new_event_loop``'s unless another is asked for by name ("asyncio")."""

    def __init__(
        self,
        app: Any,
        *,
        max_header_bytes: int,
        header_timeout: float,
        forwarded_allow_ips: Sequence[str] = (),
        **kwargs: Any,
    ) -> None:
        if kwargs.get("loop", "auto") in ("auto", "uvloop"):
            kwargs["loop"] = _LOOP_FACTORY
        # Only the proxies named: uvicorn would otherwise trust 127.0.0.1, where the server listens by
        # default, so any local client could name its own address and step past the failed-authentication
        # throttle or write another address into the audit trail.
        super().__init__(
            app,
            http=HeadLimitedProtocol,
            proxy_headers=bool(forwarded_allow_ips),
            forwarded_allow_ips=list(forwarded_allow_ips) or None,
            **kwargs,
        )
        self.max_header_bytes = max_header_bytes
        self.header_timeout = header_timeout


class HeadLimitedProtocol(HttpToolsProtocol):
    def __init__(
        self,
        config: uvicorn.Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        if not isinstance(config, ServerConfig):
            raise TypeError("HeadLimitedProtocol takes its limits from a ServerConfig")
        super().__init__(config, server_state, app_state, _loop)
        self._max_head_bytes = config.max_header_bytes
        self._head_timeout = config.header_timeout
        self._awaiting_head = True
        self._head_bytes = 0
        # The deadlines of the head being read and of an idle kept-alive connection (uvicorn's
        # timeout_keep_alive), None when not running. One timer per connection serves both: it fires at the
        # earliest it was set for and sets itself again for a deadline that moved on, instead of two timers
        # made and cancelled per request (2-3 µs each, decision 36).
        self._head_deadline: float | None = None
        self._idle_deadline: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._head_deadline = self._idle_deadline = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        super().connection_lost(exc)

    def shutdown(self) -> None:
        super().shutdown()
        hook = self.app_state.get(SHUTDOWN_HOOK)
        if hook is not None:
            hook()

    def data_received(self, data: bytes) -> None:
        if self._awaiting_head:
            if self._head_deadline is None:
                self._start_head_timer()
            self._head_bytes += len(data)
        super().data_received(data)
        # Checked after parsing: the head may have ended within this chunk, followed by the body. So the
        # parser holds at most the limit plus one read (64-256 KiB) of an unfinished head.
        over = self._head_bytes > self._max_head_bytes
        if self._awaiting_head and over and not self.transport.is_closing():
            self._refuse(HeadersTooLarge(f"the request head is over {self._max_head_bytes} bytes"))

    def on_headers_complete(self) -> None:
        self._awaiting_head = False
        self._stop_head_timer()
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is not None and cycle.transport is self.transport and self.scope["method"] != "HEAD":
            cycle.transport = _HeadHeld(self.transport)  # type: ignore[assignment]

    def on_message_complete(self) -> None:
        if self.cycle is not None:
            self.cycle.scope[BODY_ARRIVED] = True  # type: ignore[literal-required]
        super().on_message_complete()
        # What follows belongs to the next request's head, whose timer starts with its first byte.
        self._awaiting_head = True
        self._head_bytes = 0

    def on_response_complete(self) -> None:
        # uvicorn's, but for the keep-alive timer: a deadline of the connection's one timer.
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self._idle_deadline = None
        self.flow.resume_reading()
        if self.pipeline:
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
        else:
            self._idle_deadline = self.loop.time() + self.timeout_keep_alive
            self._timer_for(self._idle_deadline)

    def _unset_keepalive_if_required(self) -> None:
        # uvicorn calls it when data comes, the response completes or the connection is lost.
        self._idle_deadline = None

    def _start_head_timer(self) -> None:
        self._head_deadline = self.loop.time() + self._head_timeout
        self._timer_for(self._head_deadline)

    def _stop_head_timer(self) -> None:
        self._head_deadline = None

    def _timer_for(self, deadline: float) -> None:
        """The timer fires at ``deadline`` or before."""
        if self._timer is not None:
            if self._timer_at <= deadline:
                return
            self._timer.cancel()
        self._timer_at = deadline
        self._timer = self.loop.call_at(deadline, self._timer_fired)

    def _timer_fired(self) -> None:
        self._timer = None
        now = self.loop.time()
        if self._idle_deadline is not None and now >= self._idle_deadline:
            self._idle_deadline = None
            self.timeout_keep_alive_handler()
        if self._head_deadline is not None and now >= self._head_deadline:
            self._head_deadline = None
            self._head_timed_out()
        later = [d for d in (self._head_deadline, self._idle_deadline) if d is not None]
        if later and not self.transport.is_closing():
            self._timer_for(min(later))

    def _head_timed_out(self) -> None:
        if not self._awaiting_head or self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            # A pipelined head waits while the answer before it is made: its time starts again after.
            self._start_head_timer()
        elif self._head_bytes:
            timeout = self._head_timeout
            self._refuse(HeadTimeout(f"the request head did not arrive within {timeout:g} seconds"))
        else:
            self.transport.close()  # nothing was asked

    def _refuse(self, exc: LogServiceError) -> None:
        self._awaiting_head = False
        self._stop_head_timer()
        body = problem_of(exc)
        head = [STATUS_LINE[exc.status]]
        head.extend(name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers)
        head.append(b"content-type: application/problem+json\r\n")
        head.append(b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body))
        self.transport.write(b"".join(head) + body)
        self.transport.close()


class _HeadHeld:
    """The transport as one response sees it: a head of fixed length is held until the body's first write
    and goes out with it, one write (one syscall, one TCP segment) instead of two. A head without a length
    (a stream, which may wait for its first chunk) goes out at once; closing sends what is held."""

    __slots__ = ("_head", "_head_next", "_transport")

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._head = b""
        self._head_next = True

    def write(self, data: bytes) -> None:
        if self._head:
            data = self._head + data
            self._head = b""
        elif self._head_next and not data.startswith(_CONTINUE):
            self._head_next = False
            if b"\r\ncontent-length: " in data:
                self._head = data
                return
        self._transport.write(data)

    def close(self) -> None:
        if self._head:
            self._transport.write(self._head)
            self._head = b""
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()
