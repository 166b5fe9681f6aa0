"""``--workers 1`` against ``--workers 2``: single-entry durable ``POST /logs``, of one or more source trees.

    python -m benchmarks.workers [--rounds 3] [--seconds 5] [--workers 1,2] [--src LABEL=PATH ...] [--minimal]
                                 [--schemes api_key,none,sigv4]

Each round starts every variant afresh (a new data directory), in turn, so that the machine's load falls on
all of them alike; the figures are medians over the rounds. Besides wrk's rate and latency it reads what
explains them: the server's CPU per request (each process; its event loop, the main thread, per request, and
its busiest other thread, the store's writer, per entry), wrk's own CPU, group commits per second and entries
per commit (from /metrics, summed over the workers), how wrk's connections are spread over the workers, and
the server's context switches per request (voluntary, and forced: a thread preempted).
With ``--minimal`` each round also serves the same POST from the minimal ASGI app (ceiling A, as ``make
bench`` starts it), and each variant's rate is also given as a ratio to the minimal app's of the same round.
``--schemes``: the credentials each variant sends, in turn as well: ``api_key`` (the default, as ``make
bench``'s single POST), or, as ``make bench``'s authentication scenario sends them (pre-built requests, each
its own body; anonymous requests allowed), ``none`` or ``sigv4``; each such variant's rate and server CPU per
request are also given as a ratio to the ``none`` variant of the same source tree and round.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from benchmarks import dataset
from benchmarks.loadgen import WrkRun, check_wrk, wrk
from benchmarks.processes import (
    HOST,
    ROOT,
    UNTHROTTLED,
    Probe,
    Server,
    admin_credential,
    descendants,
    free_port,
    running,
)
from benchmarks.run import PREBUILT_RATE_HEADROOM, WRK_THREADS, _prebuilt_request
from logsvc.auth.credential_service import NewCredential

_CONNECTIONS = 64
_COMMIT_METRIC = "logsvc_store_write_batch_entries"
_TICK = os.sysconf("SC_CLK_TCK")
_MEDIANS = (
    "rate",
    "p99_ms",
    "cpu_us_per_req",
    "loop_us_per_req",
    "writer_us_per_entry",
    "wrk_cpu",
    "commits_per_s",
    "entries_per_commit",
    "load",
)
_SWITCHES = ("voluntary_per_req", "forced_per_req")


def _cpu_s(pid: int, task: int | None = None) -> float:
    path = f"/proc/{pid}/stat" if task is None else f"/proc/{pid}/task/{task}/stat"
    try:
        fields = Path(path).read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


def _commits(server: Server, key: NewCredential) -> tuple[float, float]:
    """(commits, entries) so far, over every worker (the metrics of several workers go through files)."""
    request = urllib.request.Request(  # noqa: S310 (always http://127.0.0.1)
        server.url + "/metrics", headers={"Authorization": f"Bearer {key.api_key}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (always http://127.0.0.1)
        text = response.read().decode()
    values = {"count": 0.0, "sum": 0.0}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in (f"{_COMMIT_METRIC}_sum", f"{_COMMIT_METRIC}_count"):
            values[name.rpartition("_")[2]] = float(value)
    return values["count"], values["sum"]


def _tasks(pids: list[int]) -> list[tuple[int, int]]:
    """Every thread of these processes, as (pid, thread id)."""
    found = []
    for pid in pids:
        with contextlib.suppress(OSError):
            found += [(pid, int(t.name)) for t in Path(f"/proc/{pid}/task").iterdir()]
    return found


def _switches(tasks: list[tuple[int, int]]) -> dict[tuple[int, int], tuple[int, int]]:
    """Context switches of each of these threads so far: (voluntary, forced)."""
    found = {}
    for pid, task in tasks:
        try:
            text = Path(f"/proc/{pid}/task/{task}/status").read_text()
        except OSError:
            continue
        counts = dict(line.partition(":")[::2] for line in text.splitlines())
        found[(pid, task)] = (
            int(counts["voluntary_ctxt_switches"]),
            int(counts["nonvoluntary_ctxt_switches"]),
        )
    return found


def _threads(tasks: list[tuple[int, int]]) -> dict[tuple[int, int], float]:
    return {(pid, task): _cpu_s(pid, task) for pid, task in tasks}


def _connections_per_pid(pids: list[int], port: int) -> list[int]:
    """How many of the server's established connections each process holds (from /proc, no tools)."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].rpartition(":")[2], 16) == port and fields[3] == "01":
            inodes.add(fields[9])
    counts = []
    for pid in pids:
        try:
            links = [os.readlink(f) for f in Path(f"/proc/{pid}/fd").iterdir()]
        except OSError:
            continue
        held = sum(1 for link in links if link.startswith("socket:[") and link[8:-1] in inodes)
        if held:
            counts.append(held)
    return sorted(counts, reverse=True)


