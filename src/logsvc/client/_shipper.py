"""The sending side of ``LogHandler`` and ``LogProcessor``: a bounded queue and one thread that sends it.

The application's thread encodes an entry and appends it to the queue (or counts it dropped when the queue
is full); everything that can wait, HTTP and retries, happens on the sending thread. Entries wait encoded:
bytes are not tracked by the garbage collector, while thousands of queued dicts would make every collection
of the application's own heap longer (measured: a third of the cost of a logging call). Each entry carries a
log id made when it was logged, and the service keeps one entry per service and log id (decision 15), so a
batch sent again after a timeout, a lost answer, a 429 or a 5xx cannot store anything twice.
"""

from __future__ import annotations

import atexit
import os
import random
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any

import msgspec

from logsvc.client._client import Client
from logsvc.client._errors import BadRequest, ClientError, PayloadTooLarge

__all__ = ["MAX_BATCH", "Shipper"]

MAX_BATCH = 10_000  # the service's largest batch (max_batch_entries)
_WARN_INTERVAL = 60.0
# A Retry-After longer than this is taken as this: a broken header must not park the sender for a day.
_MAX_RETRY_AFTER = 300.0
_JOIN_SECONDS = 1.0
_ENCODER = msgspec.json.Encoder()


class _Warnings:
    """Lines on stderr about records that are not going out: the first of each kind at once, then at most
    one a minute. Not through ``logging``: that would feed the handler its own complaints."""

    def __init__(self) -> None:
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

    def say(self, kind: str, text: str) -> None:
        now = time.monotonic()
        with self._lock:
            last = self._last.get(kind)
            if last is not None and now - last < _WARN_INTERVAL:
                return
            self._last[kind] = now
        try:
            sys.stderr.write(f"logsvc.client: {text}\n")
            sys.stderr.flush()
        except (OSError, ValueError):  # stderr closed, as it can be late at interpreter exit
            pass


