"""Tail latency: from the 201 of an ingest to the entry's event at every one of many subscribers.

``SUBSCRIBERS`` streams of ``GET /logs/tail`` are open while a paced ingester sends ``RATE`` single-entry
POSTs a second over a few keep-alive connections. Every tenth entry is a probe whose message holds a unique
token: the time its 201 was read is set against the time each subscriber's socket gave the token. Raw
asyncio sockets on both sides, so that the client, which shares the two cores with the server, spends as
little as it can (a subscriber only scans the bytes for tokens). A latency below zero (the event came before
the 201 was read) counts as zero.

``python -m benchmarks.tail`` runs it alone against a fresh server (about 30 s); ``benchmarks/run.py`` runs
it as one step of the suite.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.processes import HOST, Probe, Server, admin_credential, free_port, running

SUBSCRIBERS = 100
RATE = 1000  # entries a second, one per request
INGEST_CONNECTIONS = 48  # each waits for its 201 (an fsync) before it sends again
PROBE_EVERY = 10
WARMUP_SECONDS = 2.0
WARMUP_NUMBERS = 9_000_000  # the warm-up's probes, told apart from the measured ones
_TOKEN = re.compile(rb"probe-(\d{7})-")
_TOKEN_BYTES = len(b"probe-0000000-")


def _post(port: int, api_key: str, message: str) -> bytes:
    body = json.dumps({"service_name": "bench", "message": message}, separators=(",", ":")).encode()
    head = (
        f"POST /logs HTTP/1.1\r\nHost: {HOST}:{port}\r\nAuthorization: Bearer {api_key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _subscriber(port: int, api_key: str, seen: dict[int, float], opened: asyncio.Queue[int]) -> None:
    reader, writer = await asyncio.open_connection(HOST, port)
    writer.write(
        f"GET /logs/tail HTTP/1.1\r\nHost: {HOST}:{port}\r\nAuthorization: Bearer {api_key}\r\n"
        "Accept: text/event-stream\r\n\r\n".encode()
    )
    carry = b""
    announced = False
    try:
        while chunk := await reader.read(1 << 16):
            now = time.perf_counter()
            if not announced and b"id: " in carry + chunk:
                announced = True
                opened.put_nowait(1)
            for match in _TOKEN.finditer(carry + chunk):
                seen.setdefault(int(match.group(1)), now)
            carry = chunk[-_TOKEN_BYTES:]
    finally:
        writer.close()


async def _ingester(
    port: int, api_key: str, rate_per_connection: float, first: int, stride: int, deadline: float
) -> tuple[int, dict[int, float]]:
    """Send entries number first, first + stride, ... at the pace given, one at a time; when each probe's
    201 was read."""
    reader, writer = await asyncio.open_connection(HOST, port)
    acknowledged: dict[int, float] = {}
    sent = 0
    start = time.perf_counter()
    number = first
    try:
        while (now := time.perf_counter()) < deadline:
            due = start + sent / rate_per_connection
            if due > now:
                await asyncio.sleep(due - now)
            probe = number % PROBE_EVERY == 0
            message = f"probe-{number:07d}-" if probe else f"filler {number} " + "x" * 60
            writer.write(_post(port, api_key, message))
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 201"):
                raise RuntimeError(f"ingest answered {head.splitlines()[0]!r}")
            length = int(re.search(rb"content-length: (\d+)", head.lower()).group(1))  # type: ignore[union-attr]
            await reader.readexactly(length)
            if probe:
                acknowledged[number] = time.perf_counter()
            sent += 1
            number += stride
    finally:
        writer.close()
    return sent, acknowledged


async def _ingest(
    port: int, api_key: str, rate: int, seconds: float, offset: int
) -> list[tuple[int, dict[int, float]]]:
    deadline = time.perf_counter() + seconds
    return await asyncio.gather(
        *(
            _ingester(port, api_key, rate / INGEST_CONNECTIONS, offset + first, INGEST_CONNECTIONS, deadline)
            for first in range(INGEST_CONNECTIONS)
        )
    )


async def _measure(port: int, api_key: str, subscribers: int, rate: int, seconds: float) -> dict[str, Any]:
    seen = [dict[int, float]() for _ in range(subscribers)]
    opened: asyncio.Queue[int] = asyncio.Queue()
    readers = [asyncio.create_task(_subscriber(port, api_key, s, opened)) for s in seen]
    for _ in range(subscribers):
        await asyncio.wait_for(opened.get(), 60)
    await _ingest(port, api_key, rate, WARMUP_SECONDS, WARMUP_NUMBERS)  # connections, caches: not measured
    started = time.perf_counter()
    results = await _ingest(port, api_key, rate, seconds, 0)
    elapsed = time.perf_counter() - started
    acknowledged = {number: at for _, acked in results for number, at in acked.items()}
    seen = [{number: at for number, at in s.items() if number < WARMUP_NUMBERS} for s in seen]
    await asyncio.sleep(2)  # the last events on their way
    for task in readers:
        task.cancel()
    await asyncio.gather(*readers, return_exceptions=True)
    latencies = [
        max(0.0, (s[number] - at) * 1000) for s in seen for number, at in acknowledged.items() if number in s
    ]
    expected = len(acknowledged) * subscribers
    latencies.sort()
    return {
        "rate": round(sum(sent for sent, _ in results) / elapsed, 1),
        "p50_ms": round(statistics.median(latencies), 2) if latencies else None,
        "p99_ms": round(latencies[int(0.99 * (len(latencies) - 1))], 2) if latencies else None,
        "max_ms": round(latencies[-1], 2) if latencies else None,
        "samples": len(latencies),
        "missing": expected - len(latencies),
        "subscribers": subscribers,
    }


def measure(
    server: Server, api_key: str, *, subscribers: int = SUBSCRIBERS, rate: int = RATE, seconds: float = 10.0
) -> dict[str, Any]:
    """Run the measurement against a server whose credential ``api_key`` may open ``subscribers`` streams."""
    return asyncio.run(_measure(server.port, api_key, subscribers, rate, seconds))


def server_argv(data_dir: Path, port: int) -> list[str]:
    argv = [sys.executable, "-m", "logsvc", "serve", "--data-dir", str(data_dir), "--port", str(port)]
    return [*argv, "--log-level", "warning"]


def main(argv: list[str] | None = None) -> int:

    parser = argparse.ArgumentParser(prog="python -m benchmarks.tail", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--subscribers", type=int, default=SUBSCRIBERS)
    parser.add_argument("--rate", type=int, default=RATE)
    args = parser.parse_args(argv)
    for name in [name for name in os.environ if name.startswith("LOGSVC_")]:
        del os.environ[name]
    with tempfile.TemporaryDirectory(prefix="logsvc-bench-tail-") as scratch:
        root = Path(scratch)
        os.environ["LOGSVC_CREDENTIALS_FILE"] = str(root / "credentials")
        os.environ["LOGSVC_MASTER_KEY_FILE"] = str(root / "master.key")
        os.environ["LOGSVC_TAIL_STREAMS_PER_CREDENTIAL"] = str(args.subscribers)
        key = admin_credential(root / "data")
        port = free_port()
        probe = Probe("GET", "/healthz", None, 200)
        with running(
            "logsvc-tail", server_argv(root / "data", port), port, root / "server.log", probe
        ) as server:
            result = measure(
                server, key.api_key, subscribers=args.subscribers, rate=args.rate, seconds=args.seconds
            )
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