def _prebuilt(scratch: Path, host: str, key: NewCredential, scheme: str, seconds: float) -> Path:
    """Files of raw requests for one wrk run (``prebuilt.lua``), as ``make bench``'s authentication scenario
    makes them."""
    base = scratch / f"requests-{scheme}-{time.monotonic_ns()}.bin"
    counter = 0
    for thread in range(WRK_THREADS):
        with open(f"{base}.{thread}", "wb") as out:
            for _ in range(int(seconds * PREBUILT_RATE_HEADROOM / WRK_THREADS)):
                counter += 1
                out.write(_prebuilt_request(host, key, scheme, f"{base.name}-{counter}") + b"\0")
    return base


def _one(
    label: str, src: str, workers: int, scratch: Path, body: Path, seconds: float, scheme: str = "api_key"
) -> dict[str, Any]:
    name = f"{label}-w{workers}-{scheme}-{time.monotonic_ns()}"
    data_dir = scratch / name
    key = admin_credential(data_dir)
    port = free_port()
    argv = [sys.executable, "-m", "logsvc", "serve", "--data-dir", str(data_dir), "--port", str(port)]
    argv += ["--workers", str(workers), "--log-level", "warning"]
    os.environ["PYTHONPATH"] = src
    if scheme != "api_key":
        os.environ["LOGSVC_ALLOW_ANONYMOUS"] = "true"
    try:
        context = running(name, argv, port, scratch / f"{name}.log", Probe("GET", "/healthz", None, 200))
        with context as server:
            url = server.url + "/logs"
            headers = (f"Authorization: Bearer {key.api_key}",)
            host = server.url.removeprefix("http://")
            # Made before the server is measured: the warm-up's requests and the run's.
            prebuilt = (
                {}
                if scheme == "api_key"
                else {d: _prebuilt(scratch, host, key, scheme, d) for d in (2, seconds)}
            )

            def drive(duration_s: float) -> WrkRun:
                if scheme == "api_key":
                    return wrk(
                        url, connections=_CONNECTIONS, duration_s=duration_s, body=body, headers=headers
                    )
                requests_file = prebuilt[duration_s]
                return wrk(url, connections=_CONNECTIONS, duration_s=duration_s, requests_file=requests_file)

            drive(2)
            pids = [server.process.pid, *descendants(server.process.pid)]
            cpu_before = {pid: _cpu_s(pid) for pid in pids}
            tasks = _tasks(pids)
            threads_before = _threads(tasks)
            switches_before = _switches(tasks)
            commits_before = _commits(server, key)
            children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
            load = os.getloadavg()[0]
            spread: list[int] = []
            # Counted halfway through the run, while wrk's connections are open.
            counter = threading.Timer(seconds / 2, lambda: spread.extend(_connections_per_pid(pids, port)))
            counter.start()
            run = drive(seconds)
            counter.join()
            children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
            commits_after = _commits(server, key)
            cpu = {pid: _cpu_s(pid) - before for pid, before in cpu_before.items()}
            threads = {k: _cpu_s(*k) - before for k, before in threads_before.items()}
            # Of the threads seen at both ends (one that ended meanwhile took its counts with it).
            switches_after = _switches(tasks)
            switched = [
                (after[0] - switches_before[key][0], after[1] - switches_before[key][1])
                for key, after in switches_after.items()
                if key in switches_before
            ]
    finally:
        os.environ.pop("PYTHONPATH", None)
        os.environ.pop("LOGSVC_ALLOW_ANONYMOUS", None)
    requests = run.requests
    commits = commits_after[0] - commits_before[0]
    entries = commits_after[1] - commits_before[1]
    wrk_cpu = (children_after.ru_utime + children_after.ru_stime) - (
        children_before.ru_utime + children_before.ru_stime
    )
    busy = sorted((v for v in cpu.values() if v > 0.05), reverse=True)
    # The main thread runs the event loop; of the others the busiest is the store's writer thread.
    loops = [v for (pid, task), v in threads.items() if pid == task and v > 0.05]
    others = [v for (pid, task), v in threads.items() if pid != task]
    writer_s = sum(sorted(others, reverse=True)[: len(loops)])
    return {
        "variant": f"{label} w{workers}" + ("" if scheme == "api_key" else f" {scheme}"),
        "rate": run.ok_per_s,
        "p99_ms": run.p99_ms,
        "errors": run.status_errors + run.socket_errors,
        "cpu_us_per_req": sum(cpu.values()) / requests * 1e6,
        "cpu_share": [round(v / run.seconds, 2) for v in busy],
        "wrk_cpu": wrk_cpu / run.seconds,
        "loop_us_per_req": sum(loops) / requests * 1e6,
        "writer_us_per_entry": writer_s / entries * 1e6 if entries else 0.0,
        "commits_per_s": commits / run.seconds,
        "entries_per_commit": entries / commits if commits else 0.0,
        "connections": spread,
        "load": load,
        "voluntary_per_req": sum(v for v, _ in switched) / requests,
        "forced_per_req": sum(f for _, f in switched) / requests,
    }


