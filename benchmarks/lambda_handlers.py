"""The Lambda handlers measured locally: ``python -m benchmarks.lambda_handlers [--quick]`` (in make bench).

1. Cold start: ``import logsvc.aws.handlers`` timed in fresh interpreters (median and p90), beside the bare
   interpreter's start, with the modules that cost most (``-X importtime``); then the first ingest of a fresh
   interpreter, which opens the store (boto3 loads then) and sends one request.
2. Per invocation: the ingest handler (one entry) and the read handler (newest 100 of one service) against
   DynamoDB in moto's server mode, beside the same store calls made directly; the ratio and the difference are
   what the handler adds (event parsing, identity, validation, encoding).

moto runs in its own process on 127.0.0.1. It is a stand-in for DynamoDB: its latency is not DynamoDB's, so
the absolute times say little about AWS; the differences between handler and direct calls are what to read.
Writes ``benchmarks/results/lambda.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Coroutine
from importlib import metadata
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from benchmarks.processes import HOST, Probe, free_port, running
from logsvc.aws.handlers import LambdaApp
from logsvc.domain.queries import parse_query
from logsvc.domain.validation import validate_entries
from logsvc.settings import load_settings
from logsvc.storage.dynamodb_table import create_table

_RESULTS = Path(__file__).resolve().parent / "results" / "lambda.json"
_EVENTS = Path(__file__).resolve().parent.parent / "tests" / "events"
_CALLER = "arn:aws:sts::123456789012:assumed-role/logsvc-bench/bench"
_PRINCIPALS = {"arn:aws:iam::123456789012:role/logsvc-bench": {"role": "admin"}}
_HEAVY = ("apsw", "starlette", "uvicorn", "cryptography", "jwt", "rich", "click", "boto3", "botocore")
console = Console() if sys.stdout.isatty() else Console(width=120)


def _quantiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "median": statistics.median(ordered),
        "p90": ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))],
        "min": ordered[0],
        "runs": len(ordered),
    }


def _fresh_python(code: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120, env=env
    )
    return done.stdout


def import_times(runs: int) -> dict[str, Any]:
    """Milliseconds to import the handlers in a fresh interpreter, and to start one that imports nothing."""
    timed = "import time\nt = time.perf_counter()\nimport logsvc.aws.handlers\nprint(time.perf_counter() - t)"
    imports = [float(_fresh_python(timed)) * 1000 for _ in range(runs)]
    starts = []
    for _ in range(runs):
        began = time.perf_counter()
        _fresh_python("pass")
        starts.append((time.perf_counter() - began) * 1000)
    loaded = json.loads(
        _fresh_python("import json, sys, logsvc.aws.handlers; print(json.dumps(list(sys.modules)))")
    )
    return {
        "import_ms": _quantiles(imports),
        "interpreter_start_ms": _quantiles(starts),
        "modules_loaded": len(loaded),
        "heavy_modules_loaded": sorted({m.split(".")[0] for m in loaded} & set(_HEAVY)),
        "top_imports_ms": _top_imports(),
    }


def _top_imports(count: int = 8) -> list[tuple[str, float]]:
    """Milliseconds of import work per top-level package (self times summed), from ``python -X importtime``;
    the interpreter's own start-up imports (encodings, site, ...) are in it too."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import logsvc.aws.handlers"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    costs: dict[str, float] = {}
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        own, _, name = line[len("import time:") :].split("|")
        package = name.strip().split(".")[0]
        costs[package] = costs.get(package, 0.0) + int(own) / 1000
    return sorted(costs.items(), key=lambda item: -item[1])[:count]


_FIRST_CALL = """
import json, sys, time
t = time.perf_counter()
from logsvc.aws import handlers
event = json.load(open(sys.argv[1]))
answer = handlers.ingest(event, None)
assert answer["statusCode"] == 201, answer
print(time.perf_counter() - t)
"""


def first_invocations(runs: int, store_url: str) -> dict[str, float]:
    """Milliseconds from a fresh interpreter to its first ingest answered: import, settings, store, call."""
    event = _event("rest_v1_iam_ingest", {"service_name": "cold", "message": "first"})
    path = _RESULTS.parent / ".cold-event.json"
    path.write_text(json.dumps(event))
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGSVC_")}
    env |= {"LOGSVC_STORE": store_url, "LOGSVC_AWS_PRINCIPALS": json.dumps(_PRINCIPALS)}
    try:
        samples = [
            float(
                subprocess.run(
                    [sys.executable, "-c", _FIRST_CALL, str(path)],
                    capture_output=True,
                    text=True,
                    check=True,
                    timeout=120,
                    env=env,
                ).stdout
            )
            * 1000
            for _ in range(runs)
        ]
    finally:
        path.unlink(missing_ok=True)
    return _quantiles(samples)


def _event(name: str, body: Any = None, query: str = "") -> dict[str, Any]:
    event: dict[str, Any] = json.loads((_EVENTS / f"{name}.json").read_text())
    event["requestContext"]["identity"]["userArn"] = _CALLER
    if body is not None:
        event["body"] = json.dumps(body)
    if query:
        pairs = [part.split("=", 1) for part in query.split("&")]
        event["multiValueQueryStringParameters"] = {name: [value] for name, value in pairs}
    return event


