"""The single-entry POST's whole server path in one process, without sockets: the event loop's CPU time.

    PYTHONPATH=<a checkout's src> python -m benchmarks.inprocess [--requests 20000] [--rounds 4]
                                                                 [--scheme api_key|none|sigv4]

Raw HTTP requests (the body and API key of ``make bench``'s single POST; with ``--scheme``, without
credentials or SigV4-signed as the authentication scenario's, anonymous requests allowed) are fed to logsvc's
connection protocol (uvicorn's httptools protocol with logsvc's limits, as ``logsvc serve`` runs it) on 64
connections whose transport only records what is written, each sending its next request when its answer came
(a closed loop, as wrk's); the app, the store (a new data directory, encrypted, durable group commits) and the
writer thread are the real ones. What the kernel's sockets and a load generator add is left out, so the figure
moves far less with the machine's other load than a server's under wrk; compare two source trees by running
this with each on ``PYTHONPATH`` in turns. Prints, per round after the first (a warm-up), the event loop
thread's CPU time per request, the process's (with the writer thread), the rate and the loop's context
switches.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import uvloop
from uvicorn.server import ServerState

from benchmarks import dataset
from benchmarks.processes import UNTHROTTLED, admin_credential
from logsvc.api.app import create_app
from logsvc.auth.credential_service import NewCredential
from logsvc.auth.sigv4 import SignedRequest, sign
from logsvc.connection import HeadLimitedProtocol, ServerConfig, tune_gc_for_serving
from logsvc.settings import load_settings

_CONNECTIONS = 64
# Distinct requests cycled through without credentials or SigV4-signed (each its own message, as make bench's
# authentication scenario sends them: the full-text index then grows alike for both).
_DISTINCT = 1000


class _Transport:
    """What the protocol writes to: each write completes the waiting client's future."""

    def __init__(self) -> None:
        self.answer: asyncio.Future[bytes] | None = None
        self.closing = False

    def write(self, data: bytes) -> None:
        if self.answer is not None and not self.answer.done():
            self.answer.set_result(data)

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 40000), "sockname": ("127.0.0.1", 8000)}.get(name, default)

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...


def _switches() -> int:
    status = Path(f"/proc/self/task/{threading.get_native_id()}/status").read_text()
    fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
    return int(fields["voluntary_ctxt_switches"]) + int(fields["nonvoluntary_ctxt_switches"])


def _requests(key: NewCredential, scheme: str) -> list[bytes]:
    """The raw requests the clients send in turn: the API key's one, or ``_DISTINCT`` others."""
    body = dataset.single_entry_body()
    headers = [("Host", "127.0.0.1:8000"), ("User-Agent", "wrk"), ("Content-Type", "application/json")]
    if scheme == "api_key":
        return [_raw([*headers, ("Authorization", f"Bearer {key.api_key}")], body)]
    distinct = []
    for n in range(_DISTINCT):
        unique = body.replace(b'"message":"', f'"message":"{n} '.encode(), 1)
        own = [*headers, ("Content-Length", str(len(unique)))]
        if scheme == "sigv4":
            own += sign(
                SignedRequest("POST", "/logs", "", own, unique),
                access_key_id=key.access_key_id,
                secret_access_key=key.secret_access_key,
            )
        distinct.append(_raw(own, unique, length=False))
    return distinct


def _raw(headers: list[tuple[str, str]], body: bytes, *, length: bool = True) -> bytes:
    if length:
        headers = [*headers, ("Content-Length", str(len(body)))]
    head = "".join(f"{name}: {value}\r\n" for name, value in headers)
    return f"POST /logs HTTP/1.1\r\n{head}\r\n".encode() + body