def _minimal(scratch: Path, body: Path, seconds: float) -> dict[str, Any]:
    """Ceiling A in this round: the minimal ASGI app, on uvicorn with logsvc's settings (as ``run.py``)."""
    port = free_port()
    argv = [sys.executable, "-m", "uvicorn", "benchmarks.minimal_app:app", "--host", HOST]
    argv += ["--port", str(port), "--loop", "uvloop", "--http", "httptools"]
    argv += ["--no-access-log", "--no-server-header", "--workers", "1", "--log-level", "warning"]
    probe = Probe("POST", "/", body.read_bytes(), 201)
    with running("minimal-app", argv, port, scratch / "minimal.log", probe) as server:
        url = server.url + "/logs"
        wrk(url, connections=_CONNECTIONS, duration_s=2, body=body)
        cpu_before = server.cpu_seconds()
        load = os.getloadavg()[0]
        run = wrk(url, connections=_CONNECTIONS, duration_s=seconds, body=body)
        cpu = server.cpu_seconds() - cpu_before
    return {
        "variant": "minimal",
        "rate": run.ok_per_s,
        "p99_ms": run.p99_ms,
        "errors": run.status_errors + run.socket_errors,
        "cpu_us_per_req": cpu / run.requests * 1e6,
        "cpu_share": [],
        "wrk_cpu": 0.0,
        "loop_us_per_req": 0.0,
        "writer_us_per_entry": 0.0,
        "commits_per_s": 0.0,
        "entries_per_commit": 0.0,
        "connections": [],
        "load": load,
    }


