"""Batched ingest through the shippers' protocols, beside the native batch: OTLP/HTTP protobuf
(``POST /v1/logs``) and Loki's push, protobuf with snappy (``POST /loki/api/v1/push``), each carrying the
native batch scenario's 1,000 entries per request. Run by ``make bench`` (a step of benchmarks/run.py), or
alone: ``python -m benchmarks.shippers [--quick]``.

The three take turns on one server, round after round, so that the store's growth and the machine's noise
fall on all three alike; each protocol's rate is reported as entries/s and as a ratio to the native batch of
the same rounds (the issue's target: at least 0.8).

A shipper's entries carry ids made from their content (a retry stores nothing twice), so a request sent
again would store nothing and look fast: every request is different (a resource attribute or a label holds
its number) and is sent once, pre-built for each run (benchmarks/wrk/binary.lua; when a run outlasts them
the rest are answered 404 and not counted).
"""

from __future__ import annotations

import argparse
import math
import os
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
from logsvc.auth.credential_service import NewCredential
from logsvc.domain.entries import Level
from logsvc.domain.loki_proto import push_request

if TYPE_CHECKING:
    from benchmarks.run import Suite

_BINARY_SCRIPT = Path(__file__).resolve().parent / "wrk" / "binary.lua"
# Requests per second each run is built for: above what one process ingests (250,000 entries/s).
REQUESTS_PER_S_HEADROOM = 250
# What each request's entries share, made unique per request: a resource attribute (OTLP), a label (Loki).
_PLACEHOLDER = b"BATCH-000000"
TARGET_RATIO = 0.8


def _numbered(template: bytes, number: int) -> bytes:
    return template.replace(_PLACEHOLDER, f"BATCH-{number:06d}".encode())


def otlp_template(entries: list[dict[str, Any]], now_ns: int) -> bytes:
    """The entries as one ExportLogsServiceRequest: a resource per service, as the Collector batches them."""
    request = ExportLogsServiceRequest()
    by_service: dict[str, ResourceLogs] = {}
    for offset, entry in enumerate(entries):
        resource_logs = by_service.get(entry["service_name"])
        if resource_logs is None:
            resource_logs = by_service[entry["service_name"]] = request.resource_logs.add()
            resource_logs.resource.attributes.extend(
                [
                    KeyValue(key="service.name", value=AnyValue(string_value=entry["service_name"])),
                    KeyValue(key="bench.batch", value=AnyValue(string_value=_PLACEHOLDER.decode())),
                ]
            )
            resource_logs.scope_logs.add().scope.name = "bench"
        record = LogRecord(
            time_unix_nano=now_ns + offset * 1000,
            severity_number=Level[entry["level"]].value,
            body=AnyValue(string_value=entry["message"]),
        )
        for key, value in entry["metadata"].items():
            kind = "int_value" if isinstance(value, int) else "string_value"
            record.attributes.add(key=key, value=AnyValue(**{kind: value}))
        resource_logs.scope_logs[0].log_records.append(record)
    return bytes(request.SerializeToString())


def loki_template(entries: list[dict[str, Any]], now_ns: int) -> bytes:
    """The entries as one PushRequest, uncompressed: a stream per service, the level in a logfmt line and
    the metadata as structured metadata, as Promtail sends an application's logfmt lines."""
    request = push_request()()
    by_service: dict[str, Any] = {}
    for offset, entry in enumerate(entries):
        stream = by_service.get(entry["service_name"])
        if stream is None:
            labels = f'{{service_name="{entry["service_name"]}", batch="{_PLACEHOLDER.decode()}"}}'
            stream = by_service[entry["service_name"]] = request.streams.add(labels=labels)
        line = f"level={entry['level'].lower()} {entry['message']}"
        pushed = stream.entries.add(line=line)
        pushed.timestamp.seconds, pushed.timestamp.nanos = divmod(now_ns + offset * 1000, 1_000_000_000)
        for key, value in entry["metadata"].items():
            pushed.structuredMetadata.add(name=key, value=str(value))
    return bytes(request.SerializeToString())


class Protocol:
    """One protocol's requests: its path, media type, and how a numbered body is made from the template."""

    def __init__(
        self, key: str, label: str, path: str, media_type: str, encode: Callable[[bytes], bytes]
    ) -> None:
        self.key, self.label, self.path, self.media_type, self.encode = key, label, path, media_type, encode


