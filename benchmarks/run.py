"""The benchmark suite: ``make bench`` (about 5 minutes) or ``python -m benchmarks.run --quick`` (under 1).

Never run by ``make test``. Every server binds 127.0.0.1 on a free port with its data in a temporary
directory, and is stopped at the end, also on an error or Ctrl-C. Each figure is the median of several
runs, and each is set beside a ceiling measured in the same run, because on a shared two-core machine
absolute numbers move from one run to the next more than ratios do. docs/BENCHMARKS.md explains the figures.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.request
from collections.abc import Callable
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import apsw
from rich.console import Console
from rich.table import Table

import logsvc
from benchmarks import ceilings, dataset, guard, sdk_handler, shippers, tail
from benchmarks import stats as volume
from benchmarks.loadgen import WRK_THREADS, WrkRun, check_wrk, wrk, wrk_version
from benchmarks.processes import HOST, UNTHROTTLED, Probe, Server, admin_credential, free_port, running
from logsvc.auth.credential_service import CredentialService, NewCredential
from logsvc.auth.credentials import AuthStore
from logsvc.auth.policy import Role
from logsvc.auth.sigv4 import SignedRequest, SigV4Verifier, sign
from logsvc.backup import create_backup
from logsvc.crypto import Keyring, key_source, master_key_from
from logsvc.datadir import DataDir
from logsvc.settings import load_settings

_RESULTS_DIR = Path(__file__).resolve().parent / "results"
# Pre-built requests per second of run: well above what one process serves, so a run never runs out.
PREBUILT_RATE_HEADROOM = 12_000
SINGLE_CONNECTIONS = 64
BATCH_CONNECTIONS = 8
BATCH_ENTRIES = 1000
# 16 readers (dashboards, CLIs) and 64: past saturation more connections only queue longer.
READ_CONNECTIONS = (16, 64)
READ_LIMIT = 100
# A histogram of the entries in each store transaction, which logsvc exports at /metrics.
_COMMIT_METRIC = "logsvc_store_write_batch_entries"

# Wide enough for the results table also when the output goes to a file or a pipe (rich's default is 80).
console = Console() if sys.stdout.isatty() else Console(width=150)


@dataclass(frozen=True)
class Profile:
    name: str
    runs: int
    warmup_s: float
    duration_s: float
    store_entries: int
    output: str


PROFILES = {
    "full": Profile("full", runs=3, warmup_s=2, duration_s=5, store_entries=1_000_000, output="latest.json"),
    # Written elsewhere so that a quick check never replaces the committed full results.
    "quick": Profile("quick", runs=1, warmup_s=1, duration_s=2, store_entries=100_000, output="quick.json"),
}


@dataclass(frozen=True)
class Target:
    metric: str  # a key of a scenario's median
    at_least: bool
    value: float

    def judge(self, median: dict[str, float]) -> dict[str, Any]:
        observed = median[self.metric]
        met = observed >= self.value if self.at_least else observed <= self.value
        op = ">=" if self.at_least else "<="
        return {"metric": self.metric, "op": op, "value": self.value, "observed": observed, "met": met}


def _encrypt_in_place(data_dir: Path) -> None:
    """Encrypt a copy of the (plain) cached read store as a first start would have: a new data key,
    wrapped by the benchmark's master key in the data directory's keyring."""
    settings = load_settings(overrides={"data_dir": str(data_dir)})
    master = master_key_from(key_source(settings), data_dir=data_dir.resolve(), create=True)
    data_key = secrets.token_bytes(32)
    conn = apsw.Connection(str(data_dir / "logs.db"))
    try:
        conn.execute("PRAGMA journal_mode=DELETE").fetchall()  # SQLite3MC re-encrypts outside WAL mode only
        conn.execute(f"PRAGMA rekey = \"x'{data_key.hex()}'\"")
    finally:
        conn.close()
    Keyring(DataDir(data_dir).keyring).write(data_key, master)


def _bearer(key: NewCredential) -> dict[str, str]:
    return {"Authorization": f"Bearer {key.api_key}"}


def _header(key: NewCredential) -> tuple[str, ...]:
    return (f"Authorization: Bearer {key.api_key}",)


def _prebuilt_request(host: str, key: NewCredential, scheme: str, unique: str) -> bytes:
    """One raw single-entry POST: without credentials, with the API key, or SigV4-signed."""
    body = json.dumps(
        {"service_name": "bench", "level": "INFO", "message": f"request {unique}", "metadata": {"k": 1}},
        separators=(",", ":"),
    ).encode()
    headers = [("Host", host), ("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    if scheme == "api_key":
        headers.append(("Authorization", f"Bearer {key.api_key}"))
    elif scheme == "sigv4":
        unsigned = SignedRequest("POST", "/logs", "", headers, body)
        headers += sign(unsigned, access_key_id=key.access_key_id, secret_access_key=key.secret_access_key)
    head = "".join(f"{name}: {value}\r\n" for name, value in headers)
    return f"POST /logs HTTP/1.1\r\n{head}\r\n".encode() + body


def auth_costs(samples: int = 5000) -> dict[str, float]:
    """Median microseconds of one SigV4 verification and one API-key check, in this process."""
    with tempfile.TemporaryDirectory() as folder:
        auth = CredentialService(AuthStore(Path(folder) / "auth.db"))
        try:
            key = auth.create(Role.INGEST, actor="benchmark", source="local")
            verifier = SigV4Verifier(auth.secret_for)
            body = dataset.single_entry_body()
            requests = []
            for n in range(samples):
                headers = [("Host", "127.0.0.1:8080"), ("Content-Type", "application/json")]
                unsigned = SignedRequest("POST", "/logs", f"n={n}", headers, body)
                added = sign(
                    unsigned, access_key_id=key.access_key_id, secret_access_key=key.secret_access_key
                )
                requests.append(SignedRequest("POST", "/logs", f"n={n}", [*headers, *added], body))
            sigv4 = []
            for request in requests:
                started = time.perf_counter()
                verifier.verify(request)
                sigv4.append(time.perf_counter() - started)
            api_key = []
            for _ in range(samples):
                started = time.perf_counter()
                auth.check_api_key(key.api_key)
                api_key.append(time.perf_counter() - started)
        finally:
            auth.close()
    return {
        "sigv4_verify_us": round(statistics.median(sigv4) * 1e6, 1),
        "api_key_check_us": round(statistics.median(api_key) * 1e6, 1),
    }


def _print_run(label: str, run: WrkRun, per_request: int, unit: str) -> None:
    line = f"  {label}: {run.ok_per_s * per_request:,.0f} {unit}"
    line += f", p50 {run.p50_ms:.2f} ms, p99 {run.p99_ms:.2f} ms"
    if run.status_errors or run.socket_errors:
        line += f", {run.status_errors} non-2xx, {run.socket_errors} socket errors"
    console.print(line)


def _median_of(runs: list[WrkRun], per_request: int) -> dict[str, float]:
    return {
        "rate": round(statistics.median(r.ok_per_s for r in runs) * per_request, 1),
        "p50_ms": round(statistics.median(r.p50_ms for r in runs), 2),
        "p99_ms": round(statistics.median(r.p99_ms for r in runs), 2),
    }


class Suite:
    def __init__(self, profile: Profile, scratch: Path) -> None:
        self.profile = profile
        self.scratch = scratch
        self.ceilings: dict[str, dict[str, Any]] = {}
        self.scenarios: list[dict[str, Any]] = []
        self.servers: dict[str, dict[str, Any]] = {}
        self.store: dict[str, Any] = {}
        self.failures: list[str] = []
        self.auth_micro: dict[str, float] = {}
        self.sdk_handler: dict[str, Any] = {}
        self.backup_rates: dict[str, Any] = {}
        self.volume: dict[str, Any] = {}
        # Every server here gets its admin credential made beforehand; none may write the user's own file.
        os.environ["LOGSVC_CREDENTIALS_FILE"] = str(scratch / "credentials")
        os.environ["LOGSVC_MASTER_KEY_FILE"] = str(scratch / "master.key")
        os.environ.update(UNTHROTTLED)
        self.single_body = scratch / "single.json"
        self.single_body.write_bytes(dataset.single_entry_body())
        self.batch = dataset.batch_entries(BATCH_ENTRIES)
        self.batch_body = scratch / "batch.json"
        self.batch_body.write_bytes(dataset.batch_body(self.batch))

    # ---- helpers -----------------------------------------------------------------------------------------

    def _step(self, name: str, action: Callable[[], None]) -> None:
        """One group of measurements; a failure is recorded and the others still run."""
        console.rule(name)
        try:
            action()
        except Exception as exc:
            console.print(f"[bold red]{name} failed:[/] {exc}")
            traceback.print_exc()
            self.failures.append(f"{name}: {exc}")

    def _wrk_runs(
        self,
        url: str,
        connections: int,
        body: Path | None,
        per_request: int = 1,
        headers: tuple[str, ...] = (),
    ) -> list[WrkRun]:
        """One warm-up run, discarded (it opens connections and warms caches), then the measured runs."""

        def one(seconds: float) -> WrkRun:
            return wrk(url, connections=connections, duration_s=seconds, body=body, headers=headers)

        one(self.profile.warmup_s)
        unit = "entries/s" if per_request > 1 else "req/s"
        runs = []
        for number in range(1, self.profile.runs + 1):
            run = one(self.profile.duration_s)
            _print_run(f"run {number}", run, per_request, unit)
            runs.append(run)
        return runs

    def _wrk_turns(
        self, variants: dict[str, tuple[str, int, Path | None, tuple[str, ...]]], rounds: int
    ) -> dict[str, list[WrkRun]]:
        """Each variant (url, connections, body, headers) warmed up once, then run once a round, in turns,
        the order reversed every other round."""

        def one(variant: str, seconds: float) -> WrkRun:
            url, connections, body, headers = variants[variant]
            return wrk(url, connections=connections, duration_s=seconds, body=body, headers=headers)

        for variant in variants:
            one(variant, self.profile.warmup_s)
        runs: dict[str, list[WrkRun]] = {variant: [] for variant in variants}
        for number in range(1, rounds + 1):
            order = list(variants) if number % 2 else list(reversed(variants))
            for variant in order:
                run = one(variant, self.profile.duration_s)
                _print_run(f"round {number}, {variant}", run, 1, "req/s")
                runs[variant].append(run)
        return runs

    def _logsvc(self, name: str, data_dir: Path, workers: int) -> AbstractContextManager[Server]:
        port = free_port()
        argv = [sys.executable, "-m", "logsvc", "serve", "--data-dir", str(data_dir), "--port", str(port)]
        argv += ["--workers", str(workers), "--log-level", "warning"]
        return running(name, argv, port, self.scratch / f"{name}.log", Probe("GET", "/healthz", None, 200))

    @staticmethod
    def _entries_per_commit(server: Server, key: NewCredential) -> float | None:
        """The mean group-commit size over the scenario, from the server's metrics: a diagnostic, so None
        rather than a failure when they cannot be read."""
        request = urllib.request.Request(server.url + "/metrics", headers=_bearer(key))  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
                text = response.read().decode()
        except OSError:
            return None
        values = {}
        for line in text.splitlines():
            name, _, value = line.partition(" ")
            if name in (f"{_COMMIT_METRIC}_sum", f"{_COMMIT_METRIC}_count"):
                values[name.rpartition("_")[2]] = float(value)
        if not values.get("count"):
            return None
        mean = values["sum"] / values["count"]
        console.print(f"  {mean:,.1f} entries per store transaction (group commit)")
        return round(mean, 1)

    def _record_server(self, server: Server) -> None:
        rss = server.peak_rss()
        self.servers[server.name] = rss
        console.print(
            f"  peak RSS of {server.name}: {rss['total_mib']:.0f} MiB in {len(rss['processes'])} process(es)"
        )

    def _scenario(
        self,
        key: str,
        label: str,
        title: str,
        runs: list[WrkRun],
        *,
        connections: int,
        server: str,
        per_request: int = 1,
        ceiling: str | None = None,
        targets: tuple[Target, ...] = (),
        extra: dict[str, Any] | None = None,
    ) -> None:
        median = _median_of(runs, per_request)
        record: dict[str, Any] = {
            "key": key,
            "label": label,
            "title": title,
            "unit": "entries/s" if per_request > 1 else "req/s",
            "connections": connections,
            "server": server,
            "median": median,
            "runs": [
                run.as_dict()
                | ({"entries_per_s": round(run.ok_per_s * per_request, 1)} if per_request > 1 else {})
                for run in runs
            ],
            "targets": [target.judge(median) for target in targets],
        }
        if ceiling is not None and ceiling in self.ceilings:
            record["ceiling"] = ceiling
            record["ratio_to_ceiling"] = round(median["rate"] / self.ceilings[ceiling]["median"]["rate"], 3)
        self.scenarios.append(record | (extra or {}))

    # ---- the measurements --------------------------------------------------------------------------------

    def ceiling_a(self) -> None:
        port = free_port()
        argv = [sys.executable, "-m", "uvicorn", "benchmarks.minimal_app:app", "--host", HOST]
        # Exactly the uvicorn settings of logsvc's serve(), so that the app is the only difference.
        argv += ["--port", str(port), "--loop", "uvloop", "--http", "httptools"]
        argv += ["--no-access-log", "--no-server-header"]
        argv += ["--workers", "1", "--log-level", "warning"]
        probe = Probe("POST", "/", self.single_body.read_bytes(), 201)
        with running("minimal-app", argv, port, self.scratch / "minimal.log", probe) as server:
            runs = self._wrk_runs(server.url + "/logs", SINGLE_CONNECTIONS, self.single_body)
            self._record_server(server)
        self.ceilings["A"] = {
            "label": "A: minimal ASGI app",
            "title": "minimal ASGI app on uvicorn (uvloop, httptools, 1 worker), same single-entry POST",
            "unit": "req/s",
            "connections": SINGLE_CONNECTIONS,
            "median": _median_of(runs, 1),
            "runs": [run.as_dict() for run in runs],
        }

    def single_ingest(self) -> None:
        """One worker and two, each on a server of its own, both up and measured in turns (which goes first
        alternates by round), so that the machine's changing load falls on both alike: their ratio is one
        of issue 15's targets, and measured one after the other it moved by a tenth from run to run."""
        with ExitStack() as stack:
            started = []
            for workers in (1, 2):
                name = f"logsvc-ingest-w{workers}"
                key = admin_credential(self.scratch / name)
                server = stack.enter_context(self._logsvc(name, self.scratch / name, workers))
                started.append((workers, name, key, server))
            runs = self._wrk_turns(
                {
                    f"{workers} worker{'s' if workers > 1 else ''}": (
                        server.url + "/logs",
                        SINGLE_CONNECTIONS,
                        self.single_body,
                        _header(key),
                    )
                    for workers, _, key, server in started
                },
                rounds=self.profile.runs + 2,
            )
            measured = []
            for (workers, name, key, server), scenario_runs in zip(started, runs.values(), strict=True):
                measured.append((workers, name, scenario_runs, self._entries_per_commit(server, key)))
                self._record_server(server)
        for workers, name, scenario_runs, per_commit in measured:
            self._scenario(
                f"ingest_single_w{workers}",
                f"POST 1 entry, {workers} worker{'s' if workers > 1 else ''}",
                f"POST /logs, 1 entry, durable, --workers {workers}",
                scenario_runs,
                connections=SINGLE_CONNECTIONS,
                server=name,
                ceiling="A",
                targets=(Target("rate", True, 10_000), Target("p99_ms", False, 25)),
                extra={"entries_per_commit": per_commit},
            )

    def ceiling_b(self) -> None:
        template = ceilings.template_rows(self.batch)
        for key, logsvc_schema, label, title in (
            (
                "B",
                True,
                "B: raw SQLite, logsvc schema",
                "raw apsw executemany, 1,000 rows per durable transaction, logsvc's schema",
            ),
            (
                "B_plain",
                False,
                "B_plain: raw SQLite, plain table",
                "the same into a plain table: no secondary index, no FTS, no trigger",
            ),
        ):
            path = self.scratch / f"ceiling-{key}" / "raw.db"
            path.parent.mkdir()
            rates = ceilings.insert_rates(
                path,
                template,
                logsvc_schema=logsvc_schema,
                warmup_s=self.profile.warmup_s,
                duration_s=self.profile.duration_s,
                runs=self.profile.runs,
            )
            console.print(f"  {key}: " + ", ".join(f"{rate:,.0f}" for rate in rates) + " entries/s")
            self.ceilings[key] = {
                "label": label,
                "title": title,
                "unit": "entries/s",
                "median": {"rate": round(statistics.median(rates), 1)},
                "runs": [round(rate, 1) for rate in rates],
            }

    def batch_ingest(self, *, encrypted: bool = True) -> None:
        name = "logsvc-batch-w1" if encrypted else "logsvc-batch-w1-plain"
        os.environ["LOGSVC_ENCRYPTION"] = "true" if encrypted else "false"
        try:
            self._batch_ingest(name, encrypted)
        finally:
            del os.environ["LOGSVC_ENCRYPTION"]

    def _batch_ingest(self, name: str, encrypted: bool) -> None:
        key = admin_credential(self.scratch / name)
        with self._logsvc(name, self.scratch / name, 1) as server:
            runs = self._wrk_runs(
                server.url + "/logs", BATCH_CONNECTIONS, self.batch_body, BATCH_ENTRIES, headers=_header(key)
            )
            per_commit = self._entries_per_commit(server, key)
            self._record_server(server)
        extra: dict[str, Any] = {
            "entries_per_request": BATCH_ENTRIES,
            "body_bytes": self.batch_body.stat().st_size,
            "entries_per_commit": per_commit,
        }
        if "B_plain" in self.ceilings:
            plain = self.ceilings["B_plain"]["median"]["rate"]
            extra["ratio_to_ceiling_plain"] = round(_median_of(runs, BATCH_ENTRIES)["rate"] / plain, 3)
        if not encrypted:
            self.ceilings["unencrypted"] = {
                "label": "batched ingest, encryption off",
                "title": "the same batched ingest into an unencrypted store",
                "unit": "entries/s",
                "median": _median_of(runs, BATCH_ENTRIES),
            }
        self._scenario(
            "ingest_batch_w1" if encrypted else "ingest_batch_w1_plain",
            f"POST {BATCH_ENTRIES:,} entries, 1 worker" + ("" if encrypted else ", encryption off"),
            f"POST /logs, {BATCH_ENTRIES:,} entries per request, durable, --workers 1",
            runs,
            connections=BATCH_CONNECTIONS,
            server=name,
            per_request=BATCH_ENTRIES,
            ceiling="B",
            targets=(Target("rate", True, 150_000),) if encrypted else (),
            extra=extra,
        )
        if encrypted and "unencrypted" in self.ceilings:
            # The bound: encryption may cost at most 25% of batched ingest throughput.
            scenario = self.scenarios[-1]
            off = self.ceilings["unencrypted"]["median"]["rate"]
            scenario["ratio_to_unencrypted"] = round(scenario["median"]["rate"] / off, 3)
            scenario["targets"].append(Target("rate", True, round(0.75 * off, 1)).judge(scenario["median"]))

    def reads(self) -> None:
        console.print(f"  store of {self.profile.store_entries:,} entries (built once, then cached)")
        cached, self.store = dataset.cached_store(self.profile.store_entries, self.scratch)
        source = (
            "reused from benchmarks/.cache"
            if self.store["cached"]
            else f"built in {self.store['build_seconds']} s"
        )
        console.print(f"  {source}: {self.store['bytes'] / 2**20:,.0f} MiB")
        data_dir = self.scratch / "logsvc-reads"
        data_dir.mkdir()
        # The server opens the store for writing (WAL, checkpoints), so it gets a copy, never the cache.
        shutil.copyfile(cached, data_dir / "logs.db")
        _encrypt_in_place(data_dir)
        key = admin_credential(data_dir)
        common = dataset.COMMON_WORD
        rare = dataset.RARE_WORD
        # The issue sets targets for the unfiltered read and for full-text search; the reads filtered by
        # an index (service, level) are held to the unfiltered read's.
        recent = (Target("rate", True, 5_000), Target("p99_ms", False, 15))
        full_text = (Target("p99_ms", False, 50),)
        cases = [
            ("read_recent", "GET recent", "", recent),
            ("read_service", "GET service_name", "service_name=svc-3&", recent),
            ("read_min_level", "GET min_level=ERROR", "min_level=ERROR&", recent),
            ("read_q_common", f"GET q, common word ({common})", f"q={common}&", full_text),
            ("read_q_rare", f"GET q, rare word ({rare})", f"q={rare}&", full_text),
        ]
        with self._logsvc("logsvc-reads-w1", data_dir, 1) as server:
            for scenario, label, filters, targets in cases:
                query = f"{filters}limit={READ_LIMIT}"
                url = f"{server.url}/logs/recent?{query}"
                console.print(f"  GET /logs/recent?{query}")
                request = urllib.request.Request(url, headers=_bearer(key))  # noqa: S310 (http://127.0.0.1)
                with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
                    returned = json.load(response)["count"]
                for connections in READ_CONNECTIONS:
                    runs = self._wrk_runs(url, connections, None, headers=_header(key))
                    self._scenario(
                        f"{scenario}_c{connections}",
                        f"{label}, {connections} conn.",
                        f"GET /logs/recent?{query}",
                        runs,
                        connections=connections,
                        server=server.name,
                        targets=targets,
                        extra={"entries_returned": returned},
                    )
            self._record_server(server)
        self.backup_rates = self._backup_rates(data_dir)

    def _backup_rates(self, data_dir: Path) -> dict[str, Any]:
        """MB/s of `logsvc backup` (encrypted snapshots, checksums) of the read store, median of the runs."""
        settings = load_settings(overrides={"data_dir": str(data_dir)})
        rates, sizes = [], []
        for number in range(self.profile.runs):
            started = time.perf_counter()
            _, manifest = create_backup(settings, self.scratch / f"backup-{number}")
            seconds = time.perf_counter() - started
            size = sum(f.bytes for f in manifest.files.values())
            rates.append(size / seconds / 1e6)
            sizes.append(size)
            console.print(
                f"  backup {number + 1}: {size / 1e6:,.0f} MB in {seconds:.1f} s = {rates[-1]:.0f} MB/s"
            )
        return {"median_mb_per_s": round(statistics.median(rates), 1), "runs_mb_per_s": rates, "bytes": sizes}

    def auth_cost(self) -> None:
        """Single-entry ingest on one server without credentials (anonymous allowed), with an API key and
        SigV4-signed. All three send pre-built requests with bodies of their own, so that only the
        authentication differs, and they take turns within each round, so that the store's growth and the
        machine's noise fall on all three alike. Plus the cost of one verification in this process."""
        name = "logsvc-auth-w1"
        data_dir = self.scratch / name
        key = admin_credential(data_dir)
        schemes = {"none": "no credentials (anonymous)", "api_key": "API key (Bearer)", "sigv4": "AWS SigV4"}
        runs: dict[str, list[WrkRun]] = {scheme: [] for scheme in schemes}
        os.environ["LOGSVC_ALLOW_ANONYMOUS"] = "true"
        try:
            with self._logsvc(name, data_dir, 1) as server:
                host = server.url.removeprefix("http://")
                for number in range(self.profile.runs + 1):
                    seconds = self.profile.warmup_s if number == 0 else self.profile.duration_s
                    for scheme, label in schemes.items():
                        prebuilt = self._prebuilt_requests(host, key, scheme, number, seconds)
                        run = wrk(
                            server.url + "/logs",
                            connections=SINGLE_CONNECTIONS,
                            duration_s=seconds,
                            requests_file=prebuilt,
                        )
                        if number:  # round 0 warms up
                            rate = f"{run.ok_per_s:,.0f} req/s"
                            console.print(f"  round {number}, {label}: {rate}, p99 {run.p99_ms:.2f} ms")
                            runs[scheme].append(run)
                self._record_server(server)
        finally:
            del os.environ["LOGSVC_ALLOW_ANONYMOUS"]
        self.ceilings["auth_none"] = {
            "label": "no authentication",
            "title": "the same server and request mechanism, anonymous requests",
            "unit": "req/s",
            "median": _median_of(runs["none"], 1),
        }
        # The bound: authentication may cost at most 15% of throughput.
        floor = round(0.85 * self.ceilings["auth_none"]["median"]["rate"], 1)
        for scheme in ("api_key", "sigv4"):
            self._scenario(
                f"ingest_auth_{scheme}",
                f"POST 1 entry, {schemes[scheme]}",
                f"POST /logs, 1 entry, durable, --workers 1, {schemes[scheme]}",
                runs[scheme],
                connections=SINGLE_CONNECTIONS,
                server=name,
                ceiling="auth_none",
                targets=(Target("rate", True, floor),),
            )
        self.auth_micro = auth_costs()
        console.print(
            "  one verification in-process: "
            + ", ".join(f"{name} {value:.1f} µs" for name, value in self.auth_micro.items())
        )

    def sdk_handler_cost(self) -> None:
        """LogHandler's cost on the application's thread, sending to a server of its own."""
        name = "logsvc-sdk-w1"
        data_dir = self.scratch / name
        key = admin_credential(data_dir)
        quick = self.profile.name == "quick"
        with self._logsvc(name, data_dir, 1) as server:
            self.sdk_handler = sdk_handler.measure(
                server.url, key.api_key, calls=20_000 if quick else 50_000, rounds=self.profile.runs + 2
            )
        console.print("  " + sdk_handler.describe(self.sdk_handler))

    def _prebuilt_requests(
        self, host: str, key: NewCredential, scheme: str, number: int, seconds: float
    ) -> Path:
        """Files of raw HTTP requests with bodies of their own (a SigV4 signature may be used once), enough
        for one run at well above the rate seen."""
        per_thread = int(seconds * PREBUILT_RATE_HEADROOM / WRK_THREADS)
        base = self.scratch / f"requests-{scheme}-{number}.bin"
        counter = 0
        for thread in range(WRK_THREADS):
            with open(f"{base}.{thread}", "wb") as out:
                for _ in range(per_thread):
                    counter += 1
                    out.write(_prebuilt_request(host, key, scheme, f"{number}-{counter}") + b"\0")
        return base

    def tail_latency(self) -> None:
        name = "logsvc-tail"
        key = admin_credential(self.scratch / name)
        os.environ["LOGSVC_TAIL_STREAMS_PER_CREDENTIAL"] = str(tail.SUBSCRIBERS)  # one key opens them all
        try:
            with self._logsvc(name, self.scratch / name, 1) as server:
                result = tail.measure(server, key.api_key, seconds=2 * self.profile.duration_s)
                self._record_server(server)
        finally:
            del os.environ["LOGSVC_TAIL_STREAMS_PER_CREDENTIAL"]
        console.print(f"  {result}")
        median = {metric: result[metric] for metric in ("rate", "p50_ms", "p99_ms")}
        self.scenarios.append(
            {
                "key": "tail_latency",
                "label": f"tail, {tail.SUBSCRIBERS} streams",
                "title": f"201 of POST /logs to the event at each of {tail.SUBSCRIBERS} tail streams",
                "unit": "entries/s",
                "connections": tail.SUBSCRIBERS,
                "server": name,
                "median": median,
                "runs": [result],
                "targets": [Target("p99_ms", False, 250).judge(median)],
            }
        )

    def run_all(self) -> None:
        self._step("Ceiling A: minimal ASGI app", self.ceiling_a)
        self._step("Single-entry ingest, 1 and 2 workers in turns", self.single_ingest)
        self._step("Ceiling B: raw SQLite batches", self.ceiling_b)
        self._step("Batched ingest, encryption off", lambda: self.batch_ingest(encrypted=False))
        self._step("Batched ingest", self.batch_ingest)
        self._step("Shipper protocols, batched", lambda: shippers.shipper_ingest(self))
        self._step("Reads", self.reads)
        self._step("Volume over time", lambda: volume.measure(self))
        self._step("Authentication cost", self.auth_cost)
        self._step("Tail latency", self.tail_latency)
        self._step("SDK: LogHandler cost per log call", self.sdk_handler_cost)


