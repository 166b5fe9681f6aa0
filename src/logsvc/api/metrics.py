"""Prometheus metrics of one app (``logsvc.api.app.Application`` records every request).

What every request updates (its count and latency, the entries it stored) is counted, in a single process,
in plain integers and floats, which the registry turns into the Prometheus families only when scraped
(``_Counted``, a collector): prometheus_client's own values take a lock on each update, 3-5 µs a request
(decision 36). With several worker processes they stay prometheus_client's values, which it keeps in files
so that a scrape of any worker reads them all.
"""

from __future__ import annotations

import os
import time
from bisect import bisect_left
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, Metric, generate_latest
from prometheus_client import metrics as prometheus_metrics
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from prometheus_client.utils import INF, floatToGoString

__all__ = ["Metrics"]

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_REQUESTS = ("logsvc_http_requests", "HTTP requests answered")
_LATENCY = ("logsvc_http_request_duration_seconds", "Time from request start to the end of the response")
_INGESTED = ("logsvc_entries_ingested", "Log entries stored and acknowledged")
# Each bucket's ``le`` label, as prometheus_client writes its bound.
_LE = tuple(floatToGoString(bound) for bound in (*_LATENCY_BUCKETS, INF))  # type: ignore[no-untyped-call]
_BATCH_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 25_000, 50_000)


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

    def _first(self, key: tuple[str, str, int]) -> tuple[list[float], _Latency]:
        latency = self._latency.get(key[:2])
        if latency is None:
            latency = self._latency[key[:2]] = _Latency()
        counted = self._requests[key] = ([0, time.time()], latency)
        return counted

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
        self._in_files = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        self._counted: _Counted | None = None
        if self._in_files:
            self.requests = Counter(*_REQUESTS, ["method", "route", "status"], registry=self.registry)
            self.latency = Histogram(
                *_LATENCY, ["method", "route"], buckets=_LATENCY_BUCKETS, registry=self.registry
            )
            self.entries_ingested = Counter(*_INGESTED, registry=self.registry)
        else:
            self._counted = _Counted()
            self.registry.register(self._counted)
            self.observe_request = self._counted.observe_request  # type: ignore[method-assign]
        self._request_children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
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
            "Entries committed per store transaction (group commit)",
            buckets=_BATCH_BUCKETS,
            registry=self.registry,
        )

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """One answered request (in a single process, ``_Counted.observe_request`` stands in its place)."""
        # labels() hashes and locks on every call; the label sets are few, so their children are kept.
        key = (method, route, status)
        children = self._request_children.get(key)
        if children is None:
            children = (self.requests.labels(method, route, str(status)), self.latency.labels(method, route))
            self._request_children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def ingested(self, count: int) -> None:
        if self._counted is not None:
            self._counted.ingested += count
        else:
            self.entries_ingested.inc(count)

    def rejected(self, count: int) -> None:
        self.entries_rejected.inc(count)

    def syslog_received(self, transport: str, count: int) -> None:
        self.syslog_messages.labels(transport).inc(count)

    def syslog_dropped(self, reason: str, count: int) -> None:
        self.syslog_drops.labels(reason).inc(count)

    def syslog_closed(self, reason: str) -> None:
        self.syslog_closes.labels(reason).inc()

    def committed(self, count: int) -> None:
        self.write_batch.observe(count)

    def exposition(self) -> bytes:
        # With several worker processes prometheus_client keeps values in files; one scrape sums them all.
        if self._in_files:
            registry = CollectorRegistry()
            MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry)
        return generate_latest(self.registry)
