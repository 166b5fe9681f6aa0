"""Prometheus metrics of one app (``logsvc.api.app.Application`` records every request).

What every request updates (its count and latency, the entries it acknowledged) is counted, in a single
process, in plain integers and floats, which the registry turns into the Prometheus families only when
scraped (``_Counted``, a collector): prometheus_client's own values take a lock on each update, 3-5 µs a
request (decision 36). With several worker processes the other metrics are prometheus_client's values,
which it keeps in files so that a scrape of any worker reads them all; these stay plain numbers, and each
worker writes them to a file of its own every second (its file's values in prometheus_client's files cost
6 µs a request; decision 46), which a scrape adds to its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import secrets
import time
from bisect import bisect_left
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Final

import msgspec
from prometheus_client import CollectorRegistry, Counter, GCCollector, Histogram, Metric, generate_latest
from prometheus_client import metrics as prometheus_metrics
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from prometheus_client.utils import INF, floatToGoString

__all__ = ["Metrics"]

log = logging.getLogger("logsvc.api")

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_REQUESTS = ("logsvc_http_requests", "HTTP requests answered")
_LATENCY = ("logsvc_http_request_duration_seconds", "Time from request start to the end of the response")
# Counted by the service for each request it answers, whatever the store: an entry re-sent with a log_id its
# service holds (a retry) is acknowledged again though stored once, which only the store's writer knows
# (``logsvc_store_write_batch_entries`` counts the entries stored; decision 52).
_INGESTED = (
    "logsvc_entries_ingested",
    "Log entries acknowledged; one re-sent with a log_id its service holds already counts again",
)
# Each bucket's ``le`` label, as prometheus_client writes its bound.
_LE = tuple(floatToGoString(bound) for bound in (*_LATENCY_BUCKETS, INF))  # type: ignore[no-untyped-call]
_BATCH_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 25_000, 50_000)
# A lone entry's commit takes about 0.3 ms with its fsync on a quiet machine: the lowest buckets split that.
_COMMIT_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)
_PUBLISH_SECONDS: Final = 1.0
# Each worker's request counts: this, its pid and a token, ``.json``; with the layout's version, so that the
# workers of another version (a SIGHUP restart onto new code) never read each other's.
_COUNTED: Final = "counted_v1_"


class _Snapshot(msgspec.Struct, array_like=True):
    """A process's ``_Counted``, as its file holds it."""

    requests: list[tuple[str, str, int, int, float]]  # method, route, status, count, created
    latency: list[tuple[str, str, list[int], float, float]]  # method, route, buckets, sum, created
    ingested: int
    ingested_created: float


class _Latency:
    """One (method, route)'s latency histogram: a count per bucket (``+Inf`` last), the sum, when made."""

    __slots__ = ("buckets", "created", "sum")

    def __init__(self) -> None:
        self.buckets = [0] * (len(_LATENCY_BUCKETS) + 1)
        self.sum = 0.0
        self.created = time.time()