def source() -> dict[str, Any]:
    """Which logsvc was measured: where it was imported from (the servers inherit the same sys.path) and,
    in a git checkout, the commit and whether the package had uncommitted changes."""
    package = Path(logsvc.__file__).resolve().parent

    def git(*args: str) -> str | None:
        result = subprocess.run(["git", *args], cwd=package, capture_output=True, text=True, check=False)
        return result.stdout.strip() if result.returncode == 0 else None

    status = git("status", "--porcelain", ".")
    return {
        "logsvc": str(package),
        "version": logsvc.__version__,
        "commit": git("rev-parse", "HEAD"),
        "uncommitted_changes": None if status is None else status != "",
    }


def machine() -> dict[str, Any]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    memory = Path("/proc/meminfo").read_text().splitlines()[0].split()[1]
    versions = {
        name: metadata.version(name) for name in ("uvicorn", "uvloop", "httptools", "starlette", "msgspec")
    }
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(int(memory) / 2**20, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "sqlite": apsw.sqlite_lib_version(),
        "apsw": apsw.apsw_version(),
        "packages": versions,
        "wrk": wrk_version(),
        "load_average_at_start": list(os.getloadavg()),
        "scratch_dir": tempfile.gettempdir(),
    }


def _target_text(target: dict[str, Any]) -> str:
    if target["metric"] == "rate":
        return f"{target['op']} {target['value']:,.0f}/s"
    return f"p99 {target['op']} {target['value']:g} ms"