PROTOCOLS = (
    Protocol("otlp", "OTLP/HTTP protobuf", "/v1/logs", "application/x-protobuf", lambda body: body),
    Protocol(
        "loki",
        "Loki push, protobuf + snappy",
        "/loki/api/v1/push",
        "application/x-protobuf",
        lambda body: bytes(cramjam.snappy.compress_raw(body)),
    ),
)


def _write_requests(
    base: Path, protocol: Protocol, template: bytes, host: str, key: NewCredential, count: int, first: int
) -> int:
    """``count`` numbered requests split over the wrk threads' files; the body size of the first."""
    per_thread = math.ceil(count / WRK_THREADS)
    number = first
    size = 0
    for thread in range(WRK_THREADS):
        with open(f"{base}.{thread}", "wb") as out:
            for _ in range(per_thread):
                body = protocol.encode(_numbered(template, number))
                size = size or len(body)
                number += 1
                head = (
                    f"POST {protocol.path} HTTP/1.1\r\nHost: {host}\r\n"
                    f"Authorization: Bearer {key.api_key}\r\nContent-Type: {protocol.media_type}\r\n"
                    f"Content-Length: {len(body)}\r\n\r\n"
                ).encode()
                out.write(f"{len(head) + len(body)}\n".encode() + head + body)
    return size


def shipper_ingest(suite: Suite) -> None:
    """The step of the suite: native batch, OTLP and Loki in turns on one server, then their scenarios."""
    from benchmarks.run import BATCH_CONNECTIONS, BATCH_ENTRIES, Target, _header, _median_of, console

    name = "logsvc-shippers-w1"
    data_dir = suite.scratch / name
    key = suite._admin(data_dir)
    runs: dict[str, list[WrkRun]] = {"native": [], **{p.key: [] for p in PROTOCOLS}}
    sizes = {"native": suite.batch_body.stat().st_size}
    number = 0
    with suite._logsvc(name, data_dir, 1) as server:
        host = server.url.removeprefix("http://")
        for round_number in range(suite.profile.runs + 1):
            seconds = suite.profile.warmup_s if round_number == 0 else suite.profile.duration_s
            run = wrk(
                server.url + "/logs",
                connections=BATCH_CONNECTIONS,
                duration_s=seconds,
                body=suite.batch_body,
                headers=_header(key),
            )
            if round_number:  # round 0 warms up
                runs["native"].append(run)
                _print(console, round_number, "native batch (JSON)", run, BATCH_ENTRIES)
            for protocol in PROTOCOLS:
                count = math.ceil(seconds * REQUESTS_PER_S_HEADROOM)
                base = suite.scratch / f"{protocol.key}-{round_number}.bin"
                now_ns = time.time_ns()
                template = (otlp_template if protocol.key == "otlp" else loki_template)(suite.batch, now_ns)
                sizes[protocol.key] = _write_requests(base, protocol, template, host, key, count, number)
                number += count
                run = wrk(
                    server.url + protocol.path,
                    connections=BATCH_CONNECTIONS,
                    duration_s=seconds,
                    requests_file=base,
                    script=_BINARY_SCRIPT,
                )
                for thread in range(WRK_THREADS):
                    Path(f"{base}.{thread}").unlink()
                if round_number:
                    runs[protocol.key].append(run)
                    _print(console, round_number, protocol.label, run, BATCH_ENTRIES)
        suite._record_server(server)
    native = _median_of(runs["native"], BATCH_ENTRIES)
    suite.ceilings["native_batch"] = {
        "label": "native batch, same rounds",
        "title": f"POST /logs, {BATCH_ENTRIES:,} entries per request (JSON), in turns with the protocols",
        "unit": "entries/s",
        "connections": BATCH_CONNECTIONS,
        "median": native,
        "body_bytes": sizes["native"],
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
            extra={"entries_per_request": BATCH_ENTRIES, "body_bytes": sizes[protocol.key]},
        )
        ratio = suite.scenarios[-1]["ratio_to_ceiling"]
        console.print(f"  {protocol.label}: {ratio:.2f} of the native batch (target >= {TARGET_RATIO})")


def _print(console: Any, round_number: int, label: str, run: WrkRun, per_request: int) -> None:
    line = f"  round {round_number}, {label}: {run.ok_per_s * per_request:,.0f} entries/s"
    line += f", p50 {run.p50_ms:.2f} ms, p99 {run.p99_ms:.2f} ms"
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