async def _measure(data_dir: Path, requests: int, rounds: int, scheme: str) -> list[dict[str, float]]:
    settings = load_settings(overrides={"data_dir": str(data_dir)})
    key = admin_credential(data_dir)
    app = create_app(settings)
    tune_gc_for_serving()  # as `logsvc serve` does
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    await inbox.put({"type": "lifespan.startup"})
    lifespan = asyncio.create_task(app({"type": "lifespan", "state": {}}, inbox.get, outbox.put))
    if (await outbox.get())["type"] != "lifespan.startup.complete":
        raise RuntimeError("the app did not start")
    config = ServerConfig(
        app,
        max_header_bytes=settings.max_header_bytes,
        header_timeout=settings.header_timeout,
        log_level="warning",
        ws="none",
        lifespan="off",
        server_header=False,
        access_log=False,
    )
    config.load()
    sent = _requests(key, scheme)
    loop = asyncio.get_running_loop()
    state = ServerState()
    connections = []
    for _ in range(_CONNECTIONS):
        transport = _Transport()
        protocol = HeadLimitedProtocol(config, state, {}, loop)
        protocol.connection_made(transport)  # type: ignore[arg-type]
        connections.append((protocol, transport))
    failed: list[bytes] = []

    async def client(protocol: HeadLimitedProtocol, transport: _Transport, count: int, first: int) -> None:
        for n in range(first, first + count):
            transport.answer = loop.create_future()
            protocol.data_received(sent[n % len(sent)])
            answer = await transport.answer
            if not answer.startswith(b"HTTP/1.1 201 "):
                failed.append(answer[:200])
            await asyncio.sleep(0)  # the next request of this connection after the others had their turn

    figures = []
    per_connection = requests // _CONNECTIONS
    try:
        for _ in range(rounds + 1):
            loop_cpu, process_cpu, switches = time.thread_time(), time.process_time(), _switches()
            started = time.perf_counter()
            await asyncio.gather(
                *(client(p, t, per_connection, i * 7) for i, (p, t) in enumerate(connections))
            )
            done = per_connection * _CONNECTIONS
            figures.append(
                {
                    "loop_us": (time.thread_time() - loop_cpu) / done * 1e6,
                    "process_us": (time.process_time() - process_cpu) / done * 1e6,
                    "rate": done / (time.perf_counter() - started),
                    "switches": (_switches() - switches) / done,
                }
            )
    finally:
        for protocol, _ in connections:
            protocol.connection_lost(None)
        await inbox.put({"type": "lifespan.shutdown"})
        await lifespan
    if failed:
        raise RuntimeError(f"{len(failed)} answers were not 201, the first: {failed[0]!r}")
    return figures[1:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.inprocess", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--requests", type=int, default=20_000, help="requests per round")
    parser.add_argument("--rounds", type=int, default=4, help="rounds after the warm-up round")
    parser.add_argument("--scheme", choices=("api_key", "none", "sigv4"), default="api_key")
    args = parser.parse_args(argv)
    for name in [name for name in os.environ if name.startswith("LOGSVC_")]:
        del os.environ[name]
    with tempfile.TemporaryDirectory(prefix="logsvc-inprocess-") as scratch:
        os.environ["LOGSVC_CREDENTIALS_FILE"] = str(Path(scratch) / "credentials")
        os.environ["LOGSVC_MASTER_KEY_FILE"] = str(Path(scratch) / "master.key")
        os.environ.update(UNTHROTTLED)
        os.environ["LOGSVC_ALLOW_ANONYMOUS"] = "true"
        figures = uvloop.run(_measure(Path(scratch) / "data", args.requests, args.rounds, args.scheme))
    for row in figures:
        print(
            f"loop {row['loop_us']:5.1f} µs/request, process {row['process_us']:5.1f} µs/request, "
            f"{row['rate']:7,.0f} req/s, loop context switches {row['switches']:.2f}/request"
        )
    medians = {name: statistics.median(row[name] for row in figures) for name in figures[0]}
    print(
        f"median: loop {medians['loop_us']:.1f} µs/request, process {medians['process_us']:.1f} µs/request, "
        f"{medians['rate']:,.0f} req/s, {args.scheme} ({Path(sys.modules['logsvc'].__file__ or '').parent})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
