"""The live tail: one hub per process follows the store's commit order and fans new entries out to the open
streams (decision 23).

The hub reads what committed after its position: one store read per poll for all streams, every
``poll_seconds`` (for what other processes and replicas commit) and at once after this process's own commits.
Each stream gets the entries its query admits, filtered in memory by the same rules as the store's reads
(``wanted``). A stream's queue is bounded: what does not fit is counted and reported in a ``dropped`` event,
so a slow reader costs neither memory nor a writer's time. A stream that resumes after a cursor behind the
hub first reads the entries in between from the store, so that a reconnect has no gap and no repeat.

The wire format is Server-Sent Events: ``id`` (the cursor) / ``event: entry`` / ``data`` (the entry as in
``GET /logs``), ``event: dropped`` with ``{"dropped": n}``, a ``: heartbeat`` comment, and an ``id``-only
block that moves the reader's cursor without an event.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import msgspec

from logsvc.domain.cursors import Position, encode_position
from logsvc.domain.entries import LogEntry
from logsvc.domain.queries import Query, admits
from logsvc.errors import LogServiceError, StoreUnavailable, TooManyStreams
from logsvc.storage.port import Arrival, Arrivals, LogStore

__all__ = [
    "HEARTBEAT",
    "READ_BATCH",
    "TailHub",
    "TailLimits",
    "TailPage",
    "TailRequest",
    "TailStream",
    "wanted",
]

log = logging.getLogger("logsvc.tail")

# Entries one read of the store gives at most (fewer when they are large); more wait for the next read.
READ_BATCH = 1000
HEARTBEAT = b": heartbeat\n\n"
# A stream refused for a limit is worth retrying once another stream has ended.
_RETRY_SECONDS = 5


class TailRequest(msgspec.Struct, frozen=True):
    """A validated tail: its filters, held to the caller's scope, and the position it resumes after."""

    query: Query
    after: Position | None


class TailPage(msgspec.Struct, frozen=True):
    """The polling form of the tail: entries that committed after the cursor, oldest first, and the cursor
    to ask with next. ``more``: more have committed already, ask again at once."""

    count: int
    logs: list[LogEntry]
    next_cursor: str
    more: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class TailLimits:
    streams: int
    streams_per_credential: int
    queue_entries: int
    queue_bytes: int
    heartbeat_seconds: float
    poll_seconds: float
    stream_seconds: float


def wanted(query: Query, arrivals: Arrivals) -> list[Arrival]:
    """The arrivals a tail's query admits: its filters as ``GET /logs`` applies them, and its search terms
    as the store matched them."""
    found = arrivals.found[query.terms] if query.terms else None
    return [
        arrival
        for arrival in arrivals.entries
        if admits(
            query,
            service=arrival.entry.service_name,
            level=arrival.level,
            log_type=arrival.entry.log_type,
            ts_us=arrival.ts_us,
        )
        and (found is None or arrival.position in found)
    ]


def _searches(queries: list[Query]) -> tuple[tuple[str, ...], ...]:
    return tuple({query.terms for query in queries if query.terms})


def _entry_event(arrival: Arrival) -> bytes:
    data = msgspec.json.encode(arrival.entry)
    if b"\n" in data or b"\r" in data:  # whitespace between the tokens of stored metadata: a line each
        data = b"\ndata: ".join(data.splitlines())
    return b"id: %s\nevent: entry\ndata: %s\n\n" % (encode_position(arrival.position).encode(), data)


def _position_event(position: Position) -> bytes:
    """An id without an event: the reader's cursor moves on (EventSource's lastEventId too)."""
    return b"id: %s\n\n" % encode_position(position).encode()


def _dropped_event(count: int) -> bytes:
    return b'event: dropped\ndata: {"dropped": %d}\n\n' % count