class _Counted(Collector):
    """The request count, the latency and the entries ingested of this process, updated on the event loop
    as plain numbers and collected as the families ``Counter``/``Histogram`` would give: same names,
    labels, values and ``_created`` times."""

    def __init__(self) -> None:
        # Per (method, route, status): [count, created], and that (method, route)'s latency.
        self._requests: dict[tuple[str, str, int], tuple[list[float], _Latency]] = {}
        self._latency: dict[tuple[str, str], _Latency] = {}
        self.ingested = 0
        self._ingested_created = time.time()

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        counted = self._requests.get((method, route, status))
        if counted is None:
            counted = self._first((method, route, status))
        count, latency = counted
        count[0] += 1
        # The first bucket whose bound is at least ``seconds`` (a bucket counts values <= its bound).
        latency.buckets[bisect_left(_LATENCY_BUCKETS, seconds)] += 1
        latency.sum += seconds

    def _first(self, key: tuple[str, str, int], created: float | None = None) -> tuple[list[float], _Latency]:
        latency = self._latency.get(key[:2])
        if latency is None:
            latency = self._latency[key[:2]] = _Latency()
        counted = self._requests[key] = ([0, created or time.time()], latency)
        return counted

    def snapshot(self) -> _Snapshot:
        return _Snapshot(
            [(*key, int(count[0]), count[1]) for key, (count, _) in list(self._requests.items())],
            [(*key, list(h.buckets), h.sum, h.created) for key, h in list(self._latency.items())],
            self.ingested,
            self._ingested_created,
        )

    @classmethod
    def summed(cls, snapshots: Iterable[_Snapshot]) -> _Counted:
        """The counts of several processes added up; each series made when its first process made it."""
        total = cls()
        total._ingested_created = math.inf
        for snapshot in snapshots:
            for method, route, status, count, created in snapshot.requests:
                counted = total._requests.get((method, route, status))
                if counted is None:
                    counted = total._first((method, route, status), created)
                counted[0][0] += count
                counted[0][1] = min(counted[0][1], created)
            for method, route, buckets, seconds, created in snapshot.latency:
                latency = total._latency.get((method, route))
                if latency is None:
                    latency = total._latency[(method, route)] = _Latency()
                    latency.created = created
                latency.buckets = [a + b for a, b in zip(latency.buckets, buckets, strict=True)]
                latency.sum += seconds
                latency.created = min(latency.created, created)
            total.ingested += snapshot.ingested
            total._ingested_created = min(total._ingested_created, snapshot.ingested_created)
        return total

    def collect(self) -> Iterator[Metric]:
        # prometheus_client's own switch (PROMETHEUS_DISABLE_CREATED_SERIES, disable_created_metrics()),
        # read when its families are collected, so that these follow the same setting.
        created = getattr(prometheus_metrics, "_use_created", True)
        requests = Metric(_REQUESTS[0], _REQUESTS[1], "counter")
        for (method, route, status), (count, _) in list(self._requests.items()):
            labels = {"method": method, "route": route, "status": str(status)}
            requests.add_sample(f"{_REQUESTS[0]}_total", labels, float(count[0]))
            if created:
                requests.add_sample(f"{_REQUESTS[0]}_created", labels, count[1])
        yield requests
        latency = Metric(_LATENCY[0], _LATENCY[1], "histogram")
        for (method, route), histogram in list(self._latency.items()):
            labels = {"method": method, "route": route}
            total = 0.0
            for le, count_in in zip(_LE, histogram.buckets, strict=True):
                total += count_in
                latency.add_sample(f"{_LATENCY[0]}_bucket", labels | {"le": le}, total)
            latency.add_sample(f"{_LATENCY[0]}_count", labels, total)
            latency.add_sample(f"{_LATENCY[0]}_sum", labels, histogram.sum)
            if created:
                latency.add_sample(f"{_LATENCY[0]}_created", labels, histogram.created)
        yield latency
        ingested = Metric(_INGESTED[0], _INGESTED[1], "counter")
        ingested.add_sample(f"{_INGESTED[0]}_total", {}, float(self.ingested))
        if created:
            ingested.add_sample(f"{_INGESTED[0]}_created", {}, self._ingested_created)
        yield ingested


