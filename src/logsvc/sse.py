"""Following ``GET /logs/tail`` from a client, for the CLI and the SDK.

The service streams Server-Sent Events where it can, and answers a polling page where it cannot (a Lambda
behind API Gateway); the answer's media type tells which. ``follow`` reads either the same way, and after a
dropped connection or the end of a stream it asks again after the last cursor it saw (``Last-Event-ID``),
so the entries it gives have no gap and no repeat. The SSE wire format is read by ``httpx-sse``.

``follow`` sends nothing itself: it takes ``open_tail``, which sends one GET with the given parameters and
headers (signed as the caller signs its requests) and raises for an error answer.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any, Literal

import httpx
import msgspec
from httpx_sse import EventSource

__all__ = ["OpenTail", "TailEvent", "follow"]

OpenTail = Callable[[Sequence[tuple[str, str]], dict[str, str]], AbstractContextManager[httpx.Response]]
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
    failures = 0
    while True:
        headers = {"Accept": "text/event-stream"}
        if cursor is not None:
            headers["Last-Event-ID"] = cursor
        try:
            with open_tail(params, headers) as response:
                if response.headers.get("content-type", "").startswith("text/event-stream"):
                    for event in _stream(response):
                        failures = 0
                        cursor = event.cursor or cursor
                        if event.kind != "move":
                            yield TailEvent(event.kind, event.entry, event.dropped, cursor)
                    raise _Lost  # the service ended the stream (shutting down, or its time was up)
                page = msgspec.json.decode(response.read())
        except (httpx.TransportError, _Lost) as exc:
            failures += 1
            if retries is not None and failures > retries:
                if isinstance(exc, _Lost):
                    raise httpx.RemoteProtocolError("the service ended every stream at once") from None
                raise
            sleep(min(_BACKOFF_CAP, _BACKOFF_FIRST * 2 ** (failures - 1)) if failures > 1 else 0)
            continue
        failures = 0
        logs = page["logs"]
        for index, entry in enumerate(logs):
            yield TailEvent("entry", entry, cursor=page["next_cursor"] if index == len(logs) - 1 else None)
        cursor = page["next_cursor"]
        if not page.get("more"):
            sleep(poll_seconds)


class _Read(msgspec.Struct, frozen=True):
    kind: Literal["entry", "dropped", "move"]
    entry: dict[str, Any] | None = None
    dropped: int = 0
    cursor: str | None = None


def _stream(response: httpx.Response) -> Iterator[_Read]:
    """The events of an SSE answer; an id without an event (or a heartbeat after one) moves the cursor."""
    for sse in EventSource(response).iter_sse():
        cursor = sse.id or None
        if sse.event == "entry":
            yield _Read("entry", msgspec.json.decode(sse.data), cursor=cursor)
        elif sse.event == "dropped":
            with contextlib.suppress(msgspec.DecodeError, KeyError, TypeError):
                yield _Read("dropped", dropped=int(msgspec.json.decode(sse.data)["dropped"]), cursor=cursor)
        else:
            yield _Read("move", cursor=cursor)
