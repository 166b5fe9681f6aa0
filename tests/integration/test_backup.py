"""Online, encrypted backups and their checked restore."""

from __future__ import annotations

import hashlib
import json
import threading
import time
import uuid
from pathlib import Path

import apsw
import httpx
import pytest

from logsvc.domain.timestamps import format_timestamp
from logsvc.settings import Settings
from tests.conftest import ServerThread, bearer, eventually, make_settings, run_logsvc, stored_ids


def backup_while_ingesting(
    settings: Settings, target: Path, at_least: int
) -> tuple[set[str], set[str], Path]:
    """A backup into ``target`` taken while a client ingests batches: the ids acknowledged before it
    began (``at_least`` of them at least), those acknowledged by its end, and the backup's folder."""
    server = ServerThread(settings).start()
    acknowledged: list[str] = []
    stop = threading.Event()

    def ingest() -> None:
        with httpx.Client(base_url=server.url, headers=bearer(server.admin)) as client:
            while not stop.is_set():
                batch = [
                    {"log_id": str(uuid.uuid4()), "message": f"MARKER-{uuid.uuid4().hex}"} for _ in range(50)
                ]
                if client.post("/logs", json=batch).status_code == 201:
                    acknowledged.extend(entry["log_id"] for entry in batch)

    writer = threading.Thread(target=ingest)
    writer.start()
    try:
        assert eventually(lambda: len(acknowledged) >= at_least, 120)
        before_backup = set(acknowledged)
        result = run_logsvc(settings, "backup", "--to", str(target))
        assert result.returncode == 0, result.stderr
        after_backup = set(acknowledged)
    finally:
        stop.set()
        writer.join()
        server.stop()
    (backup,) = target.iterdir()
    return before_backup, after_backup, backup


