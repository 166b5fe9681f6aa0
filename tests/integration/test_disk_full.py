"""A full disk: ingest answers 507 and acknowledges nothing it did not store; reads go on; ingest resumes.

The store lives on a tmpfs of a few MB mounted for the test (root only; skipped, saying why, elsewhere).
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import httpx
import pytest

from logsvc.crypto import store_key
from logsvc.crypto.sqlite import connect
from logsvc.datadir import DataDir
from logsvc.storage.tiers import ColdFile, HotFile
from tests.conftest import ServerThread, bearer, make_settings


@pytest.mark.parametrize("engine", ["sqlite", "tiered"])
def test_full_disk_refuses_without_losing_and_recovers(small_disk: Path, engine: str) -> None:
    # Ballast to delete later, so that space can come back without touching the store's files.
    ballast = small_disk / "ballast"
    ballast.write_bytes(b"\0" * 1_000_000)
    settings = make_settings(small_disk / "data", store_engine=engine)
    server = ServerThread(settings).start()
    acknowledged: list[str] = []
    try:
        with httpx.Client(base_url=server.url, headers=bearer(server.admin), timeout=30) as client:
            full = None
            for _ in range(400):
                batch = [{"log_id": str(uuid.uuid4()), "message": "x" * 2000} for _ in range(20)]
                response = client.post(
                    "/logs", content=json.dumps(batch), headers={"Content-Type": "application/json"}
                )
                if response.status_code == 201:
                    acknowledged += [entry["log_id"] for entry in batch]
                else:
                    full = response
                    break
            assert full is not None, "the disk never filled up"
            assert full.status_code == 507, full.text
            assert full.json()["code"] == "store_full"
            assert len(acknowledged) > 0

            assert client.get("/logs", params={"limit": 5}).status_code == 200  # reads go on

            ballast.unlink()
            retry = [{"log_id": str(uuid.uuid4()), "message": "after the disk had room again"}]
            response = client.post(
                "/logs", content=json.dumps(retry), headers={"Content-Type": "application/json"}
            )
            assert response.status_code == 201, response.text
            acknowledged.append(retry[0]["log_id"])
    finally:
        server.stop()

    if engine == "tiered":
        stored = tiered_ids(DataDir(settings.data_dir).tiered, store_key(settings))
    else:
        conn = connect(small_disk / "data" / "logs.db", store_key(settings))
        try:
            assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
            stored = {str(uuid.UUID(bytes=row[0])) for row in conn.execute("SELECT log_id FROM logs")}
        finally:
            conn.close()
    assert set(acknowledged) <= stored


def tiered_ids(directory: Path, key: bytes | None) -> set[str]:
    """The ids in both files of a tiered store, after their integrity checks passed."""
    hot = HotFile(directory / "hot.db", key)
    cold = ColdFile(directory / "cold.db", key)
    try:
        assert hot.check() == []
        found = {row[1] for row in cold.rows()}
        for generation in hot.generations(0, 1):
            found.update(row[1] for row in hot.rows(generation))
    finally:
        hot.close()
        cold.close()
    return {str(uuid.UUID(bytes=log_id)) for log_id in found}
