"""Batched ingest through the shippers' protocols, beside the native batch: OTLP/HTTP protobuf
(``POST /v1/logs``) and Loki's push, protobuf with snappy (``POST /loki/api/v1/push``), each carrying the
native batch scenario's 1,000 entries per request. Run by ``make bench`` (a step of benchmarks/run.py), or
alone: ``python -m benchmarks.shippers [--quick]``.

The three take turns on one server, round after round, in an order that rotates from round to round, so
that the store's growth, its full-text merges and the machine's noise fall on all three alike; each
protocol's rate is reported as entries/s and as a ratio to the native batch of the same rounds (the
issue's target: at least 0.8).

A shipper's entries carry ids made from their content (a retry stores nothing twice), so a request sent
again would store nothing and look fast: every request is different, its entries dated later than the
previous request's, as an agent's batches are. They are pre-built for each run, each sent once
(benchmarks/wrk/binary.lua; when a run outlasts them, the rest are answered 404 and not counted).
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cramjam
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs

from benchmarks.loadgen import WRK_THREADS, WrkRun, check_wrk, wrk
from benchmarks.processes import admin_credential
from logsvc.auth.credential_service import NewCredential
from logsvc.domain.entries import Level
from logsvc.domain.loki_proto import push_request

if TYPE_CHECKING:
    from benchmarks.run import Suite

_BINARY_SCRIPT = Path(__file__).resolve().parent / "wrk" / "binary.lua"
# Requests per second each run is built for: above what one process ingests (250,000 entries/s).
REQUESTS_PER_S_HEADROOM = 250
TARGET_RATIO = 0.8
# Each request's entries are 1 µs apart, and each request's first entry 1 ms after the previous request's.
_ENTRY_SPACING_NS = 1_000
_REQUEST_SPACING_NS = 1_000_000


def otlp_request(entries: list[dict[str, Any]]) -> Any:
    """The entries as one ExportLogsServiceRequest (a resource per service, as the Collector batches them),
    undated: ``date_otlp`` dates them."""
    request = ExportLogsServiceRequest()
    by_service: dict[str, ResourceLogs] = {}
    for entry in entries:
        resource_logs = by_service.get(entry["service_name"])
        if resource_logs is None:
            resource_logs = by_service[entry["service_name"]] = request.resource_logs.add()
            resource_logs.resource.attributes.append(
                KeyValue(key="service.name", value=AnyValue(string_value=entry["service_name"]))
            )
            resource_logs.scope_logs.add().scope.name = "bench"
        record = LogRecord(
            severity_number=Level[entry["level"]].value, body=AnyValue(string_value=entry["message"])
        )
        for key, value in entry["metadata"].items():
            kind = "int_value" if isinstance(value, int) else "string_value"
            record.attributes.add(key=key, value=AnyValue(**{kind: value}))
        resource_logs.scope_logs[0].log_records.append(record)
    return request


def date_otlp(request: Any, first_ns: int) -> bytes:
    ns = first_ns
    for resource_logs in request.resource_logs:
        for record in resource_logs.scope_logs[0].log_records:
            record.time_unix_nano = ns
            ns += _ENTRY_SPACING_NS
    return bytes(request.SerializeToString())


def loki_request(entries: list[dict[str, Any]]) -> Any:
    """The entries as one PushRequest, undated (``date_loki`` dates them): a stream per service, the level
    in a logfmt line and the metadata as structured metadata, as Promtail sends an application's lines."""
    request = push_request()()
    by_service: dict[str, Any] = {}
    for entry in entries:
        stream = by_service.get(entry["service_name"])
        if stream is None:
            labels = f'{{service_name="{entry["service_name"]}", env="bench"}}'
            stream = by_service[entry["service_name"]] = request.streams.add(labels=labels.encode())
        pushed = stream.entries.add(line=f"level={entry['level'].lower()} {entry['message']}".encode())
        for key, value in entry["metadata"].items():
            pushed.structuredMetadata.add(name=key.encode(), value=str(value).encode())
    return request


