"""The read scenarios of ``make bench`` alone, for two source trees taking turns on the same machine.

``python -m benchmarks.reads_ab --baseline /work/main/src --candidate src`` serves a copy of the cached
1M-entry store (encrypted, as ``make bench`` serves it) from two servers, one running each tree (PYTHONPATH
decides which code a server imports), and measures each read scenario on one, then the other, round after
round, so that the ratio of the two is taken under the same load. Besides wrk's req/s and p99 it reports the
server's CPU time per request (user + system, from /proc), which moves less with the machine's load, and
wrk's, which shares the same cores.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import shutil
import statistics
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from benchmarks import dataset
from benchmarks.loadgen import check_wrk, wrk
from benchmarks.processes import UNTHROTTLED, Probe, Server, admin_credential, free_port, running
from benchmarks.run import READ_LIMIT, _encrypt_in_place, _header

SCENARIOS = {
    "recent": "",
    "service": "service_name=svc-3&",
    "min_level": "min_level=ERROR&",
    "q_common": f"q={dataset.COMMON_WORD}&",
    "q_rare": f"q={dataset.RARE_WORD}&",
}
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _children_cpu_seconds() -> float:
    """User + system time of the ended child processes (each wrk run) so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _cpu_seconds(pid: int) -> float:
    """User + system time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


@contextlib.contextmanager
def _server(name: str, source: Path, data_dir: Path, scratch: Path) -> Iterator[Server]:
    port = free_port()
    argv = [sys.executable, "-m", "logsvc", "serve", "--data-dir", str(data_dir), "--port", str(port)]
    argv += ["--log-level", "warning"]
    inherited = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = str(source)  # the server process inherits it when it starts
    try:
        started = running(name, argv, port, scratch / f"{name}.log", Probe("GET", "/healthz", None, 200))
        with started as server:
            _restore(inherited)
            yield server
    finally:
        _restore(inherited)


def _restore(pythonpath: str | None) -> None:
    if pythonpath is None:
        os.environ.pop("PYTHONPATH", None)
    else:
        os.environ["PYTHONPATH"] = pythonpath


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.reads_ab", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--baseline", type=Path, required=True, help="the src directory of the baseline")
    parser.add_argument("--candidate", type=Path, required=True, help="the src directory of the candidate")
    parser.add_argument("--scenarios", default="recent,min_level,q_common", help=", ".join(SCENARIOS))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--entries", type=int, default=1_000_000)
    args = parser.parse_args(argv)
    check_wrk()
    for name in [name for name in os.environ if name.startswith("LOGSVC_")]:
        del os.environ[name]
    with tempfile.TemporaryDirectory(prefix="logsvc-reads-ab-") as scratch_dir:
        scratch = Path(scratch_dir)
        os.environ["LOGSVC_CREDENTIALS_FILE"] = str(scratch / "credentials")
        os.environ["LOGSVC_MASTER_KEY_FILE"] = str(scratch / "master.key")
        os.environ.update(UNTHROTTLED)
        cached, _ = dataset.cached_store(args.entries, scratch)
        first = scratch / "data-baseline"
        first.mkdir()
        shutil.copyfile(cached, first / "logs.db")
        _encrypt_in_place(first)
        key = admin_credential(first)
        second = scratch / "data-candidate"
        shutil.copytree(first, second)
        sides = {
            "baseline": (args.baseline.resolve(), first),
            "candidate": (args.candidate.resolve(), second),
        }
        with contextlib.ExitStack() as stack:
            servers = {
                side: stack.enter_context(_server(side, source, data, scratch))
                for side, (source, data) in sides.items()
            }
            _measure(servers, args, _header(key))
    return 0


def _measure(servers: dict[str, Server], args: argparse.Namespace, headers: tuple[str, ...]) -> None:
    figures: dict[tuple[str, str], list[tuple[float, float, float, float]]] = {}
    loads = []
    for number in range(args.rounds):
        for scenario in args.scenarios.split(","):
            order = list(servers.items())
            if number % 2:
                order.reverse()
            for side, server in order:
                url = f"{server.url}/logs/recent?{SCENARIOS[scenario]}limit={READ_LIMIT}"
                wrk(url, connections=args.connections, duration_s=1, headers=headers)
                before = _cpu_seconds(server.process.pid)
                wrk_before = _children_cpu_seconds()
                run = wrk(url, connections=args.connections, duration_s=args.duration, headers=headers)
                cpu_us = (_cpu_seconds(server.process.pid) - before) * 1e6 / max(run.requests, 1)
                wrk_us = (_children_cpu_seconds() - wrk_before) * 1e6 / max(run.requests, 1)
                if run.status_errors or run.socket_errors:
                    print(
                        f"  {side} {scenario}: {run.status_errors} non-2xx, {run.socket_errors} socket errors"
                    )
                figures.setdefault((scenario, side), []).append((run.ok_per_s, run.p99_ms, cpu_us, wrk_us))
                loads.append(os.getloadavg()[0])
                print(
                    f"round {number + 1} {scenario:>9} {side:>9}: {run.ok_per_s:7,.0f} req/s, "
                    f"p99 {run.p99_ms:6.2f} ms, {cpu_us:5.0f} µs CPU/req (wrk {wrk_us:3.0f})",
                    flush=True,
                )
    print(
        f"\nmedians of {args.rounds} rounds, {args.connections} connections; load average (1 min) "
        f"{min(loads):.2f}-{max(loads):.2f}, median {statistics.median(loads):.2f}"
    )
    for scenario in args.scenarios.split(","):
        medians = {
            side: [statistics.median(values) for values in zip(*figures[(scenario, side)], strict=True)]
            for side in servers
        }
        base, cand = medians["baseline"], medians["candidate"]
        print(
            f"{scenario:>9}: baseline {base[0]:7,.0f} req/s p99 {base[1]:6.2f} ms {base[2]:5.0f} µs "
            f"(wrk {base[3]:3.0f}) | candidate {cand[0]:7,.0f} req/s p99 {cand[1]:6.2f} ms {cand[2]:5.0f} µs "
            f"(wrk {cand[3]:3.0f}) | "
            f"ratio {cand[0] / base[0]:.2f}, CPU {cand[2] / base[2]:.2f}"
        )


if __name__ == "__main__":
    sys.exit(main())