class Shipper:
    """Entries queued by any thread, sent in order by one daemon thread, in batches of up to ``batch_size``
    once that many wait or ``flush_interval`` seconds have passed. At most ``queue_size`` entries wait
    (one more batch may be in flight); past that, entries are dropped and counted in ``dropped``."""

    def __init__(
        self,
        client_factory: Callable[[], Client],
        *,
        batch_size: int,
        flush_interval: float,
        queue_size: int,
        flush_timeout: float,
        backoff: float,
        max_backoff: float,
    ) -> None:
        if not 1 <= batch_size <= MAX_BATCH:
            raise ValueError(f"batch_size must be 1-{MAX_BATCH}")
        if queue_size < 1:
            raise ValueError("queue_size must be at least 1")
        if flush_interval <= 0 or backoff <= 0 or max_backoff < backoff or flush_timeout < 0:
            raise ValueError(
                "flush_interval and backoff must be > 0, max_backoff >= backoff, flush_timeout >= 0"
            )
        self._factory = client_factory
        self._batch_size = batch_size
        self._flush_interval = flush_interval
        self._queue_size = queue_size
        self._wake_at = min(batch_size, queue_size)
        self.flush_timeout = flush_timeout
        self._backoff = backoff
        self._max_backoff = max_backoff
        self._warnings = _Warnings()
        self._inherited: list[Client] = []
        self._start()
        _LIVE.add(self)

    def _start(self) -> None:
        self._lock = threading.Lock()
        self._settled_changed = threading.Condition(self._lock)
        self._queue: deque[msgspec.Raw] = deque()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._closed = False
        self._enqueued = 0
        self._taken = 0
        self._settled = 0
        self._flush_target = 0
        self.dropped = 0
        self.rejected = 0
        self.delivered = 0
        self._client = self._factory()
        self._thread = threading.Thread(target=self._run, name="logsvc-log-sender", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return self._client.url

    @property
    def sender_ident(self) -> int | None:
        """The sending thread's id: what it logs itself (httpx does) must not come back to the queue."""
        return self._thread.ident

    @property
    def pending(self) -> int:
        """Entries queued or in flight."""
        return self._enqueued - self._settled

    @property
    def queued(self) -> int:
        return len(self._queue)

    def put(self, entry: dict[str, Any]) -> None:
        """Queue ``entry`` (JSON-safe values only) or drop it; never blocks beyond a lock held for an
        append."""
        encoded = msgspec.Raw(_ENCODER.encode(entry))
        with self._lock:
            if self._closed or len(self._queue) >= self._queue_size:
                self.dropped += 1
                dropped = True
            else:
                self._queue.append(encoded)
                self._enqueued += 1
                dropped = False
                wake = len(self._queue) == self._wake_at
        if dropped:
            self._warnings.say(
                "dropped",
                f"{self.dropped} log records dropped so far: the queue of {self._queue_size} was full "
                f"(the service at {self.url} is slow or unreachable)",
            )
        elif wake:
            self._wake.set()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every entry queued before the call is delivered (or refused by the service as
        invalid); False if that took longer than ``timeout`` seconds (default ``flush_timeout``)."""
        deadline = time.monotonic() + (self.flush_timeout if timeout is None else timeout)
        if threading.get_ident() == self._thread.ident:
            return False
        with self._lock:
            target = self._enqueued
            if self._settled >= target or self._closed:
                # Closed: close() waited already; logging.shutdown flushing after it must not wait again.
                return self._settled >= target
            self._flush_target = max(self._flush_target, target)
        self._wake.set()
        with self._lock:
            while self._settled < target:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._thread.is_alive():
                    return False
                self._settled_changed.wait(remaining)
        return True

    def close(self, timeout: float | None = None) -> None:
        """Flush (up to ``timeout``), then stop the sending thread; what is still queued is lost, and said
        so on stderr. Entries put afterwards are dropped."""
        if self._closed:
            return
        seconds = self.flush_timeout if timeout is None else timeout
        self.flush(seconds)
        with self._lock:
            self._closed = True
            lost = self._enqueued - self._settled
        self._stop.set()
        self._wake.set()
        self._thread.join(_JOIN_SECONDS)
        _LIVE.discard(self)
        if lost:
            self._warnings.say(
                "lost",
                f"{lost} log records not delivered: {self.url} did not take them within {seconds:g} s "
                "of closing",
            )

    def _run(self) -> None:
        try:
            while True:
                with self._lock:
                    ready = len(self._queue) >= self._wake_at or self._taken < self._flush_target
                if not ready and not self._stop.is_set():
                    self._wake.wait(self._flush_interval)
                self._wake.clear()
                with self._lock:
                    count = min(len(self._queue), self._batch_size)
                    batch = [self._queue.popleft() for _ in range(count)]
                    self._taken += count
                if not batch:
                    if self._stop.is_set():
                        return
                    continue
                self._deliver(batch)
                with self._lock:
                    self._settled += count
                    self._settled_changed.notify_all()
        finally:
            self._client.close()

    def _deliver(self, batch: list[msgspec.Raw]) -> None:
        """Send ``batch`` until it is stored, retrying what may succeed later; parts the service refuses
        as invalid are counted in ``rejected``. Gives up only when the shipper is closed."""
        parts = [batch]
        attempt = 0
        while parts:
            if self._stop.is_set():
                return
            part = parts.pop()
            try:
                self._client.send_batch(part)
            except BadRequest as exc:
                # A batch is stored all or none, and the 400 names every bad entry: send the rest again.
                bad = {
                    e["index"]
                    for e in exc.errors
                    if isinstance(e.get("index"), int) and 0 <= e["index"] < len(part)
                }
                if not bad and len(part) > 1:
                    # Refused as a whole (a service whose max_batch_entries is below batch_size): halves.
                    parts += _halves(part)
                    continue
                self._refused(len(bad) or len(part), exc)
                rest = [entry for index, entry in enumerate(part) if index not in bad] if bad else []
                if rest:
                    parts.append(rest)
            except PayloadTooLarge as exc:
                if len(part) == 1:
                    self._refused(1, exc)
                else:
                    parts += _halves(part)
            except ClientError as exc:
                if not exc.retryable:
                    self._refused(len(part), exc)
                    continue
                delay = self._delay(attempt, exc.retry_after)
                attempt += 1
                self._warnings.say(
                    "retrying", f"cannot deliver log records yet ({exc}); retrying, next in {delay:.1f} s"
                )
                parts.append(part)
                self._stop.wait(delay)
            except Exception as exc:  # a fault of ours must not stop the thread that every record needs
                self._refused(len(part), exc)
            else:
                self.delivered += len(part)
                attempt = 0

    def _refused(self, count: int, exc: Exception) -> None:
        self.rejected += count
        self._warnings.say("rejected", f"{self.rejected} log records refused so far, the last: {exc}")

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        """Exponential backoff with jitter ("equal jitter": half fixed, half random), at least the
        service's Retry-After."""
        ceiling = min(self._max_backoff, self._backoff * 2.0 ** min(attempt, 32))
        delay = ceiling / 2 + random.random() * ceiling / 2  # noqa: S311 (jitter, not a secret)
        if retry_after is not None:
            delay = max(delay, min(retry_after, _MAX_RETRY_AFTER))
        return delay

    def _after_fork(self) -> None:
        # The queue, the thread and the connections belong to the parent: the child starts afresh. Its
        # copy of the parent's client is kept, never closed: closing would shut connections the parent uses.
        self._inherited.append(self._client)
        self._start()


def _halves(part: list[msgspec.Raw]) -> list[list[msgspec.Raw]]:
    """The two halves of a batch, the first last: ``parts`` is a stack, and order is kept."""
    half = len(part) // 2
    return [part[half:], part[:half]]


_LIVE: weakref.WeakSet[Shipper] = weakref.WeakSet()


def _close_all() -> None:
    for shipper in list(_LIVE):
        shipper.close()


def _restart_all() -> None:
    for shipper in list(_LIVE):
        shipper._after_fork()


# Registered after logging's own shutdown hook (logging is imported before this), so it runs before it.
atexit.register(_close_all)
os.register_at_fork(after_in_child=_restart_all)
