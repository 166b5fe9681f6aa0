"""What a server writes under its data directory is readable by its own user only."""

from __future__ import annotations

import stat
from pathlib import Path

import httpx

from tests.conftest import ServerProcess


def modes(data_dir: Path) -> dict[str, int]:
    return {str(p.relative_to(data_dir)): stat.S_IMODE(p.stat().st_mode) for p in data_dir.rglob("*")}


def test_every_file_under_the_data_dir_is_0600_and_every_directory_0700(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    # Two workers, so that the metrics files of prometheus_client are written too.
    server = ServerProcess(data_dir, "--workers", "2").start()
    try:
        with httpx.Client(base_url=server.url, headers=server.headers, timeout=10) as client:
            for n in range(20):  # new connections, so that both workers answer
                assert client.post("/logs", json={"message": f"m{n}"}).status_code == 201
                assert client.get("/logs", headers={"Connection": "close"}).status_code == 200
            assert client.get("/metrics").status_code == 200
        running = modes(data_dir)
        assert {"logs.db", "logs.db-wal", "logs.db-shm", "auth.db", "keyring.json", "retention.json"} <= set(
            running
        )
        assert any(name.startswith("metrics/") for name in running)
    finally:
        assert server.terminate() == 0
    for found in (running, modes(data_dir)):
        for name, mode in found.items():
            expected = 0o700 if (data_dir / name).is_dir() else 0o600
            assert mode == expected, f"{name} has mode {mode:o}"
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
