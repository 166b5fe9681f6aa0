"""Fixtures that run the real thing: a uvicorn server on 127.0.0.1 with a real SQLite file, or the CLI."""

from __future__ import annotations

import configparser
import contextlib
import fcntl
import logging
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from logsvc.api import create_app
from logsvc.auth.credential_service import NewCredential
from logsvc.auth.open import open_credentials
from logsvc.auth.policy import Role
from logsvc.connection import ServerConfig
from logsvc.crypto import store_key
from logsvc.crypto.sqlite import connect
from logsvc.endpoints import ENDPOINTS
from logsvc.routing import Endpoint
from logsvc.settings import Settings, load_settings, settings_environment


@pytest.fixture(autouse=True)
def _serial(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Under pytest-xdist (pyproject.toml runs the suite in 2 workers), a test marked ``serial`` runs while
    no other test runs: it asserts a latency or lets a timeout run out, which a test busy on the other core
    could stretch. Every other test holds a shared lock, a serial one the exclusive lock; the turnstile lets
    no new shared holder in while a serial test waits, so it is not starved (docs/decisions/0046)."""
    if not hasattr(request.config, "workerinput"):
        yield  # not under xdist: nothing else runs at the same time
        return
    run_dir = tmp_path_factory.getbasetemp().parent  # each worker's base is a folder of this run's base
    serial = request.node.get_closest_marker("serial") is not None
    with (run_dir / "serial.turnstile").open("a") as turnstile, (run_dir / "serial.lock").open("a") as lock:
        fcntl.flock(turnstile, fcntl.LOCK_EX)
        if serial:
            fcntl.flock(lock, fcntl.LOCK_EX)
            fcntl.flock(turnstile, fcntl.LOCK_UN)
        else:
            fcntl.flock(turnstile, fcntl.LOCK_UN)
            fcntl.flock(lock, fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


class Commits(list[int]):
    """A store's ``on_commit`` that keeps how many entries each commit stored, in order."""

    def __call__(self, stored: int, seconds: float) -> None:
        self.append(stored)


def eventually(check: Callable[[], bool], seconds: float = 30.0) -> bool:
    """Whether ``check`` holds by the deadline, polled: generous, as a loaded machine must not fail a test
    (no test waits on a bare sleep)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


def read_service(server: ServerThread, service: str) -> list[dict[str, Any]]:
    """The entries of one service, newest first, as an admin reads them over HTTP."""
    answer = httpx.get(
        f"{server.url}/logs", params={"service_name": service}, headers=bearer(server.admin), timeout=10
    )
    assert answer.status_code == 200, answer.text
    logs: list[dict[str, Any]] = answer.json()["logs"]
    return logs


def make_key(
    settings: Settings, role: Role | tuple[Role, ...], services: tuple[str, ...] = (), **kwargs: Any
) -> NewCredential:
    """A credential in the configured credential store, as `logsvc keys create` makes one; ``role`` is
    one role or a tuple of several."""
    roles = (role,) if isinstance(role, Role) else role
    auth = open_credentials(settings)
    try:
        return auth.create(*roles, services=services, actor="test", source="test", **kwargs)
    finally:
        auth.close()


class ServerThread:
    """The app served by uvicorn in a thread, on a port the OS chose, with an admin credential ready;
    ``loop`` is uvicorn's choice of event loop ("auto": uvloop, as `logsvc serve` runs; or "asyncio")."""

    def __init__(
        self, settings: Settings, *, endpoints: Sequence[Endpoint] = ENDPOINTS, loop: str = "auto"
    ) -> None:
        self.settings = settings
        self.admin = make_key(settings, Role.ADMIN)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        # The connection protocol `logsvc serve` uses, with its limits on request heads.
        config = ServerConfig(
            create_app(settings, endpoints=endpoints),
            max_header_bytes=settings.max_header_bytes,
            header_timeout=settings.header_timeout,
            forwarded_allow_ips=settings.forwarded_allow_ips,
            log_level="warning",
            ws="none",
            lifespan="on",
            timeout_graceful_shutdown=10,
            loop=loop,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def start(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)
        self.sock.close()


def make_settings(data_dir: Path, **overrides: Any) -> Settings:
    defaults = {
        "data_dir": str(data_dir),
        "credentials_file": str(data_dir.parent / f"{data_dir.name}.credentials"),
        "master_key_file": str(data_dir.parent / f"{data_dir.name}.master.key"),
    }
    return load_settings(environ={}, overrides={**defaults, **overrides})


def bearer(credential: NewCredential) -> dict[str, str]:
    return {"Authorization": f"Bearer {credential.api_key}"}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path / "data")


@pytest.fixture
def server(settings: Settings) -> Iterator[ServerThread]:
    running = ServerThread(settings).start()
    yield running
    running.stop()


@pytest.fixture
def client(server: ServerThread) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=10, headers=bearer(server.admin)) as c:
        yield c


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class ServerProcess:
    """``logsvc serve`` as a child process, as an operator runs it."""

    def __init__(self, data_dir: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.args = args
        self.credentials_file = data_dir.parent / f"{data_dir.name}.credentials"
        self.env = (
            {k: v for k, v in os.environ.items() if not k.startswith("LOGSVC_")}
            | {
                "LOGSVC_CREDENTIALS_FILE": str(self.credentials_file),
                "LOGSVC_MASTER_KEY_FILE": str(data_dir.parent / f"{data_dir.name}.master.key"),
            }
            | (env or {})
        )
        self.port = 0
        self.scheme = "http"
        self.verify: ssl.SSLContext | bool = True
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir.parent / f"{data_dir.name}-server.log"

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    @property
    def headers(self) -> dict[str, str]:
        """Bearer authentication with the admin API key the server wrote at first start."""
        profiles = configparser.ConfigParser(interpolation=None)
        profiles.read(self.credentials_file)
        return {"Authorization": f"Bearer {profiles['default']['api_key']}"}

    def start(self, timeout: float = 60, *, port: int | None = None) -> ServerProcess:
        """Start on ``port`` (a restart on the port it had, for clients that hold the URL), or on a free one:
        a port that was free a moment ago can be taken by the time the server binds, so then up to 5 tries."""
        for _ in range(5 if port is None else 1):
            self.port = port or free_port()
            log = self.log_path.open("ab")
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "logsvc",
                    "serve",
                    "--data-dir",
                    str(self.data_dir),
                    "--port",
                    str(self.port),
                    *self.args,
                ],
                stdout=log,
                stderr=log,
                env=self.env,
                # Its own process group, so that kill() reaches the workers of --workers N too.
                start_new_session=True,
            )
            log.close()
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break
                try:
                    if httpx.get(f"{self.url}/healthz", timeout=1, verify=self.verify).status_code == 200:
                        return self
                except httpx.TransportError:
                    time.sleep(0.05)
            self.kill()
        raise RuntimeError(f"logsvc serve did not start; log:\n{self.log_path.read_text()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL to the whole process group: the server and any worker processes it started."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def terminate(self, timeout: float = 30) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs of 3 MB (root only; the test is skipped, saying why, elsewhere)."""
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount_point)], capture_output=True, check=False
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {mounted.stderr.decode().strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=False)


@pytest.fixture
def server_process(tmp_path: Path) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path / "data")
    yield proc
    proc.kill()


def logsvc_environment(settings: Settings) -> dict[str, str]:
    """The environment that configures the ``logsvc`` command with exactly these settings."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("LOGSVC_")}
    return environ | {k: v for k, v in settings_environment(settings).items() if k != "LOGSVC_PORT"}


def run_logsvc(settings: Settings, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """The ``logsvc`` command, configured by exactly these settings (through LOGSVC_* variables); ``stdin``
    is piped in when given."""
    return subprocess.run(
        [sys.executable, "-m", "logsvc", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=logsvc_environment(settings),
        input=stdin,
        check=False,
    )


def stored_ids(data_dir: Path, settings: Settings) -> set[str]:
    """The log ids in a store's file, after SQLite's integrity check passed."""
    conn = connect(data_dir / "logs.db", store_key(settings))
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        return {str(uuid.UUID(bytes=row[0])) for row in conn.execute("SELECT log_id FROM logs")}
    finally:
        conn.close()


class _OneRequestAtATime:
    """A WSGI app that serves one request at a time.

    moto's server mode serves each request on a thread of its own, and its TransactWriteItems is neither
    atomic nor isolated: it checks a condition, then writes, and a cancelled transaction puts back a copy of
    the whole table taken when it began, undoing what another transaction committed meanwhile. DynamoDB's
    transactions are serializable, and the product relies on that (the first admin is decided by one
    conditional write); under load, moto made two first admins, or lost the one it had stored. One request
    at a time makes every moto operation atomic and isolated, as DynamoDB's are."""

    def __init__(self, app: Callable[..., Any]) -> None:
        self._app = app
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        with self._lock:
            answer = self._app(environ, start_response)
            try:
                return [b"".join(answer)]
            finally:
                if hasattr(answer, "close"):
                    answer.close()


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """moto's server mode on 127.0.0.1: a stand-in for DynamoDB (and KMS), not AWS itself; it serves one
    request at a time (``_OneRequestAtATime``)."""
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    app = _OneRequestAtATime(DomainDispatcherApplication(create_backend_app))
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=MotoRequestHandler)
    thread = threading.Thread(target=server.serve_forever, name="moto", daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join()


@pytest.fixture
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.fixture
def dynamodb_url(moto_endpoint: str, aws_credentials: None) -> str:
    """A URL of a new, empty table with 4 shards in moto's DynamoDB."""
    from logsvc.storage.dynamodb_table import create_table

    url = f"dynamodb://logs-{uuid.uuid4().hex[:12]}?region=us-east-1&endpoint={moto_endpoint}&shards=4"
    create_table(url)
    return url
