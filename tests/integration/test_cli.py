"""``logsvc`` as an operator runs it: a real process, real signals, real files."""

from __future__ import annotations

import configparser
import json
import os
import re
import signal
import stat
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from logsvc.cli import main
from logsvc.crypto import store_key
from logsvc.crypto.sqlite import connect
from tests.conftest import ServerProcess, eventually, make_settings


@pytest.fixture(autouse=True)
def _config_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The master key and the credentials file a command makes go to a temporary config directory."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))


def logsvc(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "logsvc", *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_help_and_version() -> None:
    result = logsvc("--help")
    assert result.returncode == 0
    assert "serve" in result.stdout
    serve_help = logsvc("serve", "--help")
    assert serve_help.returncode == 0
    for flag in ("--host", "--port", "--data-dir", "--store", "--workers", "--config"):
        assert flag in serve_help.stdout
    assert logsvc("--version").stdout.startswith("logsvc, version ")


def test_help_lists_exactly_the_commands_that_exist() -> None:
    """Every command --help names runs (its own --help answers), and every command is named: nothing is
    promised that is not there, such as a tail command before it exists."""
    listed = re.search(r"^Commands:\n((?:  .*\n?)+)", logsvc("--help").stdout, re.MULTILINE)
    assert listed is not None
    names = {line.split()[0] for line in listed.group(1).splitlines() if line.strip()}
    assert names == set(main.commands)
    for name in names:  # in this process: a process each would only repeat the start measured above
        result = CliRunner().invoke(main, [name, "--help"])
        assert result.exit_code == 0, (name, result.output)
        assert result.output.startswith(f"Usage: main {name} "), name


def test_bad_settings_stop_start_up_with_a_clear_message(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("port = 'eighty'\n")
    result = logsvc("serve", "--config", str(config))
    assert result.returncode == 2
    assert "invalid setting" in result.stderr
    assert "port" in result.stderr
    assert "Traceback" not in result.stderr

    blocked = tmp_path / "file-not-dir"
    blocked.write_text("")
    result = logsvc("serve", "--data-dir", str(blocked / "data"), "--port", "0")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert str(blocked) in result.stderr


def test_serve_logs_json_without_secrets(server_process: ServerProcess) -> None:
    server_process.start()
    response = httpx.post(
        f"{server_process.url}/logs",
        json={"message": "hello from the cli test"},
        headers=server_process.headers,
    )
    assert response.status_code == 201
    assert server_process.terminate() == -signal.SIGTERM  # uvicorn re-raises the signal once shut down
    # Besides JSON log lines, stderr holds the first-start notice meant for the operator's terminal.
    lines = [
        json.loads(line) for line in server_process.log_path.read_text().splitlines() if line.startswith("{")
    ]
    assert lines[-1]["message"].startswith("Finished server process")
    assert all("lsk_" not in line["message"] for line in lines), "a secret reached the log"
    assert all({"time", "level", "logger", "message"} <= line.keys() for line in lines)


def test_sigterm_acknowledges_only_what_it_stored(server_process: ServerProcess) -> None:
    """Shut down while clients write: every 201 is durable; later writes are refused, not lost."""
    server_process.start()
    acked: list[bytes] = []
    stop = threading.Event()

    def write(seed: int) -> None:
        with httpx.Client(base_url=server_process.url, timeout=10, headers=server_process.headers) as client:
            while not stop.is_set():
                log_id = uuid.uuid4()
                try:
                    response = client.post("/logs", json={"log_id": str(log_id), "message": f"m{seed}"})
                except httpx.TransportError:
                    return
                if response.status_code == 201:
                    acked.append(log_id.bytes)

    writers = [threading.Thread(target=write, args=(n,)) for n in range(8)]
    for thread in writers:
        thread.start()
    # Signal once writes are flowing, however slow the machine: a wait on the count, not on a clock.
    assert eventually(lambda: len(acked) > 50)
    assert server_process.proc is not None
    server_process.proc.send_signal(signal.SIGTERM)
    assert server_process.proc.wait(timeout=30) == -signal.SIGTERM
    stop.set()
    for thread in writers:
        thread.join(timeout=30)
    assert len(acked) > 50
    conn = connect(server_process.data_dir / "logs.db", store_key(make_settings(server_process.data_dir)))
    stored = {row[0] for row in conn.execute("SELECT log_id FROM logs")}
    assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    assert set(acked) <= stored


def test_several_workers_share_one_store_and_one_metrics_view(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", "--workers", "2")
    try:
        server.start()
        with httpx.Client(base_url=server.url, timeout=10, headers=server.headers) as client:
            for i in range(40):  # new connections, so the kernel spreads them over both workers
                response = httpx.post(
                    f"{server.url}/logs", json={"message": f"worker test {i}"}, headers=server.headers
                )
                assert response.status_code == 201
            assert client.get("/logs/recent", params={"limit": 100}).json()["count"] == 40
            # Another worker's counts reach a scrape within a second (each writes them every second).
            assert eventually(lambda: "logsvc_entries_ingested_total 40.0" in client.get("/metrics").text)
    finally:
        server.kill()


def test_first_start_creates_an_admin_and_a_private_credentials_file(server_process: ServerProcess) -> None:
    server_process.start()
    assert stat.S_IMODE(server_process.credentials_file.stat().st_mode) == 0o600
    profiles = configparser.ConfigParser(interpolation=None)
    profiles.read(server_process.credentials_file)
    default = profiles["default"]
    assert default["endpoint"] == server_process.url
    assert default["api_key"].startswith("lsk_")
    assert httpx.get(f"{server_process.url}/admin/keys", headers=server_process.headers).status_code == 200
    server_process.kill()
    output = server_process.log_path.read_text()
    assert output.count(default["secret_access_key"]) == 1  # printed once on the terminal, never logged
    server_process.start()
    server_process.kill()
    assert server_process.log_path.read_text().count("First start") == 1


def test_keys_revoke_refuses_the_last_admin_key(tmp_path: Path) -> None:
    """The rule of the admin API holds on the command line too: both go through AdminService."""
    data = str(tmp_path / "data")
    first = json.loads(logsvc("keys", "create", "--role", "admin", "--json", "--data-dir", data).stdout)
    refused = logsvc("keys", "revoke", first["access_key_id"], "--data-dir", data)
    assert refused.returncode == 2
    assert "last usable admin credential" in refused.stderr
    assert logsvc("keys", "create", "--role", "admin", "--data-dir", data).returncode == 0
    assert logsvc("keys", "revoke", first["access_key_id"], "--data-dir", data).returncode == 0


def test_keys_commands(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    created = logsvc(
        "keys",
        "create",
        "--role",
        "ingest",
        "--service",
        "payments*",
        "--expires",
        "90d",
        "--json",
        "--data-dir",
        data,
    )
    assert created.returncode == 0, created.stderr
    credential = json.loads(created.stdout)
    assert set(credential) == {
        "access_key_id",
        "secret_access_key",
        "api_key",
        "roles",
        "services",
        "expires_at",
    }
    assert (credential["roles"], credential["services"]) == (["ingest"], ["payments*"])
    listed = json.loads(logsvc("keys", "list", "--json", "--data-dir", data).stdout)
    assert [c["access_key_id"] for c in listed] == [credential["access_key_id"]]
    assert credential["secret_access_key"] not in json.dumps(listed)
    assert logsvc("keys", "revoke", credential["access_key_id"], "--data-dir", data).returncode == 0
    assert json.loads(logsvc("keys", "list", "--json", "--data-dir", data).stdout)[0]["revoked_at"]
    again = logsvc("keys", "revoke", credential["access_key_id"], "--data-dir", data)
    assert again.returncode == 2
    assert "no active credential" in again.stderr
    bad = logsvc("keys", "create", "--role", "ingest", "--expires", "soon", "--data-dir", data)
    assert bad.returncode == 2
    assert "expires" in bad.stderr
    table = logsvc("audit", "--data-dir", data)
    assert "key.create" in table.stdout
    assert "key.revoke" in table.stdout
    assert logsvc("keys", "list", "--data-dir", data).returncode == 0


def test_background_jobs_run_in_one_worker_and_move_when_it_dies(tmp_path: Path) -> None:
    """With --workers 2, one process sweeps and archives; when it is killed another takes the jobs over."""
    server = ServerProcess(tmp_path / "data", "--workers", "2", env={"LOGSVC_RETENTION_SWEEP_SECONDS": "0.2"})
    pattern = re.compile(r"process (\d+) runs the background jobs")

    def runners() -> list[int]:
        return [int(pid) for pid in pattern.findall(server.log_path.read_text())]

    def wait_for(condition: Callable[[], bool], what: str) -> None:
        assert eventually(condition), f"{what}; log:\n{server.log_path.read_text()[-3000:]}"

    try:
        server.start()
        wait_for(lambda: server.log_path.read_text().count("Application startup complete") >= 2, "2 workers")
        wait_for(lambda: len(runners()) >= 1, "a worker runs the jobs")
        time.sleep(1)  # five sweep intervals in which the other worker keeps trying for the lease
        (first,) = runners()
        os.kill(first, signal.SIGKILL)
        wait_for(lambda: len(runners()) == 2, "another worker takes the jobs over")
        assert runners()[1] != first
    finally:
        server.kill()