def report(results: dict[str, Any]) -> None:
    table = Table(
        title=f"logsvc benchmarks ({results['profile']}, median of {results['settings']['runs']} runs)"
    )
    for column in ("scenario", "conns", "rate", "p50 ms", "p99 ms", "ceiling", "ratio", "target", "met"):
        table.add_column(column, justify="left" if column in ("scenario", "target") else "right")
    for ceiling in results["ceilings"].values():
        median = ceiling["median"]
        table.add_row(
            ceiling["label"],
            str(ceiling.get("connections", "")),
            f"{median['rate']:,.0f} {ceiling['unit']}",
            f"{median['p50_ms']:.2f}" if "p50_ms" in median else "",
            f"{median['p99_ms']:.2f}" if "p99_ms" in median else "",
            "",
            "",
            "",
            "",
            style="dim",
        )
    for scenario in results["scenarios"]:
        median = scenario["median"]
        targets = ", ".join(_target_text(t) for t in scenario["targets"])
        met = " / ".join("yes" if t["met"] else "[bold red]NO[/]" for t in scenario["targets"])
        table.add_row(
            scenario["label"],
            str(scenario["connections"]),
            f"{median['rate']:,.0f} {scenario['unit']}",
            f"{median['p50_ms']:.2f}",
            f"{median['p99_ms']:.2f}",
            scenario.get("ceiling", ""),
            f"{scenario['ratio_to_ceiling']:.2f}" if "ratio_to_ceiling" in scenario else "",
            targets,
            met,
        )
    console.print(table)
    rss = Table(title="peak RSS (VmHWM) of each server, all its processes")
    rss.add_column("server")
    rss.add_column("total MiB", justify="right")
    rss.add_column("largest process MiB", justify="right")
    rss.add_column("processes", justify="right")
    for name, figures in results["servers"].items():
        rss.add_row(
            name,
            f"{figures['total_mib']:.0f}",
            f"{figures['max_process_mib']:.0f}",
            str(len(figures["processes"])),
        )
    console.print(rss)
    for failure in results["failures"]:
        console.print(f"[bold red]failed:[/] {failure}")


