"""Realistic log entries from message templates: the data of every size figure (issue 14).

The pseudo-word vocabulary of ``benchmarks/dataset.py`` compresses very differently from real logs, so the
storage figures are measured on this generator instead, which follows the distributions of the storage-v2
note (/work/shared/STORAGE-V2.md): HTTP access lines, auth events, database timeouts, stack traces and
Kubernetes events with random ids, IPs, UUIDs, numbers and paths; 20 services with skewed volume; levels
TRACE 5 %, DEBUG 20 %, INFO 50 %, WARN 15 %, ERROR 8 %, FATAL 2 %; 1-5 metadata keys; 2 % multi-line
messages; a UUIDv7 ``log_id`` each; event times about 1 ms apart with jitter. The probe words: ``timeout``
in about 20 % of the messages, ``zeppelin`` in one in 20,000 (50 at 1M).

Everything is drawn from one seeded generator, so a run is reproducible.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from logsvc.domain.entries import Level, NewEntry, format_log_id
from logsvc.domain.timestamps import format_timestamp

__all__ = ["COMMON_WORD", "RARE_WORD", "TemplateData", "raw_ndjson"]

COMMON_WORD = "timeout"
COMMON_SHARE = 0.2
RARE_WORD = "zeppelin"
RARE_EVERY = 20_000
MULTI_LINE_SHARE = 0.02
SPACING_US = 1_000

SERVICES = [
    "api-gateway",
    "checkout",
    "auth",
    "catalog",
    "payments",
    "search",
    "orders",
    "inventory",
    "notifications",
    "recommendations",
    "shipping",
    "users",
    "billing",
    "reports",
    "scheduler",
    "ingest-worker",
    "media",
    "analytics",
    "admin-portal",
    "audit",
]
# Zipf-like volume: the first service logs about 20 times as much as the last.
_SERVICE_WEIGHTS = [1 / (rank + 1) ** 1.0 for rank in range(len(SERVICES))]
_LEVELS = list(Level)
_LEVEL_WEIGHTS = [5, 20, 50, 15, 8, 2]  # TRACE DEBUG INFO WARN ERROR FATAL

_METHODS = ["GET"] * 6 + ["POST"] * 3 + ["PUT", "DELETE", "PATCH"]
_RESOURCES = ["users", "orders", "carts", "products", "sessions", "invoices", "payments", "items", "reviews"]
_AGENTS = [
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
    "okhttp/4.12.0",
    "python-requests/2.31.0",
    "curl/8.5.0",
    "Go-http-client/2.0",
]
_TABLES = ["orders", "users", "sessions", "line_items", "payments", "inventory", "audit_log"]
_HOSTS = ["db-primary", "db-replica-1", "db-replica-2", "redis-0", "redis-1", "kafka-2"]
_REASONS = ["Scheduled", "Pulled", "Created", "Started", "Killing", "BackOff", "Unhealthy", "FailedMount"]
_EXCEPTIONS = [
    "java.lang.NullPointerException",
    "java.lang.IllegalStateException: connection pool exhausted",
    "ValueError: invalid literal for int() with base 10",
    "KeyError: 'customer_id'",
    "org.postgresql.util.PSQLException: ERROR: deadlock detected",
    "TypeError: Cannot read properties of undefined (reading 'id')",
]
_FRAMES = [
    "at com.example.{svc}.OrderController.create(OrderController.java:{n})",
    "at com.example.{svc}.service.Repository.save(Repository.java:{n})",
    "at org.springframework.web.servlet.FrameworkServlet.service(FrameworkServlet.java:{n})",
    '  File "/app/{svc}/handlers.py", line {n}, in handle',
    '  File "/usr/lib/python3.11/site-packages/sqlalchemy/engine/base.py", line {n}, in _execute',
    "    at Object.<anonymous> (/srv/{svc}/dist/index.js:{n}:17)",
]
_META_KEYS = [
    "host",
    "pod",
    "region",
    "trace_id",
    "user_id",
    "request_id",
    "version",
    "env",
    "status",
    "took_ms",
]
_REGIONS = ["eu-west-1", "us-east-1", "us-west-2", "ap-south-1"]


@dataclass
class _Draw:
    """The random parts a template draws from, on one seeded generator."""

    rng: random.Random

    def ip(self) -> str:
        r = self.rng
        return f"10.{r.randrange(256)}.{r.randrange(256)}.{r.randrange(1, 255)}"

    def uuid(self) -> str:
        value = self.rng.getrandbits(128)
        text = f"{value:032x}"
        return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"

    def hexid(self, chars: int) -> str:
        return f"{self.rng.getrandbits(chars * 4):0{chars}x}"

    def path(self) -> str:
        r = self.rng
        resource = r.choice(_RESOURCES)
        tail = r.choice(
            ["", f"/{r.randrange(1, 999_999)}", f"/{self.uuid()}", f"/{r.randrange(1, 9999)}/items"]
        )
        return f"/api/v{r.randint(1, 3)}/{resource}{tail}"

    def ms(self, high: int) -> int:
        return int(self.rng.expovariate(1 / max(high / 8, 1))) + 1


Template = Callable[[_Draw, str], str]


def _access(d: _Draw, svc: str) -> str:
    r = d.rng
    status = r.choices(
        [200, 201, 204, 301, 304, 400, 401, 403, 404, 409, 429, 500, 502, 503],
        [60, 8, 5, 1, 4, 3, 2, 1, 6, 1, 1, 2, 1, 1],
    )[0]
    return (
        f'{d.ip()} - - "{r.choice(_METHODS)} {d.path()} HTTP/1.1" {status} {r.randrange(0, 48_000)} '
        f'{d.ms(400)}ms "{r.choice(_AGENTS)}"'
    )


def _request_done(d: _Draw, svc: str) -> str:
    r = d.rng
    return (
        f"request completed method={r.choice(_METHODS)} path={d.path()} status=200 "
        f"duration_ms={d.ms(300)} bytes={r.randrange(90, 20_000)}"
    )


def _auth(d: _Draw, svc: str) -> str:
    r = d.rng
    user = f"user-{r.randrange(1, 50_000)}"
    return r.choice(
        [
            f"user {user} logged in from {d.ip()} via password (mfa=totp)",
            f"user {user} logged out, session {d.hexid(16)} closed after {r.randrange(1, 7200)}s",
            f"failed login for {user} from {d.ip()}: invalid credentials (attempt {r.randint(1, 5)} of 5)",
            f"token refreshed for client app-{r.randrange(1, 300)} scope=read:orders expires_in=3600",
            f"access denied to {d.path()} for {user}: missing role admin",
            f"password reset requested for {user}, email queued as msg-{d.hexid(12)}",
        ]
    )


def _k8s(d: _Draw, svc: str) -> str:
    r = d.rng
    pod = f"{svc}-{d.hexid(10)}-{d.hexid(5)}"
    return r.choice(
        [
            f"Event {r.choice(_REASONS)} pod/{pod} in namespace prod: Successfully assigned to node "
            f"ip-{d.ip().replace('.', '-')}",
            f'Container image "registry.example.com/{svc}:1.{r.randrange(40)}.{r.randrange(20)}" already '
            f"present on machine",
            f"Readiness probe failed for pod/{pod}: HTTP probe failed with statuscode: 503",
            f"Scaled deployment/{svc} from {r.randint(2, 6)} to {r.randint(2, 9)} replicas (cpu "
            f"{r.randrange(40, 99)}%)",
            f"Back-off restarting failed container {svc} in pod {pod}",
        ]
    )


def _debug(d: _Draw, svc: str) -> str:
    r = d.rng
    return r.choice(
        [
            f"cache hit key=session:{d.hexid(16)} ttl={r.randrange(1, 3600)}s",
            f"cache miss key=product:{r.randrange(1, 200_000)} loading from {r.choice(_HOSTS)}",
            f"query SELECT * FROM {r.choice(_TABLES)} WHERE id = $1 took {d.ms(50)}ms "  # noqa: S608 (a log line, not a query)
            f"rows={r.randrange(0, 50)}",
            f"enqueued job {d.uuid()} on queue {svc}-default (depth {r.randrange(0, 500)})",
            f"feature flag new-checkout={r.choice(['on', 'off'])} for account {r.randrange(1, 90_000)}",
            f"span {d.hexid(16)} parent {d.hexid(16)} finished in {d.ms(40)}ms",
        ]
    )


def _warn(d: _Draw, svc: str) -> str:
    r = d.rng
    return r.choice(
        [
            f"slow request {r.choice(_METHODS)} {d.path()} took {r.randrange(1000, 9000)}ms (threshold "
            f"1000ms)",
            f"retrying call to {r.choice(_HOSTS)}:{r.choice([5432, 6379, 9092])} attempt {r.randint(2, 5)} "
            f"after {d.ms(800)}ms",
            f"rate limit approaching for api key ak_{d.hexid(12)}: {r.randrange(80, 99)}% of quota used",
            f"deprecated endpoint {d.path()} called by client app-{r.randrange(1, 300)}",
            f"disk usage on /var/lib/{svc} at {r.randrange(80, 96)}%",
        ]
    )


def _error(d: _Draw, svc: str) -> str:
    r = d.rng
    return r.choice(
        [
            f"payment {d.uuid()} declined by provider: insufficient_funds (code {r.randrange(1000, 9999)})",
            f"failed to publish event order.created to topic orders-{r.randrange(12)}: broker not available",
            f"unhandled error processing message {d.hexid(24)} from queue {svc}-events",
            f"upstream {r.choice(_HOSTS)} returned 502 for {r.choice(_METHODS)} {d.path()}",
            f"could not acquire lock {r.choice(_TABLES)}:{r.randrange(1, 10_000)} held by "
            f"worker-{r.randrange(64)}",
        ]
    )


def _timeout(d: _Draw, svc: str) -> str:
    r = d.rng
    return r.choice(
        [
            f"database timeout after {r.randrange(1000, 30_000)}ms on {r.choice(_HOSTS)}: query on "
            f"{r.choice(_TABLES)} cancelled",
            f"context deadline exceeded (timeout {r.choice([500, 1000, 2000, 5000])}ms) calling "
            f"{r.choice(_HOSTS)} for {d.path()}",
            f"connection timeout to {d.ip()}:{r.choice([443, 5432, 6379, 9092])} after {r.randint(1, 30)}s, "
            f"pool={svc}-pool active={r.randrange(1, 64)}",
            f"request {d.uuid()} hit read timeout from {r.choice(_HOSTS)} ({d.ms(9000)}ms)",
        ]
    )


def _stack(d: _Draw, svc: str) -> str:
    r = d.rng
    frames = [r.choice(_FRAMES).format(svc=svc, n=r.randrange(10, 900)) for _ in range(r.randint(3, 8))]
    return "\n".join([f"unhandled exception in request {d.uuid()}: {r.choice(_EXCEPTIONS)}", *frames])


_BY_LEVEL: dict[Level, list[Template]] = {
    Level.TRACE: [_debug],
    Level.DEBUG: [_debug, _debug, _request_done],
    Level.INFO: [_access, _access, _access, _request_done, _auth, _k8s],
    Level.WARN: [_warn, _warn, _auth, _k8s, _access],
    Level.ERROR: [_error, _error, _access, _auth],
    Level.FATAL: [_error],
}


class TemplateData:
    """An endless, reproducible stream of entries; ``raw_bytes`` counts their NDJSON as sent."""

    def __init__(self, seed: int = 14, start_us: int = 1_764_460_800_000_000) -> None:
        self._draw = _Draw(random.Random(seed))
        self._next_us = start_us
        self._index = 0

    def _metadata(self, svc: str) -> str:
        d = self._draw
        r = d.rng
        values: dict[str, Callable[[], object]] = {
            "host": lambda: f"ip-{d.ip().replace('.', '-')}",
            "pod": lambda: f"{svc}-{d.hexid(10)}-{d.hexid(5)}",
            "region": lambda: r.choice(_REGIONS),
            "trace_id": lambda: d.hexid(32),
            "user_id": lambda: r.randrange(1, 50_000),
            "request_id": d.uuid,
            "version": lambda: f"1.{r.randrange(40)}.{r.randrange(20)}",
            "env": lambda: r.choice(["prod", "prod", "prod", "staging"]),
            "status": lambda: r.choice([200, 200, 200, 404, 500]),
            "took_ms": lambda: d.ms(300),
        }
        keys = r.sample(_META_KEYS, r.randint(1, 5))
        return json.dumps({key: values[key]() for key in keys}, separators=(",", ":"))

    def _log_id(self, ts_us: int) -> bytes:
        """A UUIDv7 of the event's millisecond, with its random bits from the seeded generator."""
        rand = self._draw.rng.getrandbits(74)
        value = (ts_us // 1000) << 80 | 0x7 << 76 | (rand >> 62) << 64 | 0b10 << 62 | (rand & (1 << 62) - 1)
        return value.to_bytes(16, "big")

    def entry(self) -> NewEntry:
        r = self._draw.rng
        self._index += 1
        ts = self._next_us + r.randrange(-400, 400)
        self._next_us += SPACING_US
        svc = r.choices(SERVICES, _SERVICE_WEIGHTS)[0]
        level = r.choices(_LEVELS, _LEVEL_WEIGHTS)[0]
        kind = r.random()
        if kind < MULTI_LINE_SHARE:
            message = _stack(self._draw, svc)
        elif kind < MULTI_LINE_SHARE + COMMON_SHARE:
            message = _timeout(self._draw, svc)
        else:
            message = r.choice(_BY_LEVEL[level])(self._draw, svc)
        if self._index % RARE_EVERY == RARE_EVERY // 2:
            message += f" (airship {RARE_WORD} reported)"
        return NewEntry(
            log_id=self._log_id(ts),
            service_name=svc,
            ts_us=ts,
            level=level,
            log_type="application",
            message=message,
            metadata=self._metadata(svc),
            received_us=ts + r.randrange(200, 5_000),
        )

    def batches(self, count: int, size: int = 1000) -> Iterator[list[NewEntry]]:
        for first in range(0, count, size):
            yield [self.entry() for _ in range(min(size, count - first))]


def raw_ndjson(entry: NewEntry) -> bytes:
    """The entry as a client sends it, one NDJSON line: the bytes every size is compared with."""
    document = {
        "log_id": format_log_id(entry.log_id),
        "timestamp": format_timestamp(entry.ts_us),
        "service_name": entry.service_name,
        "level": entry.level.name,
        "message": entry.message,
        "metadata": json.loads(entry.metadata) if entry.metadata is not None else None,
    }
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"