class _Queue:
    """One stream's bounded queue of events after ``floor``, and the count of those that did not fit. It
    holds at most ``capacity`` events and ``budget`` bytes of them (an event larger than the budget is
    taken into an empty queue alone, so a large entry reaches a reader that keeps up)."""

    __slots__ = ("budget", "capacity", "closed", "dropped", "events", "floor", "ready", "size")

    def __init__(self, floor: Position, capacity: int, budget: int) -> None:
        self.floor = floor
        self.capacity = capacity
        self.budget = budget
        self.events: collections.deque[bytes] = collections.deque()
        self.size = 0
        self.dropped = 0
        self.closed = False
        self.ready = asyncio.Event()

    def offer(self, events: list[tuple[Position, bytes]]) -> None:
        """Take what fits; never waits (the hub serves every stream from one loop)."""
        if events[0][0] <= self.floor:
            events = [event for event in events if event[0] > self.floor]
        for _, event in events:
            fits = len(self.events) < self.capacity and (
                self.size + len(event) <= self.budget or not self.events
            )
            if fits:
                self.events.append(event)
                self.size += len(event)
            else:
                self.dropped += 1
        if self.events or self.dropped:
            self.ready.set()

    def close(self) -> None:
        self.closed = True
        self.ready.set()

    async def take(self, timeout: float) -> bytes | None:
        """The queued events (then a dropped event, if any were), a heartbeat when none came within
        ``timeout``, None once closed."""
        if not self.events and not self.dropped and not self.closed:
            self.ready.clear()
            try:
                async with asyncio.timeout(timeout):
                    await self.ready.wait()
            except TimeoutError:
                return HEARTBEAT
        if self.closed:
            return None
        chunk = b"".join(self.events)
        self.events.clear()
        self.size = 0
        if self.dropped:
            chunk += _dropped_event(self.dropped)
            self.dropped = 0
        return chunk


class TailHub:
    """The tails of one process: limits, the one reader of the store, and the streams it feeds."""

    def __init__(self, store: LogStore, limits: TailLimits) -> None:
        self.store = store
        self.limits = limits
        self._queues: dict[Query, set[_Queue]] = {}
        self._per_credential: collections.Counter[str] = collections.Counter()
        self._position: Position | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def open_streams(self) -> int:
        return sum(self._per_credential.values())

    def wake(self) -> None:
        """This process committed entries: read the store now rather than at the next poll."""
        if self._task is not None and self.store.tail_delay == 0:
            self._wake.set()

    async def open(
        self, request: TailRequest, credential: str, allowed: Callable[[], bool] = lambda: True
    ) -> TailStream:
        """A stream of the entries ``request`` admits that commit after its position (or from now on);
        TooManyStreams over a limit. Errors of the request (a cursor of another store) are raised here,
        before anything is answered. ``allowed`` says whether the credential may still read: asked before
        every chunk (a heartbeat at least), the stream ends once its key is revoked or it expires."""
        if self._closed:
            raise StoreUnavailable("the server is shutting down; tail again in a moment")
        self._reserve(credential)
        try:
            first = None
            if request.after is not None:
                first = await self.store.arrivals(
                    request.after, limit=READ_BATCH, searches=_searches([request.query])
                )
            if self._position is None:
                head = (await self.store.arrivals(None, limit=1)).position
                self._position = self._position or head
            if self._closed:
                raise StoreUnavailable("the server is shutting down; tail again in a moment")
        except BaseException:
            self._release(credential)
            raise
        start = self._position
        floor = max(start, request.after) if request.after is not None else start
        queue = _Queue(floor, self.limits.queue_entries, self.limits.queue_bytes)
        self._queues.setdefault(request.query, set()).add(queue)
        if self._task is None:
            self._task = asyncio.create_task(self._follow(), name="logsvc-tail")
        return TailStream(self, queue, request, credential, start, first, allowed)

    def _reserve(self, credential: str) -> None:
        limits = self.limits
        if self.open_streams >= limits.streams:
            raise TooManyStreams(
                f"this server has {limits.streams} tail streams open, its limit; retry later",
                retry_after_seconds=_RETRY_SECONDS,
            )
        if self._per_credential[credential] >= limits.streams_per_credential:
            raise TooManyStreams(
                f"this credential has {limits.streams_per_credential} tail streams open on this server, "
                "its limit; close one first",
                retry_after_seconds=_RETRY_SECONDS,
            )
        self._per_credential[credential] += 1

    def _release(self, credential: str) -> None:
        self._per_credential[credential] -= 1
        if self._per_credential[credential] <= 0:
            del self._per_credential[credential]

    def _remove(self, query: Query, queue: _Queue, credential: str) -> None:
        queues = self._queues.get(query)
        if queues is None or queue not in queues:
            return
        queues.discard(queue)
        if not queues:
            del self._queues[query]
        self._release(credential)

    async def _follow(self) -> None:
        """Read what committed after the hub's position and hand it to every stream, while there are any."""
        while self._queues and not self._closed:
            assert self._position is not None
            self._wake.clear()  # before the read: a commit during it wakes the next one
            try:
                arrivals = await self.store.arrivals(
                    self._position, limit=READ_BATCH, searches=_searches(list(self._queues))
                )
            except LogServiceError as exc:
                log.warning(
                    "the tail could not read the store, next try in %g s: %s",
                    self.limits.poll_seconds,
                    exc.detail,
                )
                await asyncio.sleep(self.limits.poll_seconds)
                continue
            except Exception:
                log.exception("the tail failed to read the store, next try in %g s", self.limits.poll_seconds)
                await asyncio.sleep(self.limits.poll_seconds)
                continue
            self._position = max(self._position, arrivals.position)
            if arrivals.entries:
                self._fan_out(arrivals)
            if not arrivals.more:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.limits.poll_seconds):
                        await self._wake.wait()
        self._task = None
        self._position = None  # idle: a later stream starts from the newest commit then

    def _fan_out(self, arrivals: Arrivals) -> None:
        """Each query's entries, filtered and encoded once, to every stream of that query."""
        encoded: dict[Position, bytes] = {}
        for query, queues in self._queues.items():
            events = []
            for arrival in wanted(query, arrivals):
                event = encoded.get(arrival.position)
                if event is None:
                    event = encoded[arrival.position] = _entry_event(arrival)
                events.append((arrival.position, event))
            if events:
                for queue in queues:
                    queue.offer(events)

    def close(self) -> None:
        """End every stream now, cleanly, and take no new ones: the server is shutting down."""
        self._closed = True
        for queues in self._queues.values():
            for queue in queues:
                queue.close()
        if self._task is not None:
            self._task.cancel()

    async def stop(self) -> None:
        task = self._task
        self.close()
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await task


