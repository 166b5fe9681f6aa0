"""Continuous archiving and point-in-time restore: exactly the entries acknowledged before T, none after."""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from pathlib import Path

import httpx
import uuid_utils

from logsvc.archive import Archiver
from logsvc.domain.entries import Level, NewEntry
from logsvc.domain.timestamps import format_timestamp
from logsvc.storage.sqlite import SQLiteStore
from tests.conftest import ServerThread, bearer, make_settings, run_logsvc, stored_ids


def ingest_for(client: httpx.Client, seconds: float, acknowledged: list[str]) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        batch = [{"log_id": str(uuid.uuid4()), "message": f"MARKER-{uuid.uuid4().hex}"} for _ in range(20)]
        if client.post("/logs", json=batch).status_code == 201:
            acknowledged.extend(entry["log_id"] for entry in batch)


def test_point_in_time_restore(tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    settings = make_settings(tmp_path / "data", archive_dir=str(archive), archive_seconds=0.2)
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
        server.stop()  # archives what was committed until then
    segments = sorted(archive.glob("segment-*.bin"))
    assert len(segments) >= 3, "ingest should span several archive intervals"
    assert not any(b"MARKER-" in segment.read_bytes() for segment in segments)

    restored = tmp_path / "restored"
    result = run_logsvc(
        settings,
        "restore",
        "--from",
        str(archive),
        "--into",
        str(restored),
        "--to-time",
        format_timestamp(point),
    )
    assert result.returncode == 0, result.stderr
    assert stored_ids(restored, make_settings(restored, master_key_file=settings.master_key_file)) == set(
        before
    )

    everything = tmp_path / "everything"
    later = format_timestamp(time.time_ns() // 1000)
    result = run_logsvc(
        settings, "restore", "--from", str(archive), "--into", str(everything), "--to-time", later
    )
    assert result.returncode == 0, result.stderr
    assert stored_ids(everything, make_settings(everything, master_key_file=settings.master_key_file)) == set(
        before + after
    )

    damaged = bytearray(segments[1].read_bytes())
    damaged[-1] ^= 0x01
    segments[1].write_bytes(bytes(damaged))
    result = run_logsvc(
        settings, "restore", "--from", str(archive), "--into", str(tmp_path / "x"), "--to-time", later
    )
    assert result.returncode == 2
    assert f"{segments[1].name} is damaged" in result.stderr
    segments[1].unlink()
    result = run_logsvc(
        settings, "restore", "--from", str(archive), "--into", str(tmp_path / "x"), "--to-time", later
    )
    assert result.returncode == 2
    assert "is missing the segment" in result.stderr
    assert not (tmp_path / "x").exists()


def test_segments_past_the_window_are_pruned(tmp_path: Path) -> None:
    async def scenario() -> list[str]:
        key = secrets.token_bytes(32)
        keyring = tmp_path / "keyring.json"
        keyring.write_text("{}")
        store = SQLiteStore(tmp_path / "logs.db", key=key)
        archiver = Archiver(store, key, tmp_path / "archive", keyring=keyring, window_days=1)
        try:
            for round_number in range(3):
                await store.append([entry(f"round {round_number}")])
                assert await archiver.archive_once() == 1
            assert len(list((tmp_path / "archive").glob("segment-*.bin"))) == 3
            archiver._window_us = 0  # everything is past a window of no length
            await store.append([entry("round 3")])
            await archiver.archive_once()
        finally:
            await store.close()
        return sorted(path.name for path in (tmp_path / "archive").glob("segment-*.bin"))

    remaining = asyncio.run(scenario())
    assert len(remaining) == 1, "only the newest segment, which marks where the next begins, is kept"


def entry(message: str) -> NewEntry:
    now = time.time_ns() // 1000
    return NewEntry(uuid_utils.uuid7().bytes, "svc", now, Level.INFO, "application", message, None, now)