def _show(row: dict[str, Any]) -> str:
    return (
        f"{row['variant']:<10} {row['rate']:>8,.0f} req/s  p99 {row['p99_ms']:6.1f} ms  "
        f"cpu {row['cpu_us_per_req']:5.0f} µs/req {row['cpu_share']} (loop {row['loop_us_per_req']:.0f}, "
        f"writer {row['writer_us_per_entry']:.0f} µs/entry)  wrk {row['wrk_cpu']:.2f} cores  "
        f"{row['commits_per_s']:6,.0f} commits/s x {row['entries_per_commit']:5.1f}  "
        f"conns {row['connections']}  load {row['load']:.2f}  err {row['errors']}"
        + (
            f"  switches/req {row['voluntary_per_req']:.2f} + {row['forced_per_req']:.2f} forced"
            if "forced_per_req" in row
            else ""
        )
        + (f"  of minimal {row['of_minimal']:.3f}" if "of_minimal" in row else "")
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--workers", default="1,2", help="worker counts, comma-separated")
    parser.add_argument(
        "--src",
        action="append",
        default=[],
        metavar="LABEL=PATH",
        help="a source tree to run (PYTHONPATH); default: this checkout's src",
    )
    parser.add_argument("--minimal", action="store_true", help="serve the minimal ASGI app in each round too")
    parser.add_argument(
        "--schemes", default="api_key", help="credentials sent, comma-separated: api_key, none, sigv4"
    )
    args = parser.parse_args(argv)
    check_wrk()
    sources = [tuple(s.split("=", 1)) for s in args.src] or [("this", str(ROOT / "src"))]
    counts = [int(n) for n in args.workers.split(",")]
    schemes = args.schemes.split(",")
    if not set(schemes) <= {"api_key", "none", "sigv4"}:
        parser.error("--schemes takes api_key, none and sigv4")
    variants = [(label, src, n, scheme) for label, src in sources for n in counts for scheme in schemes]
    if args.minimal:
        variants.append(("minimal", "", 0, ""))
    rows: dict[str, list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="logsvc-workers-") as tmp:
        scratch = Path(tmp)
        os.environ["LOGSVC_CREDENTIALS_FILE"] = str(scratch / "credentials")
        os.environ["LOGSVC_MASTER_KEY_FILE"] = str(scratch / "master.key")
        os.environ.update(UNTHROTTLED)
        body = scratch / "single.json"
        body.write_bytes(dataset.single_entry_body())
        for number in range(args.rounds):
            # Rotate the order so that no variant always runs first (or right after the heaviest).
            shift = number % len(variants)
            done = []
            for label, src, workers, scheme in variants[shift:] + variants[:shift]:
                if label == "minimal":
                    row = _minimal(scratch, body, args.seconds)
                else:
                    row = _one(label, src, workers, scratch, body, args.seconds, scheme)
                    row["label"], row["workers"], row["scheme"] = label, workers, scheme
                rows.setdefault(row["variant"], []).append(row)
                done.append(row)
                print(_show(row), flush=True)
            minimal = [row for row in done if row["variant"] == "minimal"]
            for row in done:
                if minimal and row is not minimal[0]:
                    row["of_minimal"] = row["rate"] / minimal[0]["rate"]
                    print(f"  {row['variant']}: {row['of_minimal']:.3f} of the minimal app", flush=True)
            for row in done:
                base = [
                    other
                    for other in done
                    if other.get("scheme") == "none"
                    and (other["label"], other["workers"]) == (row.get("label"), row.get("workers"))
                ]
                if base and row.get("scheme") not in (None, "none"):
                    row["of_none"] = row["rate"] / base[0]["rate"]
                    row["cpu_over_none"] = row["cpu_us_per_req"] - base[0]["cpu_us_per_req"]
                    print(
                        f"  {row['variant']}: {row['of_none']:.3f} of no credentials by rate, "
                        f"{row['cpu_over_none']:+.1f} µs server CPU a request",
                        flush=True,
                    )
    print("medians:")
    for variant, runs in rows.items():
        median = {key: statistics.median(r[key] for r in runs) for key in _MEDIANS}
        if all("forced_per_req" in r for r in runs):
            median |= {key: statistics.median(r[key] for r in runs) for key in _SWITCHES}
        median |= {"variant": variant, "errors": sum(r["errors"] for r in runs), "cpu_share": []}
        median |= {"connections": []}
        if all("of_minimal" in r for r in runs):
            median["of_minimal"] = statistics.median(r["of_minimal"] for r in runs)
        print(_show(median), flush=True)
        if all("of_none" in r for r in runs):
            of_none = statistics.median(r["of_none"] for r in runs)
            over = statistics.median(r["cpu_over_none"] for r in runs)
            print(
                f"  paired with no credentials, medians: {of_none:.3f} by rate, {over:+.1f} µs CPU a request"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
