"""Running wrk and reading its figures."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

_SCRIPT = Path(__file__).resolve().parent / "wrk" / "report.lua"
_PREBUILT_SCRIPT = Path(__file__).resolve().parent / "wrk" / "prebuilt.lua"
# One per core: wrk's threads compete with the server for the same two cores either way.
WRK_THREADS = 2
# wrk's default of 2 s would count a slow 1,000-entry batch as an error instead of as a slow request.
_REQUEST_TIMEOUT_S = 10


@dataclass(frozen=True)
class WrkRun:
    seconds: float
    requests: int
    # Answers other than 2xx/3xx are completed requests; socket errors and timeouts are not.
    status_errors: int
    socket_errors: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float

    @property
    def ok_per_s(self) -> float:
        """Successful requests per second; an error answer is not counted as work done."""
        return (self.requests - self.status_errors) / self.seconds

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"ok_per_s": round(self.ok_per_s, 1)}


def wrk_version() -> str:
    result = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
    return (result.stdout + result.stderr).splitlines()[0].strip()


def check_wrk() -> None:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed; `make bench` installs it (apt-get install wrk)")


def wrk(
    url: str,
    *,
    connections: int,
    duration_s: float,
    body: Path | None = None,
    headers: Sequence[str] = (),
    requests_file: Path | None = None,
    threads: int = WRK_THREADS,
    script: Path | None = None,
) -> WrkRun:
    """One wrk run: a GET of url, a POST of body's bytes as application/json, or (requests_file) raw
    pre-built requests, each sent once (a signed request cannot be repeated), by ``script`` if given (one
    that reads another file format), else by prebuilt.lua."""
    script = script or (_PREBUILT_SCRIPT if requests_file is not None else _SCRIPT)
    argv = [
        "wrk",
        f"-t{min(threads, connections)}",  # wrk wants a connection for each thread at least
        f"-c{connections}",
        f"-d{duration_s:g}s",
        f"--timeout={_REQUEST_TIMEOUT_S}s",
    ]
    argv += ["--latency", f"-s{script}", *(f"-H{header}" for header in headers), url]
    if requests_file is not None:
        argv += ["--", str(requests_file)]
    elif body is not None:
        argv += ["--", str(body)]
    result = subprocess.run(
        argv, capture_output=True, text=True, timeout=duration_s + 3 * _REQUEST_TIMEOUT_S, check=False
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    if result.returncode != 0 or not lines:
        raise RuntimeError(f"wrk failed ({result.returncode}): {result.stderr.strip() or result.stdout}")
    report = json.loads(lines[-1])
    latency = report["latency_us"]
    return WrkRun(
        seconds=report["duration_us"] / 1e6,
        requests=report["requests"],
        status_errors=report["errors"]["status"],
        socket_errors=sum(report["errors"].values()) - report["errors"]["status"],
        p50_ms=latency["p50"] / 1000,
        p90_ms=latency["p90"] / 1000,
        p99_ms=latency["p99"] / 1000,
        max_ms=latency["max"] / 1000,
    )
