"""Server processes under test: start on a free local port, wait until they answer, measure, always stop."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from logsvc.auth.credential_service import CredentialService, NewCredential
from logsvc.auth.credentials import AuthStore
from logsvc.auth.policy import Role
from logsvc.crypto import store_key
from logsvc.settings import load_settings

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
_START_TIMEOUT_S = 60.0
# The per-credential rate limit (default 10,000 requests a second, burst 5,000) raised for the servers under
# test: one API key drives a whole scenario, and a server faster than the limit answers the excess with 429,
# which would measure the limiter's ceiling instead of the server (the single POST of 2026-11-30 05:50: 15%
# of its answers were 429, its rate the limit's 10,000/s). The limiter still runs for every request.
UNTHROTTLED = {"LOGSVC_RATE_LIMIT_PER_SECOND": "1000000", "LOGSVC_RATE_LIMIT_BURST": "1000000"}
_STOP_TIMEOUT_S = 20.0


def admin_credential(data_dir: Path) -> NewCredential:
    """An admin credential in the server's credential store, made before it starts (so it makes none)."""
    settings = load_settings(overrides={"data_dir": str(data_dir)})
    auth = CredentialService(AuthStore(settings.auth_db, key=store_key(settings)))
    try:
        return auth.create(Role.ADMIN, description="benchmark", actor="benchmark", source="local")
    finally:
        auth.close()


def free_port() -> int:
    """A port nobody listens on now; the server binds it a moment later (only a local tool could race)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class Probe:
    """The request that shows a server is ready, and the status it must answer with."""

    method: str
    path: str
    body: bytes | None
    status: int


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def cpu_seconds(self) -> float:
        """The CPU time (user and system) the server and every process below it have used so far: read
        around a run, a measure of its work that a loaded machine skews far less than a rate."""
        ticks = 0
        for pid in [self.process.pid, *descendants(self.process.pid)]:
            try:
                # The fields after the command's closing parenthesis, from the third; utime, stime: 14, 15.
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            ticks += int(fields[11]) + int(fields[12])
        return ticks / os.sysconf("SC_CLK_TCK")

    def peak_rss(self) -> dict[str, Any]:
        """VmHWM of the server and every process below it (uvicorn's workers), read while they still run."""
        processes: list[dict[str, Any]] = []
        peaks: list[float] = []
        for pid in [self.process.pid, *descendants(self.process.pid)]:
            status = _proc_status(pid)
            if "VmHWM" in status:
                peaks.append(int(status["VmHWM"].split()[0]) / 1024)
                processes.append({"pid": pid, "name": status.get("Name", "?"), "vm_hwm_mib": peaks[-1]})
        return {
            "total_mib": round(sum(peaks), 1),
            "max_process_mib": round(max(peaks, default=0.0), 1),
            "processes": processes,
        }


def _proc_status(pid: int) -> dict[str, str]:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {}
    return dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)


def descendants(root: int) -> list[int]:
    """Every process below ``root`` (uvicorn's workers, their helpers), from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            ppid = _proc_status(int(entry.name)).get("PPid")
            if ppid is not None:
                parents[int(entry.name)] = int(ppid)
    found: list[int] = []
    frontier = [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent]
        found += children
        frontier += children
    return found


@contextlib.contextmanager
def running(name: str, argv: Sequence[str], port: int, log_path: Path, probe: Probe) -> Iterator[Server]:
    """The server, started and ready; on leaving (also by an exception or Ctrl-C) it and its workers end."""
    with log_path.open("wb") as log_file:
        # A session of its own lets one signal reach uvicorn's worker processes too, and keeps the
        # terminal's Ctrl-C away from it so that it is stopped here, in order.
        process = subprocess.Popen(
            argv, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file, start_new_session=True
        )
    server = Server(name, process, port, log_path)
    try:
        _wait_ready(server, probe)
        yield server
    finally:
        _stop(process)


def _wait_ready(server: Server, probe: Probe) -> None:
    deadline = time.monotonic() + _START_TIMEOUT_S
    last_error = "no answer"
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(
                f"{server.name} exited with status {server.process.returncode}:\n{server.log_tail()}"
            )
        request = urllib.request.Request(  # noqa: S310 (always http://127.0.0.1)
            server.url + probe.path, data=probe.body, method=probe.method
        )
        request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=2) as response:  # noqa: S310 (always http://127.0.0.1)
                if response.status == probe.status:
                    return
                last_error = f"status {response.status}"
        except urllib.error.HTTPError as exc:
            last_error = f"status {exc.code}"
        except OSError as exc:
            last_error = str(exc)
        time.sleep(0.1)
    raise RuntimeError(
        f"{server.name} was not ready after {_START_TIMEOUT_S:g} s ({last_error}):\n{server.log_tail()}"
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM (a graceful stop: the store commits what it accepted), then SIGKILL if that takes too long."""
    for sig, wait_s in ((signal.SIGTERM, _STOP_TIMEOUT_S), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(wait_s)
        except subprocess.TimeoutExpired:
            print(f"process {process.pid} did not stop on {sig.name}", file=sys.stderr)
        else:
            # Workers may outlive the supervisor by a moment; the group is ours, so make sure it is empty.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            return