def test_backup_while_ingesting_then_restore(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data")
    before_backup, after_backup, backup = backup_while_ingesting(settings, tmp_path / "backups", 500)
    assert {p.name for p in backup.iterdir()} == {"logs.db", "auth.db", "keyring.json", "manifest.json"}
    everything = b"".join(p.read_bytes() for p in backup.iterdir())
    assert b"MARKER-" not in everything
    plain = apsw.Connection(str(backup / "logs.db"))
    with pytest.raises(apsw.NotADBError):
        plain.execute("SELECT count(*) FROM sqlite_master").fetchall()
    plain.close()

    restored = tmp_path / "restored"
    result = run_logsvc(settings, "restore", "--from", str(backup), "--into", str(restored))
    assert result.returncode == 0, result.stderr
    ids = stored_ids(restored, make_settings(restored, master_key_file=settings.master_key_file))
    # A consistent snapshot: everything acknowledged before it began, nothing that was never acknowledged.
    assert before_backup <= ids <= after_backup


def test_a_damaged_backup_is_refused(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data")
    server = ServerThread(settings).start()
    with httpx.Client(base_url=server.url, headers=bearer(server.admin)) as client:
        assert client.post("/logs", json={"message": "keep me"}).status_code == 201
    server.stop()
    assert run_logsvc(settings, "backup", "--to", str(tmp_path / "backups")).returncode == 0
    (backup,) = (tmp_path / "backups").iterdir()
    damaged = bytearray((backup / "logs.db").read_bytes())
    damaged[len(damaged) // 2] ^= 0x01
    (backup / "logs.db").write_bytes(bytes(damaged))
    result = run_logsvc(settings, "restore", "--from", str(backup), "--into", str(tmp_path / "restored"))
    assert result.returncode == 2
    assert "damaged: logs.db does not match its checksum" in result.stderr
    assert not (tmp_path / "restored").exists()

    manifest = json.loads((backup / "manifest.json").read_text())
    assert set(manifest["files"]) == {"logs.db", "auth.db", "keyring.json"}
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "something").write_text("")
    (backup / "logs.db").write_bytes(bytes(damaged[: len(damaged) // 2]))
    result = run_logsvc(settings, "restore", "--from", str(backup), "--into", str(tmp_path / "busy"))
    assert result.returncode == 2
    assert "damaged" in result.stderr
    assert (
        run_logsvc(settings, "restore", "--from", str(tmp_path), "--into", str(tmp_path / "x")).returncode
        == 2
    )


def test_restore_takes_the_directory_given_to_backup_as_typed(tmp_path: Path) -> None:
    """`backup --to DIR` makes a backup below DIR; `restore --from DIR` restores the newest one there."""
    settings = make_settings(tmp_path / "data")
    server = ServerThread(settings).start()
    try:
        with httpx.Client(base_url=server.url, headers=bearer(server.admin)) as client:
            first = client.post("/logs", json={"message": "in both backups"}).json()["log_id"]
            assert run_logsvc(settings, "backup", "--to", str(tmp_path / "backups")).returncode == 0
            second = client.post("/logs", json={"message": "in the second only"}).json()["log_id"]
            assert run_logsvc(settings, "backup", "--to", str(tmp_path / "backups")).returncode == 0
    finally:
        server.stop()
    assert len(list((tmp_path / "backups").iterdir())) == 2
    restored = tmp_path / "restored"
    result = run_logsvc(settings, "restore", "--from", str(tmp_path / "backups"), "--into", str(restored))
    assert result.returncode == 0, result.stderr
    newest = max(p.name for p in (tmp_path / "backups").iterdir())
    created_at = json.loads((tmp_path / "backups" / newest / "manifest.json").read_text())["created_at"]
    assert f"restored the backup of {created_at}" in result.stdout
    ids = stored_ids(restored, make_settings(restored, master_key_file=settings.master_key_file))
    assert ids == {first, second}
    empty = tmp_path / "empty"
    empty.mkdir()
    refused = run_logsvc(settings, "restore", "--from", str(empty), "--into", str(tmp_path / "nothing"))
    assert refused.returncode == 2
    assert "is not a logsvc backup" in refused.stderr


@pytest.mark.parametrize("forgery", ["directory", "link out", "link in a folder"])
def test_a_forged_manifest_naming_no_file_of_the_backup_is_refused(tmp_path: Path, forgery: str) -> None:
    """A manifest naming a folder of the backup, or a link out of it, with a matching checksum: refused
    with an error naming it, before anything is written (it was a traceback, or a copy of the outside
    file)."""
    settings = make_settings(tmp_path / "data")
    backup = tmp_path / "backup"
    (backup / "x").mkdir(parents=True)
    secret = tmp_path / "outside.txt"
    secret.write_text("not the backup's")
    digest = {"sha256": hashlib.sha256(secret.read_bytes()).hexdigest(), "bytes": secret.stat().st_size}
    files = {"x/y": digest}
    if forgery == "directory":
        (backup / "x" / "y").write_bytes(secret.read_bytes())
        files["x"] = digest
        named = "x"
    elif forgery == "link out":
        (backup / "z").symlink_to(secret)
        files = {"z": digest}
        named = "z"
    else:
        (backup / "x").rmdir()
        (backup / "x").symlink_to(tmp_path)
        files = {"x/outside.txt": digest}
        named = "x/outside.txt"
    manifest = {"version": 1, "created_at": "2026-11-30T00:00:00.000000Z", "files": files}
    (backup / "manifest.json").write_text(json.dumps(manifest))
    result = run_logsvc(settings, "restore", "--from", str(backup), "--into", str(tmp_path / "restored"))
    assert result.returncode == 2, result.stderr
    assert f"damaged: {named} is not a file of the backup" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "restored").exists()


@pytest.mark.parametrize("kind", ["backup", "point in time"])
def test_a_restore_its_configuration_would_not_serve_is_refused(tmp_path: Path, kind: str) -> None:
    """With the ``store`` setting naming a store outside the data directory, a server given that
    configuration and the restored data directory serves that store, not the restore: refused, before
    anything is written (the restore succeeded, and the live store was served, the entry made after the
    backup with it). With the store setting empty, what was restored is what is served."""
    elsewhere = tmp_path / "elsewhere" / "logs.db"
    archive = tmp_path / "archive"
    settings = make_settings(tmp_path / "data", store=f"sqlite:///{elsewhere}", archive_dir=str(archive))
    server = ServerThread(settings).start()
    try:
        with httpx.Client(base_url=server.url, headers=bearer(server.admin), timeout=30) as client:
            assert client.post("/logs", json={"message": "restored"}).status_code == 201
            backed_up = run_logsvc(settings, "backup", "--to", str(tmp_path / "backups"))
            assert backed_up.returncode == 0, backed_up.stderr
            until = format_timestamp(time.time_ns() // 1000)
            assert client.post("/logs", json={"message": "after the backup"}).status_code == 201
    finally:
        server.stop()  # archives what was committed until then
    source = ("--from", str(tmp_path / "backups"))
    if kind == "point in time":
        source = ("--from", str(archive), "--to-time", until)
    restored = tmp_path / "restored"

    # The operator's configuration, given the restored data directory.
    unserved = make_settings(restored, store=settings.store, master_key_file=settings.master_key_file)
    refused = run_logsvc(unserved, "restore", *source, "--into", str(restored))
    assert refused.returncode == 2, refused.stdout
    assert f"serves the store {settings.store}, not the one restored there" in refused.stderr
    assert 'whose store setting is empty and store_engine = "sqlite"' in refused.stderr
    assert not restored.exists()
    assert {p.name for p in elsewhere.parent.iterdir()} == {"logs.db", "logs.db-writer.lock"}

    served = make_settings(restored, master_key_file=settings.master_key_file)
    result = run_logsvc(served, "restore", *source, "--into", str(restored))
    assert result.returncode == 0, result.stderr
    server = ServerThread(served).start()
    try:
        with httpx.Client(base_url=server.url, headers=bearer(server.admin), timeout=30) as client:
            assert [e["message"] for e in client.get("/logs").json()["logs"]] == ["restored"]
    finally:
        server.stop()