def date_loki(request: Any, first_ns: int) -> bytes:
    ns = first_ns
    for stream in request.streams:
        for entry in stream.entries:
            entry.timestamp.seconds, entry.timestamp.nanos = divmod(ns, 1_000_000_000)
            ns += _ENTRY_SPACING_NS
    return bytes(request.SerializeToString())


class Protocol:
    """One protocol's requests: its path, media type, and how its bodies are made (a request of the
    entries, dated from a nanosecond, encoded)."""

    def __init__(
        self,
        key: str,
        label: str,
        path: str,
        make: Callable[[list[dict[str, Any]]], Any],
        date: Callable[[Any, int], bytes],
        encode: Callable[[bytes], bytes],
    ) -> None:
        self.key, self.label, self.path = key, label, path
        self.make, self.date, self.encode = make, date, encode


PROTOCOLS = (
    Protocol("otlp", "OTLP/HTTP protobuf", "/v1/logs", otlp_request, date_otlp, lambda body: body),
    Protocol(
        "loki",
        "Loki push, protobuf + snappy",
        "/loki/api/v1/push",
        loki_request,
        date_loki,
        lambda body: bytes(cramjam.snappy.compress_raw(body)),
    ),
)


def write_requests(
    base: Path, protocol: Protocol, entries: list[dict[str, Any]], host: str, key: NewCredential, count: int
) -> int:
    """``count`` requests of the entries, dated from now on, split over the wrk threads' files in the order
    they are sent; the body size of the first."""
    request = protocol.make(entries)
    first_ns = time.time_ns()
    per_thread = math.ceil(count / WRK_THREADS)
    size = 0
    outs = [open(f"{base}.{thread}", "wb") for thread in range(WRK_THREADS)]  # noqa: SIM115
    try:
        for number in range(per_thread * WRK_THREADS):
            body = protocol.encode(protocol.date(request, first_ns + number * _REQUEST_SPACING_NS))
            size = size or len(body)
            head = (
                f"POST {protocol.path} HTTP/1.1\r\nHost: {host}\r\n"
                f"Authorization: Bearer {key.api_key}\r\nContent-Type: application/x-protobuf\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            ).encode()
            outs[number % WRK_THREADS].write(f"{len(head) + len(body)}\n".encode() + head + body)
    finally:
        for out in outs:
            out.close()
    return size


def shipper_ingest(suite: Suite) -> None:
    """The step of the suite: native batch, OTLP and Loki in turns on one server, then their scenarios."""
    from benchmarks.run import BATCH_CONNECTIONS, BATCH_ENTRIES, Target, _header, _median_of, console

    name = "logsvc-shippers-w1"
    data_dir = suite.scratch / name
    key = admin_credential(data_dir)
    runs: dict[str, list[WrkRun]] = {"native": [], **{p.key: [] for p in PROTOCOLS}}
    cpu: dict[str, list[float]] = {key: [] for key in runs}
    sizes = {"native": suite.batch_body.stat().st_size}
    with suite._logsvc(name, data_dir, 1) as server:
        host = server.url.removeprefix("http://")
        for round_number in range(suite.profile.runs + 1):
            seconds = suite.profile.warmup_s if round_number == 0 else suite.profile.duration_s
            # The turns rotate from round to round: a stall that comes at a fixed number of commits (the
            # full-text index merging its segments) would otherwise fall on the same protocol every run.
            turns: list[Protocol | None] = [None, *PROTOCOLS]
            shift = round_number % len(turns)
            for protocol in turns[shift:] + turns[:shift]:
                before = server.cpu_seconds()
                if protocol is None:
                    turn, label = "native", "native batch (JSON)"
                    run = wrk(
                        server.url + "/logs",
                        connections=BATCH_CONNECTIONS,
                        duration_s=seconds,
                        body=suite.batch_body,
                        headers=_header(key),
                    )
                else:
                    turn, label = protocol.key, protocol.label
                    count = math.ceil(seconds * REQUESTS_PER_S_HEADROOM)
                    base = suite.scratch / f"{protocol.key}-{round_number}.bin"
                    sizes[protocol.key] = write_requests(base, protocol, suite.batch, host, key, count)
                    run = wrk(
                        server.url + protocol.path,
                        connections=BATCH_CONNECTIONS,
                        duration_s=seconds,
                        requests_file=base,
                        script=_BINARY_SCRIPT,
                    )
                    for thread in range(WRK_THREADS):
                        Path(f"{base}.{thread}").unlink()
                if round_number:  # round 0 warms up
                    runs[turn].append(run)
                    cpu[turn].append(_cpu_us_per_entry(server.cpu_seconds() - before, run, BATCH_ENTRIES))
                    _print(console, round_number, label, run, BATCH_ENTRIES, cpu[turn][-1])
        suite._record_server(server)
    native = _median_of(runs["native"], BATCH_ENTRIES)
    suite.ceilings["native_batch"] = {
        "label": "native batch, same rounds",
        "title": f"POST /logs, {BATCH_ENTRIES:,} entries per request (JSON), in turns with the protocols",
        "unit": "entries/s",
        "connections": BATCH_CONNECTIONS,
        "median": native,
        "body_bytes": sizes["native"],
        "server_cpu_us_per_entry": round(statistics.median(cpu["native"]), 2),
    }
    for protocol in PROTOCOLS:
        suite._scenario(
            f"ingest_batch_{protocol.key}_w1",
            f"{protocol.label}, {BATCH_ENTRIES:,} entries",
            f"POST {protocol.path}, {BATCH_ENTRIES:,} entries per request, durable, --workers 1",
            runs[protocol.key],
            connections=BATCH_CONNECTIONS,
            server=name,
            per_request=BATCH_ENTRIES,
            ceiling="native_batch",
            targets=(Target("rate", True, round(TARGET_RATIO * native["rate"], 1)),),
            extra={
                "entries_per_request": BATCH_ENTRIES,
                "body_bytes": sizes[protocol.key],
                "server_cpu_us_per_entry": round(statistics.median(cpu[protocol.key]), 2),
            },
        )
        ratio = suite.scenarios[-1]["ratio_to_ceiling"]
        cpu_ratio = statistics.median(cpu["native"]) / statistics.median(cpu[protocol.key])
        console.print(
            f"  {protocol.label}: {ratio:.2f} of the native batch (target >= {TARGET_RATIO}); "
            f"by the server's CPU time per entry, {cpu_ratio:.2f}"
        )


def _cpu_us_per_entry(cpu_s: float, run: WrkRun, per_request: int) -> float:
    """The server's CPU time per entry stored in a run (an answer other than 2xx stored nothing)."""
    stored = (run.requests - run.status_errors) * per_request
    return cpu_s * 1e6 / stored if stored else math.inf


def _print(console: Any, round_number: int, label: str, run: WrkRun, per_request: int, cpu_us: float) -> None:
    line = f"  round {round_number}, {label}: {run.ok_per_s * per_request:,.0f} entries/s"
    line += f", p50 {run.p50_ms:.2f} ms, p99 {run.p99_ms:.2f} ms, server CPU {cpu_us:.1f} µs/entry"
    if run.status_errors or run.socket_errors:
        line += f", {run.status_errors} non-2xx, {run.socket_errors} socket errors"
    console.print(line)


def main(argv: list[str] | None = None) -> int:
    """This step alone, printed as the suite prints it; nothing is written to benchmarks/results."""
    from benchmarks.run import PROFILES, Suite, report

    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.shippers", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--quick", action="store_true", help="1 short run of each")
    args = parser.parse_args(argv)
    check_wrk()
    for variable in [variable for variable in os.environ if variable.startswith("LOGSVC_")]:
        del os.environ[variable]
    profile = PROFILES["quick" if args.quick else "full"]
    with tempfile.TemporaryDirectory(prefix="logsvc-bench-") as scratch:
        suite = Suite(profile, Path(scratch))
        suite._step("Shipper protocols, batched", lambda: shipper_ingest(suite))
    report(
        {
            "profile": profile.name,
            "settings": {"runs": profile.runs},
            "ceilings": suite.ceilings,
            "scenarios": suite.scenarios,
            "servers": suite.servers,
            "failures": suite.failures,
        }
    )
    return 1 if suite.failures else 0


if __name__ == "__main__":
    sys.exit(main())
