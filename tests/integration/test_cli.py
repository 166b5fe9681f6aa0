"""``logsvc`` as an operator runs it: a real process, real signals, real files."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import apsw
import httpx

from tests.conftest import ServerProcess


def logsvc(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "logsvc", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
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


def test_serve_logs_json_and_warns_about_missing_auth(server_process: ServerProcess) -> None:
    server_process.start()
    response = httpx.post(f"{server_process.url}/logs", json={"message": "hello from the cli test"})
    assert response.status_code == 201
    assert server_process.terminate() == -signal.SIGTERM  # uvicorn re-raises the signal once shut down
    lines = [json.loads(line) for line in server_process.log_path.read_text().splitlines()]
    assert lines[-1]["message"].startswith("Finished server process")
    assert any("authentication is not enabled" in line["message"] for line in lines)
    assert all({"time", "level", "logger", "message"} <= line.keys() for line in lines)


def test_sigterm_acknowledges_only_what_it_stored(server_process: ServerProcess) -> None:
    """Shut down while clients write: every 201 is durable; later writes are refused, not lost."""
    server_process.start()
    acked: list[bytes] = []
    stop = threading.Event()

    def write(seed: int) -> None:
        with httpx.Client(base_url=server_process.url, timeout=10) as client:
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
    stop.wait(1.0)
    assert server_process.proc is not None
    server_process.proc.send_signal(signal.SIGTERM)
    assert server_process.proc.wait(timeout=30) == -signal.SIGTERM
    stop.set()
    for thread in writers:
        thread.join(timeout=30)
    assert len(acked) > 50
    conn = apsw.Connection(str(server_process.data_dir / "logs.db"))
    stored = {row[0] for row in conn.execute("SELECT log_id FROM logs")}
    assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    assert set(acked) <= stored


def test_several_workers_share_one_store_and_one_metrics_view(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", "--workers", "2")
    try:
        server.start()
        with httpx.Client(base_url=server.url, timeout=10) as client:
            for i in range(40):  # new connections, so the kernel spreads them over both workers
                response = httpx.post(f"{server.url}/logs", json={"message": f"worker test {i}"})
                assert response.status_code == 201
            assert client.get("/logs/recent", params={"limit": 100}).json()["count"] == 40
            metrics = client.get("/metrics").text
        assert "logsvc_entries_ingested_total 40.0" in metrics
    finally:
        server.kill()