def _timed(samples: int, call: Callable[[], object]) -> list[float]:
    for _ in range(max(3, samples // 10)):  # warm up: connections, caches
        call()
    out = []
    for _ in range(samples):
        began = time.perf_counter()
        call()
        out.append((time.perf_counter() - began) * 1000)
    return out


def invocations(samples: int, store_url: str) -> dict[str, Any]:
    """Median milliseconds of handler invocations and of the same store calls made directly."""
    settings = load_settings(environ={}, overrides={"store": store_url, "aws_principals": _PRINCIPALS})
    app = LambdaApp(settings)
    loop = asyncio.new_event_loop()
    try:
        service = loop.run_until_complete(app.service())
        store = service.store

        def run(coroutine: Coroutine[Any, Any, object]) -> object:
            return loop.run_until_complete(coroutine)

        seed = [{"service_name": "bench", "message": f"seed {i}", "metadata": {"i": i}} for i in range(300)]
        assert app.ingest(_event("rest_v1_iam_ingest", seed), None)["statusCode"] == 201

        def handler_ingest() -> None:
            entry = {"service_name": "bench", "level": "INFO", "message": "one entry", "metadata": {"k": 1}}
            assert app.ingest(_event("rest_v1_iam_ingest", entry), None)["statusCode"] == 201

        def direct_ingest() -> None:
            doc = {"service_name": "bench", "level": "INFO", "message": "one entry", "metadata": {"k": 1}}
            entries = validate_entries(
                [doc], now_us=time.time_ns() // 1000, limits=settings.limits, batch=False
            )
            run(store.append(entries))

        read_event = _event("rest_v1_iam_recent", query="service_name=bench&limit=100")

        def handler_read() -> None:
            assert app.read(read_event, None)["statusCode"] == 200

        def direct_read() -> None:
            query = parse_query([("service_name", "bench"), ("limit", "100")], now_us=time.time_ns() // 1000)
            run(store.recent(query))

        rows = {}
        for name, handler, direct in (
            ("ingest one entry", handler_ingest, direct_ingest),
            ("recent 100 of one service", handler_read, direct_read),
        ):
            via_handler = statistics.median(_timed(samples, handler))
            via_store = statistics.median(_timed(samples, direct))
            rows[name] = {
                "handler_ms": via_handler,
                "store_ms": via_store,
                "ratio": via_handler / via_store,
                "overhead_ms": via_handler - via_store,
                "samples": samples,
            }
        return rows
    finally:
        loop.close()
        app.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs (about 30 s instead of 2 min)")
    args = parser.parse_args()
    runs, samples = (5, 50) if args.quick else (15, 300)

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "benchmark")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "benchmark")
    results: dict[str, Any] = {
        "when": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "moto": metadata.version("moto"),
        "note": "DynamoDB is moto's server mode on 127.0.0.1, a stand-in: compare handler with direct calls",
    }
    console.print(f"import time: {runs} fresh interpreters ...")
    results["cold_start"] = import_times(runs)

    port = free_port()
    log_path = _RESULTS.parent / ".moto.log"
    argv = [sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(port)]
    with running("moto", argv, port, log_path, Probe("GET", "/moto-api/", None, 200)) as moto:
        store_url = f"dynamodb://bench-{uuid.uuid4().hex[:8]}?region=us-east-1&endpoint={moto.url}&shards=4"
        create_table(store_url)
        console.print(f"first invocation: {runs} fresh interpreters ...")
        results["cold_start"]["first_ingest_ms"] = first_invocations(runs, store_url)
        console.print(f"per invocation: {samples} calls each ...")
        results["per_invocation"] = invocations(samples, store_url)
    log_path.unlink(missing_ok=True)

    _print(results)
    _RESULTS.parent.mkdir(exist_ok=True)
    _RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    console.print(f"written to {_RESULTS}")


def _print(results: dict[str, Any]) -> None:
    cold = results["cold_start"]
    table = Table(title="Lambda cold start (fresh interpreters, this machine)")
    for column in ("measure", "median ms", "p90 ms", "runs"):
        table.add_column(column, justify="left" if column == "measure" else "right")
    for label, key in (
        ("import logsvc.aws.handlers", "import_ms"),
        ("bare interpreter start (python -c pass)", "interpreter_start_ms"),
        ("start + import + first ingest (opens store)", "first_ingest_ms"),
    ):
        q = cold[key]
        table.add_row(label, f"{q['median']:.1f}", f"{q['p90']:.1f}", str(q["runs"]))
    console.print(table)
    tops = ", ".join(f"{name} {ms:.1f}" for name, ms in cold["top_imports_ms"])
    console.print(f"import work by package (ms, self times): {tops}")
    console.print(f"heavy packages loaded by the import: {cold['heavy_modules_loaded'] or 'none'}")

    table = Table(title="Per invocation, warm container, DynamoDB in moto (stand-in)")
    for column in ("operation", "handler ms", "store direct ms", "ratio", "handler adds ms"):
        table.add_column(column, justify="left" if column == "operation" else "right")
    for name, row in results["per_invocation"].items():
        table.add_row(
            name,
            f"{row['handler_ms']:.2f}",
            f"{row['store_ms']:.2f}",
            f"{row['ratio']:.2f}",
            f"{row['overhead_ms']:.2f}",
        )
    console.print(table)


if __name__ == "__main__":
    main()
