"""Following ``GET /logs/tail`` from a client, for the CLI and the SDK.

The service streams Server-Sent Events where it can, and answers a polling page where it cannot (a Lambda
behind API Gateway); the answer's media type tells which. ``follow`` reads either the same way, and after a
dropped connection or the end of a stream it asks again after the last cursor it saw (``Last-Event-ID``),
so the entries it gives have no gap and no repeat. The SSE wire format is read by ``httpx-sse``.

``follow`` sends nothing itself: it takes ``open_tail``, which sends one GET with the given parameters and
headers (signed as the caller signs its requests) and raises for an error answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from typing import Any, Literal

import httpx
import msgspec
from httpx_sse import EventSource, ServerSentEvent

__all__ = ["AsyncOpenTail", "OpenTail", "TailEvent", "afollow", "follow"]

OpenTail = Callable[[Sequence[tuple[str, str]], dict[str, str]], AbstractContextManager[httpx.Response]]
AsyncOpenTail = Callable[
    [Sequence[tuple[str, str]], dict[str, str]], AbstractAsyncContextManager[httpx.Response]
]
# How long a polling client waits before it asks again when nothing was new.
POLL_SECONDS = 1.0
_BACKOFF_FIRST = 0.5
_BACKOFF_CAP = 30.0


class TailEvent(msgspec.Struct, frozen=True):
    """An entry (as in ``GET /logs``) with the cursor after it, or a count of entries the service dropped
    because this reader was too slow."""

    kind: Literal["entry", "dropped"]
    entry: dict[str, Any] | None = None
    dropped: int = 0
    cursor: str | None = None


class _Lost(Exception):
    """The connection ended or broke: ask again after the last cursor."""


class _Follower:
    """What following a tail is, whatever does the I/O: the cursor it goes on after, the failures in a row
    and the pause before the next try, and how an answer becomes events. ``follow`` and ``afollow`` are
    its two loops."""

    def __init__(self, cursor: str | None, retries: int | None) -> None:
        self.cursor = cursor
        self.retries = retries
        self.failures = 0

    def headers(self) -> dict[str, str]:
        headers = {"Accept": "text/event-stream"}
        if self.cursor is not None:
            headers["Last-Event-ID"] = self.cursor
        return headers

    def read(self, event: ServerSentEvent) -> TailEvent | None:
        """An event of the stream; an id without an event (or a heartbeat after one) moves the cursor."""
        self.failures = 0
        read = _read(event)
        self.cursor = read.cursor or self.cursor
        return None if read.kind == "move" else TailEvent(read.kind, read.entry, read.dropped, self.cursor)

    def page(self, body: bytes) -> tuple[list[TailEvent], bool]:
        """The entries of a polling page, and whether more are waiting already."""
        self.failures = 0
        page = msgspec.json.decode(body)
        logs = page["logs"]
        events = [
            TailEvent("entry", entry, cursor=page["next_cursor"] if index == len(logs) - 1 else None)
            for index, entry in enumerate(logs)
        ]
        self.cursor = page["next_cursor"]
        return events, bool(page.get("more"))

    def failed(self, exc: Exception) -> float:
        """The pause before asking again after ``exc`` (a broken connection or an ended stream); raises when
        ``retries`` failures came in a row."""
        self.failures += 1
        if self.retries is not None and self.failures > self.retries:
            if isinstance(exc, _Lost):
                raise httpx.RemoteProtocolError("the service ended every stream at once") from None
            raise exc
        return min(_BACKOFF_CAP, _BACKOFF_FIRST * 2 ** (self.failures - 1)) if self.failures > 1 else 0.0


def _is_stream(response: httpx.Response) -> bool:
    media_type: str = response.headers.get("content-type", "")
    return media_type.startswith("text/event-stream")


def follow(
    open_tail: OpenTail,
    params: Sequence[tuple[str, str]],
    *,
    cursor: str | None = None,
    poll_seconds: float = POLL_SECONDS,
    retries: int | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[TailEvent]:
    """The entries of a tail with ``params`` (the filters of ``GET /logs``), from ``cursor`` on or from
    now, for as long as it is iterated. A connection that fails is opened again after a pause that grows
    to 30 s; ``retries`` bounds how often in a row (None: for ever). Errors the service answers are
    ``open_tail``'s to raise."""
    follower = _Follower(cursor, retries)
    while True:
        try:
            with open_tail(params, follower.headers()) as response:
                if _is_stream(response):
                    for sse in EventSource(response).iter_sse():
                        event = follower.read(sse)
                        if event is not None:
                            yield event
                    raise _Lost  # the service ended the stream (shutting down, or its time was up)
                events, more = follower.page(response.read())
        except (httpx.TransportError, _Lost) as exc:
            sleep(follower.failed(exc))
            continue
        yield from events
        if not more:
            sleep(poll_seconds)


async def afollow(
    open_tail: AsyncOpenTail,
    params: Sequence[tuple[str, str]],
    *,
    cursor: str | None = None,
    poll_seconds: float = POLL_SECONDS,
    retries: int | None = None,
) -> AsyncIterator[TailEvent]:
    """``follow`` for asyncio: ``open_tail`` is an async context manager."""
    follower = _Follower(cursor, retries)
    while True:
        try:
            async with open_tail(params, follower.headers()) as response:
                if _is_stream(response):
                    async for sse in EventSource(response).aiter_sse():
                        event = follower.read(sse)
                        if event is not None:
                            yield event
                    raise _Lost
                events, more = follower.page(await response.aread())
        except (httpx.TransportError, _Lost) as exc:
            await asyncio.sleep(follower.failed(exc))
            continue
        for event in events:
            yield event
        if not more:
            await asyncio.sleep(poll_seconds)


class _Read(msgspec.Struct, frozen=True):
    kind: Literal["entry", "dropped", "move"]
    entry: dict[str, Any] | None = None
    dropped: int = 0
    cursor: str | None = None


def _read(sse: ServerSentEvent) -> _Read:
    cursor = sse.id or None
    if sse.event == "entry":
        return _Read("entry", msgspec.json.decode(sse.data), cursor=cursor)
    if sse.event == "dropped":
        with contextlib.suppress(msgspec.DecodeError, KeyError, TypeError):
            return _Read("dropped", dropped=int(msgspec.json.decode(sse.data)["dropped"]), cursor=cursor)
    return _Read("move", cursor=cursor)