class Metrics:
    """The service's metrics in a registry of their own, so that several apps can live in one process."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        files = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        # With several workers: where this process's counts are written, and the other workers' are read.
        self._files = Path(files) if files else None
        self._counted = _Counted()
        self.registry.register(self._counted)
        # The collector's work in this process (python_gc_*), as prometheus_client's default registry shows
        # it; with several workers, the files hold only what every worker sums, and these are left out.
        GCCollector(registry=self.registry)
        self.observe_request = self._counted.observe_request
        self._publishing: asyncio.Task[None] | None = None
        # The file of this process's counts: by pid, and a token, so that a worker given a dead worker's
        # pid never writes over its counts (a total would fall).
        self._name = f"{os.getpid()}_{secrets.token_hex(4)}"
        self.entries_rejected = Counter(
            "logsvc_entries_rejected", "Log entries refused by validation", registry=self.registry
        )
        self.syslog_messages = Counter(
            "logsvc_syslog_messages_received",
            "Syslog messages read, by transport (tcp, udp)",
            ["transport"],
            registry=self.registry,
        )
        self.syslog_drops = Counter(
            "logsvc_syslog_messages_dropped",
            "Syslog messages not stored, by reason",
            ["reason"],
            registry=self.registry,
        )
        self.syslog_closes = Counter(
            "logsvc_syslog_connections_closed",
            "Syslog connections closed by the server, by reason",
            ["reason"],
            registry=self.registry,
        )
        self.write_batch = Histogram(
            "logsvc_store_write_batch_entries",
            "Entries stored per store transaction (group commit); not those re-sent with a log_id their "
            "service holds already, which are acknowledged but not stored again",
            buckets=_BATCH_BUCKETS,
            registry=self.registry,
        )
        # How long the store's one writer is busy per commit: rate(..._sum) near 1 is a writer at its limit,
        # and the upper buckets show commits that stalled (a disk slow to fsync, an index merge).
        self.commit_duration = Histogram(
            "logsvc_store_commit_duration_seconds",
            "Time a store transaction of entries took (group commit), from its first statement until it "
            "committed, fsync included",
            buckets=_COMMIT_BUCKETS,
            registry=self.registry,
        )

    def ingested(self, count: int) -> None:
        self._counted.ingested += count

    def rejected(self, count: int) -> None:
        self.entries_rejected.inc(count)

    def syslog_received(self, transport: str, count: int) -> None:
        self.syslog_messages.labels(transport).inc(count)

    def syslog_dropped(self, reason: str, count: int) -> None:
        self.syslog_drops.labels(reason).inc(count)

    def syslog_closed(self, reason: str) -> None:
        self.syslog_closes.labels(reason).inc()

    def committed(self, stored: int, seconds: float) -> None:
        self.write_batch.observe(stored)
        self.commit_duration.observe(seconds)

    def start(self) -> None:
        """With several workers: write this process's counts to its file, every second until ``stop``."""
        if self._files is not None and self._publishing is None:
            self._publishing = asyncio.get_running_loop().create_task(self._publish_every_second())

    async def stop(self) -> None:
        if self._publishing is not None:
            self._publishing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._publishing
            self._publishing = None
            self._publish()  # the last requests of a worker that stops count too

    async def _publish_every_second(self) -> None:
        while True:
            self._publish()
            await asyncio.sleep(_PUBLISH_SECONDS)

    def _publish(self) -> None:
        assert self._files is not None
        written = self._files / f"{_COUNTED}{self._name}.json"
        partial = written.with_suffix(".partial")
        try:
            partial.write_bytes(msgspec.json.encode(self._counted.snapshot()))
            partial.replace(written)  # a scrape reads the whole file, old or new
        except OSError as exc:
            log.warning("cannot write this worker's request counts to %s: %s", written, exc)

    def exposition(self) -> bytes:
        # With several worker processes prometheus_client keeps values in files; one scrape sums them all.
        # The request counts too: each worker's as written last, this worker's written just now, so that
        # a total never falls from one scrape to the next (a scrape of another worker may read this
        # worker's file a second old, never newer counts than it showed).
        if self._files is not None:
            registry = CollectorRegistry()
            MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            self._publish()
            snapshots = [_read_snapshot(path) for path in self._files.glob(f"{_COUNTED}*.json")]
            registry.register(_Counted.summed(s for s in snapshots if s is not None))
            return generate_latest(registry)
        return generate_latest(self.registry)


def _read_snapshot(path: Path) -> _Snapshot | None:
    try:
        return msgspec.json.decode(path.read_bytes(), type=_Snapshot)
    except (OSError, msgspec.DecodeError) as exc:
        log.warning("skipped the request counts in %s: %s", path, exc)
        return None