def warn_regressions(
    found: list[guard.Regression], previous: dict[str, Any] | None, results: dict[str, Any]
) -> None:
    if previous is None:
        console.print("regression guard: no previous results/latest.json to compare with")
        return
    against = f"the full run of {previous.get('machine', {}).get('date', '?')}"
    if not found:
        console.print(f"regression guard: every scenario at or above {guard.FLOOR:g} of {against}")
        return
    console.print(f"[bold yellow]WARNING: {len(found)} scenario(s) below {guard.FLOOR:g} of {against}:[/]")
    for regression in found:
        console.print(f"[bold yellow]  {regression.warning()}[/]")
    ceilings = [
        f"{key} {previous['ceilings'][key]['median']['rate']:,.0f} -> {ceiling['median']['rate']:,.0f}"
        for key, ceiling in results["ceilings"].items()
        if key in previous.get("ceilings", {})
    ]
    if ceilings:
        console.print("  ceilings then -> now (a slower machine moves them too): " + ", ".join(ceilings))
    if results["profile"] != "full":
        console.print(
            "  (a quick run: shorter runs and a smaller store than the full figures it is set beside)"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="1 run of each, short, on a 100k-entry store (for iterating)"
    )
    args = parser.parse_args(argv)
    profile = PROFILES["quick" if args.quick else "full"]
    check_wrk()
    # A SIGTERM unwinds like Ctrl-C does, through every `finally` that stops a server.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    # The servers must run on their defaults, whatever the caller's environment configures.
    for name in [name for name in os.environ if name.startswith("LOGSVC_")]:
        del os.environ[name]
    started = time.monotonic()
    info = machine()
    try:
        with tempfile.TemporaryDirectory(prefix="logsvc-bench-") as scratch:
            suite = Suite(profile, Path(scratch))
            suite.run_all()
    except KeyboardInterrupt:
        console.print("interrupted: every server was stopped, nothing was written")
        return 130
    results = {
        "profile": profile.name,
        "settings": {
            "runs": profile.runs,
            "warmup_s": profile.warmup_s,
            "duration_s": profile.duration_s,
            "store_entries": profile.store_entries,
            "wrk_threads": WRK_THREADS,
        },
        "machine": info | {"load_average_at_end": list(os.getloadavg())},
        "source": source(),
        "elapsed_s": round(time.monotonic() - started, 1),
        "ceilings": suite.ceilings,
        "scenarios": suite.scenarios,
        "servers": suite.servers,
        "read_store": suite.store,
        "auth_costs_us": suite.auth_micro,
        "sdk_handler": suite.sdk_handler,
        "backup": suite.backup_rates,
        "volume": suite.volume,
        "targets_missed": [
            f"{s['key']}: {t['metric']} {t['observed']:g} (target {t['op']} {t['value']:g})"
            for s in suite.scenarios
            for t in s["targets"]
            if not t["met"]
        ]
        + (
            [f"sdk_handler: log_info_us {suite.sdk_handler['log_info_us']:g} (<= {sdk_handler.TARGET_US:g})"]
            if suite.sdk_handler and not suite.sdk_handler["met"]
            else []
        ),
        "failures": suite.failures,
    }
    _RESULTS_DIR.mkdir(exist_ok=True)
    output = _RESULTS_DIR / profile.output
    # The figures to guard against are those of the last full run, read before this run replaces them.
    previous = guard.previous_results(_RESULTS_DIR / PROFILES["full"].output)
    found = guard.regressions(previous, results) if previous is not None else []
    results["regressions"] = [r.warning() for r in found]
    output.write_text(json.dumps(results, indent=2) + "\n")
    report(results)
    warn_regressions(found, previous, results)
    console.print(
        f"written to {output.relative_to(Path.cwd()) if output.is_relative_to(Path.cwd()) else output}"
    )
    console.print(f"took {results['elapsed_s']:.0f} s")
    return 1 if suite.failures else 0


if __name__ == "__main__":
    sys.exit(main())
