"""Backups, restore and point-in-time restore of a tiered store (storage v2, decision 35), through a real
server whose hot generations are compacted while the backup and the archive run."""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx

from logsvc.crypto import store_key
from logsvc.domain.timestamps import format_timestamp
from logsvc.settings import Settings
from logsvc.storage.tiers import ColdFile, HotFile
from tests.conftest import ServerThread, bearer, make_settings, run_logsvc

from .test_archive import ingest_for
from .test_backup import backup_while_ingesting


def tiered_settings(data: Path, **more: object) -> Settings:
    # Generations of 64 entries: compactions all along the ingest.
    return make_settings(
        data, store_engine="tiered", store=f"tiered:///{data}/logs-v2?generation_rows=64", **more
    )


def tiered_ids(directory: Path, key: bytes | None) -> Counter[str]:
    """How many times each log id is stored in a tiered store's two files, after their integrity checks."""
    hot, cold = HotFile(directory / "hot.db", key), ColdFile(directory / "cold.db", key)
    try:
        assert hot.check() == []
        found = Counter(str(uuid.UUID(bytes=row[1])) for row in cold.rows())
        for generation in hot.generations(0, 1):
            found.update(str(uuid.UUID(bytes=row[1])) for row in hot.rows(generation))
        return found
    finally:
        hot.close()
        cold.close()


def test_backup_of_a_tiered_store_while_ingesting_then_restore(tmp_path: Path) -> None:
    settings = tiered_settings(tmp_path / "data")
    before_backup, after_backup, backup = backup_while_ingesting(settings, tmp_path / "backups", 1000)
    manifest = json.loads((backup / "manifest.json").read_bytes())
    assert set(manifest["files"]) == {"logs-v2/hot.db", "logs-v2/cold.db", "auth.db", "keyring.json"}
    for path in backup.rglob("*"):
        if path.is_file():
            assert b"MARKER-" not in path.read_bytes(), path.name

    restored = tmp_path / "restored"
    # Under a configuration of the SQLite store a server would serve a new, empty logs.db beside it.
    unserved = make_settings(restored, master_key_file=settings.master_key_file)
    refused = run_logsvc(unserved, "restore", "--from", str(backup), "--into", str(restored))
    assert refused.returncode == 2
    assert 'whose store setting is empty and store_engine = "tiered"' in refused.stderr
    assert not restored.exists()
    # Restored with the configuration it is served with.
    served = tiered_settings(restored, master_key_file=settings.master_key_file)
    result = run_logsvc(served, "restore", "--from", str(backup), "--into", str(restored))
    assert result.returncode == 0, result.stderr
    key = store_key(make_settings(restored, master_key_file=settings.master_key_file))
    ids = tiered_ids(restored / "logs-v2", key)
    # A consistent snapshot across compactions: every entry once, all acknowledged before it began.
    assert set(ids.values()) == {1}
    assert before_backup <= set(ids) <= after_backup

    # `store stats` reads the restored store as the server would serve it.
    result = run_logsvc(served, "store", "stats", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["entries"] == len(ids)


def test_point_in_time_restore_of_a_tiered_store(tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    settings = tiered_settings(tmp_path / "data", archive_dir=str(archive), archive_seconds=0.2)
    server = ServerThread(settings).start()
    before: list[str] = []
    after: list[str] = []
    try:
        with httpx.Client(base_url=server.url, headers=bearer(server.admin), timeout=30) as client:
            ingest_for(client, 0.8, before)
            time.sleep(0.05)
            point = time.time_ns() // 1000
            time.sleep(0.05)
            ingest_for(client, 0.8, after)
    finally:
        server.stop()
    segments = sorted(archive.glob("segment-*.bin"))
    assert len(segments) >= 3, "ingest should span several archive intervals"
    assert not any(b"MARKER-" in segment.read_bytes() for segment in segments)

    for name, to_us, expected in (("at-point", point, before), ("everything", None, before + after)):
        restored = tmp_path / name
        until = format_timestamp(to_us if to_us is not None else time.time_ns() // 1000)
        served = tiered_settings(restored, master_key_file=settings.master_key_file)
        result = run_logsvc(
            served, "restore", "--from", str(archive), "--into", str(restored), "--to-time", until
        )
        assert result.returncode == 0, result.stderr
        key = store_key(make_settings(restored, master_key_file=settings.master_key_file))
        ids = tiered_ids(restored / "logs-v2", key)
        assert set(ids.values()) == {1}
        assert set(ids) == set(expected)


def test_a_manifest_naming_a_path_outside_the_backup_is_refused(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data")
    ServerThread(settings).start().stop()
    result = run_logsvc(settings, "backup", "--to", str(tmp_path / "backups"))
    assert result.returncode == 0, result.stderr
    (backup,) = (tmp_path / "backups").iterdir()
    manifest = json.loads((backup / "manifest.json").read_bytes())
    manifest["files"]["../outside"] = manifest["files"]["keyring.json"]
    (backup / "manifest.json").write_text(json.dumps(manifest))
    result = run_logsvc(settings, "restore", "--from", str(backup), "--into", str(tmp_path / "r"))
    assert result.returncode == 2
    assert "outside the backup" in result.stderr
    assert not (tmp_path / "r").exists()