class TailStream:
    """One open stream: iterate it for its chunks of SSE; ``close`` (also at the end of the iteration)
    gives its place back."""

    def __init__(
        self,
        hub: TailHub,
        queue: _Queue,
        request: TailRequest,
        credential: str,
        start: Position,
        first: Arrivals | None,
        allowed: Callable[[], bool],
    ) -> None:
        self._hub = hub
        self._queue = queue
        self._request = request
        self._credential = credential
        self._start = start
        self._first = first
        self._allowed = allowed

    def close(self) -> None:
        self._hub._remove(self._request.query, self._queue, self._credential)

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[bytes]:
        limits = self._hub.limits
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limits.stream_seconds
        try:
            async for caught_up in self._catch_up():
                yield caught_up
            while (left := deadline - loop.time()) > 0:
                chunk = await self._queue.take(min(limits.heartbeat_seconds, left))
                if chunk is None or not self._still_allowed():
                    return
                yield chunk
        finally:
            self.close()

    def _still_allowed(self) -> bool:
        try:
            return self._allowed()
        except LogServiceError:  # the credential store is away: end the stream, the reconnect is judged anew
            return False

    async def _catch_up(self) -> AsyncIterator[bytes]:
        """What committed between the request's position and the hub's when the stream opened, from the
        store; then the hub's position as the reader's cursor."""
        query, after, start = self._request.query, self._request.after, self._start
        if after is not None and after >= start:
            return  # the hub's streams give everything after it
        arrivals = self._first
        while after is not None and arrivals is not None and not self._queue.closed:
            events = b"".join(_entry_event(a) for a in wanted(query, arrivals) if a.position <= start)
            if events:
                yield events
            if arrivals.position <= after or arrivals.position >= start:
                break  # read up to the hub's position (or nothing more was there)
            after = arrivals.position
            arrivals = await self._hub.store.arrivals(after, limit=READ_BATCH, searches=_searches([query]))
        if not self._queue.closed:
            yield _position_event(start)
