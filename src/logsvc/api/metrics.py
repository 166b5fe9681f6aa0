"""Prometheus metrics of one app (``logsvc.api.app.Application`` records every request)."""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

__all__ = ["Metrics"]

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_BATCH_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 25_000, 50_000)


class Metrics:
    """The service's metrics in a registry of their own, so that several apps can live in one process."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "logsvc_http_requests",
            "HTTP requests answered",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "logsvc_http_request_duration_seconds",
            "Time from request start to the end of the response",
            ["method", "route"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._request_children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        self.entries_ingested = Counter(
            "logsvc_entries_ingested", "Log entries stored and acknowledged", registry=self.registry
        )
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
        # labels() hashes and locks on every call; the label sets are few, so their children are kept.
        key = (method, route, status)
        children = self._request_children.get(key)
        if children is None:
            children = (self.requests.labels(method, route, str(status)), self.latency.labels(method, route))
            self._request_children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def ingested(self, count: int) -> None:
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
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry)
        return generate_latest(self.registry)
