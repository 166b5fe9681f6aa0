"""Where the GIL time of each issue-15 scenario goes: py-spy ``--gil`` under wrk, per scenario.

    python -m benchmarks.profile_scenarios [--seconds 8] [--scenarios post,sigv4,workers2,recent,q_common]
                                           [--entries 1000000] [--keep DIR]

For each scenario a fresh server (``python -m logsvc serve``, the code on ``PYTHONPATH``) is loaded by wrk as
``make bench`` loads it, and py-spy (``pip install py-spy``; not a project dependency) samples, for the same
seconds, the thread holding the GIL (``--gil``, 200 samples a second, every worker with ``--subprocesses``).
Each sample is given to one share by its stack (the first rule in ``_SHARES`` that one of its frames meets,
from the innermost frame out), and the GIL time per request is the sampled GIL time over the requests wrk
completed meanwhile. Every server is stopped when its scenario ends (also on an error or Ctrl-C); py-spy and
wrk stop by themselves after ``--seconds``. ``--keep`` keeps the raw profiles (``py-spy -f raw``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from benchmarks import dataset
from benchmarks.loadgen import WrkRun, check_wrk, wrk
from benchmarks.processes import UNTHROTTLED, Probe, Server, admin_credential, free_port, running
from benchmarks.run import (
    PREBUILT_RATE_HEADROOM,
    READ_LIMIT,
    SINGLE_CONNECTIONS,
    WRK_THREADS,
    _encrypt_in_place,
    _header,
    _prebuilt_request,
)
from logsvc.auth.credential_service import NewCredential

_RATE_HZ = 200
_PY_SPY = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
# (share, what a frame's text contains): the first rule any frame of a sample meets, innermost frame first.
_SHARES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("writer thread", ("_write_loop (",)),
    ("metrics", ("prometheus_client", "logsvc/api/metrics.py")),
    ("auth", ("logsvc/auth/",)),
    ("decode/validate", ("logsvc/domain/", "logsvc/content.py", "msgspec", "uuid")),
    ("read/encode", ("logsvc/storage/sqlite_reads", "logsvc/storage/encoded", "logsvc/storage/pages")),
    ("store hand-off", ("logsvc/storage/", "logsvc/service.py")),
    ("socket write", ("_HeadHeld.write", "_HeadHeld.close", "StreamingResponse")),
    ("uvicorn protocol", ("uvicorn/", "httptools", "logsvc/connection.py")),
    ("routing/HTTP layer", ("logsvc/", "starlette/")),
)
_OTHER = "event loop, other"
SCENARIOS = ("post", "sigv4", "workers2", "recent", "q_common")


@dataclass(frozen=True)
class Profile:
    scenario: str
    run: WrkRun
    samples: int
    shares: dict[str, int]
    load: float

    @property
    def gil_us_per_request(self) -> float:
        return self.samples / _RATE_HZ / max(self.run.requests, 1) * 1e6


def share_of(stack: str) -> str:
    """The share a raw py-spy stack (``outer;...;inner``, frames as ``function (file:line)``) belongs to."""
    frames = stack.split(";")
    for frame in reversed(frames):
        for share, marks in _SHARES:
            if share == "writer thread":
                continue
            if any(mark in frame for mark in marks):
                return share
    return _OTHER


def parse_raw(text: str) -> Counter[str]:
    """Samples per share of a ``py-spy record -f raw`` file (``stack count`` lines)."""
    shares: Counter[str] = Counter()
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        writer = any(mark in stack for mark in _SHARES[0][1])
        shares["writer thread" if writer else share_of(stack)] += int(count)
    return shares


def _profile(server: Server, seconds: float, out: Path, subprocesses: bool) -> subprocess.Popen[bytes]:
    argv = [_PY_SPY, "record", "-p", str(server.process.pid), "-d", f"{seconds:g}", "-r", str(_RATE_HZ)]
    argv += ["--gil", "-f", "raw", "-o", str(out), "--nonblocking"]
    if subprocesses:
        argv.append("--subprocesses")
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@contextlib.contextmanager
def _server(scratch: Path, name: str, data_dir: Path, workers: int) -> Iterator[Server]:
    port = free_port()
    argv = [sys.executable, "-m", "logsvc", "serve", "--data-dir", str(data_dir), "--port", str(port)]
    argv += ["--workers", str(workers), "--log-level", "warning"]
    with running(name, argv, port, scratch / f"{name}.log", Probe("GET", "/healthz", None, 200)) as server:
        yield server


@dataclass(frozen=True)
class Load:
    """What wrk sends: a GET of ``path``, a POST of ``body``, or pre-built requests."""

    path: str
    connections: int
    body: Path | None = None
    headers: tuple[str, ...] = ()
    requests_file: Path | None = None

    def run(self, server: Server, seconds: float) -> WrkRun:
        return wrk(
            server.url + self.path,
            connections=self.connections,
            duration_s=seconds,
            body=self.body,
            headers=self.headers,
            requests_file=self.requests_file,
        )


def _measure(scenario: str, server: Server, load: Load, seconds: float, out: Path, workers: int) -> Profile:
    load.run(server, 1)  # warm-up, and every worker is up before py-spy looks for them
    found: list[WrkRun] = []
    thread = threading.Thread(target=lambda: found.append(load.run(server, seconds)))
    thread.start()
    spy = _profile(server, seconds, out, workers > 1)
    try:
        spy.wait(seconds + 60)
    finally:
        if spy.poll() is None:
            spy.kill()
            spy.wait()
        thread.join()
    shares = parse_raw(out.read_text()) if out.exists() else Counter()
    return Profile(scenario, found[0], sum(shares.values()), dict(shares), os.getloadavg()[0])


def _prebuilt(scratch: Path, host: str, key: NewCredential, seconds: float) -> Path:
    base = scratch / "sigv4.bin"
    per_thread = int((seconds + 1) * PREBUILT_RATE_HEADROOM / WRK_THREADS)
    counter = 0
    for thread in range(WRK_THREADS):
        with open(f"{base}.{thread}", "wb") as out:
            for _ in range(per_thread):
                counter += 1
                out.write(_prebuilt_request(host, key, "sigv4", f"p-{counter}") + b"\0")
    return base


def run(
    scenarios: list[str], seconds: float, entries: int, scratch: Path, keep: Path | None
) -> list[Profile]:
    os.environ["LOGSVC_CREDENTIALS_FILE"] = str(scratch / "credentials")
    os.environ["LOGSVC_MASTER_KEY_FILE"] = str(scratch / "master.key")
    os.environ.update(UNTHROTTLED)
    body = scratch / "single.json"
    body.write_bytes(dataset.single_entry_body())
    profiles = []
    for scenario in scenarios:
        out = (keep or scratch) / f"{scenario}.raw"
        data_dir = scratch / scenario
        if scenario in ("recent", "q_common"):
            cached, _ = dataset.cached_store(entries, scratch)
            data_dir.mkdir()
            shutil.copyfile(cached, data_dir / "logs.db")
            _encrypt_in_place(data_dir)
        key = admin_credential(data_dir)
        workers = 2 if scenario == "workers2" else 1
        with _server(scratch, scenario, data_dir, workers) as server:
            if scenario in ("post", "workers2"):
                load = Load("/logs", SINGLE_CONNECTIONS, body=body, headers=_header(key))
            elif scenario == "sigv4":
                prebuilt = _prebuilt(scratch, server.url.removeprefix("http://"), key, seconds)
                load = Load("/logs", SINGLE_CONNECTIONS, requests_file=prebuilt)
            else:
                query = f"q={dataset.COMMON_WORD}&" if scenario == "q_common" else ""
                load = Load(f"/logs/recent?{query}limit={READ_LIMIT}", 16, headers=_header(key))
            profile = _measure(scenario, server, load, seconds, out, workers)
        profiles.append(profile)
        print(describe(profile), flush=True)
    return profiles


def describe(profile: Profile) -> str:
    total = max(profile.samples, 1)
    top = sorted(profile.shares.items(), key=lambda item: -item[1])
    parts = ", ".join(f"{share} {count / total:.0%}" for share, count in top if count / total >= 0.01)
    return (
        f"{profile.scenario}: {profile.run.ok_per_s:,.0f} req/s, p99 {profile.run.p99_ms:.1f} ms, "
        f"GIL {profile.gil_us_per_request:.0f} µs/request ({profile.samples} samples), load "
        f"{profile.load:.2f}: {parts}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.profile_scenarios", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help=", ".join(SCENARIOS))
    parser.add_argument("--entries", type=int, default=1_000_000, help="entries of the read store")
    parser.add_argument("--keep", type=Path, help="a directory to keep the raw profiles in")
    args = parser.parse_args(argv)
    check_wrk()
    if not Path(_PY_SPY).exists():
        raise SystemExit("py-spy is not installed (pip install py-spy; it is not a project dependency)")
    for name in [name for name in os.environ if name.startswith("LOGSVC_")]:
        del os.environ[name]
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="logsvc-profile-") as scratch:
        run(args.scenarios.split(","), args.seconds, args.entries, Path(scratch), args.keep)
    return 0


if __name__ == "__main__":
    sys.exit(main())
