"""``logsvc store migrate`` (decision 35): a SQLite store copied into a tiered store with its arrival
numbers, counts and commit records; resumed after SIGKILL with every entry once; refused while a real
server runs; then served by switching the setting."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path

import apsw
import httpx
import pytest

from logsvc.crypto import store_key
from logsvc.crypto.sqlite import connect
from logsvc.errors import ConfigError
from logsvc.jobs import JobsLease
from logsvc.storage.migrate import MIGRATING, migrate
from logsvc.storage.open import open_store
from logsvc.storage.sqlite import SQLiteStore
from logsvc.storage.sqlite_files import SQLiteFiles
from logsvc.storage.tiered import TieredStore
from logsvc.storage.tiered_files import TieredFiles
from logsvc.storage.tiers import ColdFile, HotFile
from logsvc.storage.tiers_ops import export_after
from logsvc.store_url import tiered_url
from tests.conftest import ServerProcess, eventually, logsvc_environment, make_settings, run_logsvc

from .tiered_reference import (
    BASE_US,
    append_sqlite,
    batch,
    counts,
    entries,
    sqlite_counts,
    sqlite_rows,
    tiered_rows,
)

KEY = secrets.token_bytes(32)


def source_store(path: Path, key: bytes | None, entries: int) -> None:
    """A SQLite store with gaps in its arrival numbers: a service purged, the newest entries among them."""
    store = SQLiteStore(path, key=key, read_threads=1)
    try:
        for first in range(0, entries, 500):
            append_sqlite(store, batch(first, 500))
        asyncio.run(store.delete_older(BASE_US + 2000 * 1_500_000, include=("svc-3",), limit=10**6))
        asyncio.run(store.delete_older(2**62, include=(f"svc-{(entries - 1) % 5}",), limit=10**6))
    finally:
        asyncio.run(store.close())


def commits(conn_path: Path, key: bytes | None) -> list[tuple[int, int]]:
    conn = connect(conn_path, key)
    try:
        return [tuple(row) for row in conn.execute("SELECT * FROM commits ORDER BY last_seq")]  # type: ignore[misc]
    finally:
        conn.close()


def same_as_source(source: Path, target: Path, key: bytes | None) -> None:
    hot, cold = HotFile(target / "hot.db", key), ColdFile(target / "cold.db", key)
    try:
        assert tiered_rows(hot, cold) == sqlite_rows(source, key)  # every entry once, its number kept
        assert counts(hot.connection) == sqlite_counts(source, key)
    finally:
        hot.close()
        cold.close()
    assert commits(target / "hot.db", key) == commits(source, key)
    assert TieredFiles(target).stats(key).services == SQLiteFiles(source).stats(key).services


def test_migration_keeps_numbers_counts_commits_and_exports(tmp_path: Path) -> None:
    source = tmp_path / "logs.db"
    source_store(source, KEY, 5000)
    target = tmp_path / "logs-v2"
    # batches of more than a page: the first trains the cold file's dictionary (decision 41)
    assert migrate(source, target, KEY, batch=1100) == len(sqlite_rows(source, KEY))
    assert not (target / MIGRATING).exists()
    same_as_source(source, target, KEY)
    migrated = ColdFile(target / "cold.db", KEY)
    try:
        assert migrated.codec.dictionary is not None
    finally:
        migrated.close()

    reference = SQLiteStore(source, key=KEY, read_threads=1)
    hot, cold = HotFile(target / "hot.db", KEY), ColdFile(target / "cold.db", KEY)
    try:
        for after in (0, 1234, 4000):  # an archive's position before the migration stays valid after
            exported = export_after(hot, cold, after, 1000)
            expected = asyncio.run(reference.export_after(after, 1000))
            assert exported.rows == [tuple(row) for row in expected.rows]
            assert exported.commits == expected.commits
    finally:
        hot.close()
        cold.close()
        asyncio.run(reference.close())

    # New entries are numbered after the source's last number, also after its newest entries were purged.
    store = TieredStore(target, key=KEY, read_threads=1, compactor=False)
    try:
        asyncio.run(store.append(entries(batch(100_000, 3))))
        newest = asyncio.run(store.export_after(commits(source, KEY)[-1][0], 10))
    finally:
        asyncio.run(store.close())
    assert [row[0] for row in newest.rows] == [commits(source, KEY)[-1][0] + i for i in (1, 2, 3)]

    with pytest.raises(ConfigError, match="already holds files"):
        migrate(source, target, KEY)


def test_a_migration_killed_with_sigkill_resumes_with_every_entry_once(tmp_path: Path) -> None:
    data = tmp_path / "data"
    settings = make_settings(data)
    key = store_key(settings)
    source_store(data / "logs.db", key, 12_000)
    target = data / "logs-v2"
    command = [sys.executable, "-m", "logsvc", "store", "migrate", "--batch-size", "64"]
    for kills in range(3):
        process = subprocess.Popen(
            command,
            env=logsvc_environment(settings),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            # Killed a few batches further each time, at any point of a batch's two steps.
            assert eventually(lambda k=kills: _generations(target, key) >= 10 + 15 * k, 60)
        finally:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
        assert (target / MIGRATING).exists()
    with pytest.raises(ConfigError, match="migration not completed"):
        open_store(tiered_url(target), key=key)  # the setting switched too early: not served half copied
    result = run_logsvc(settings, "store", "migrate", "--batch-size", "64")
    assert result.returncode == 0, result.stderr
    assert "the copy is complete" in result.stdout
    assert 'store_engine = "tiered"' in result.stdout
    assert not (target / MIGRATING).exists()
    same_as_source(data / "logs.db", target, key)


def _generations(target: Path, key: bytes | None) -> int:
    """How many generations the cold file holds (0 before the migration made it)."""
    if not (target / "cold.db").exists():
        return 0
    try:
        conn = connect(target / "cold.db", key, busy_timeout_ms=10_000)
    except ConfigError:  # made but not yet written
        return 0
    try:
        return int(conn.execute("SELECT count(*) FROM cold_generations").get or 0)  # type: ignore[arg-type]
    except apsw.SQLError:  # the schema is not written yet
        return 0
    finally:
        conn.close()


def test_migration_is_refused_while_a_server_runs_then_served_by_the_setting(tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = ServerProcess(data).start()
    try:
        for start in range(0, 300, 100):
            body = [
                {"message": f"entry {i}", "service_name": f"svc-{i % 3}"} for i in range(start, start + 100)
            ]
            assert httpx.post(f"{server.url}/logs", json=body, headers=server.headers).status_code == 201
        settings = make_settings(data)
        refused = run_logsvc(settings, "store", "migrate")
        assert refused.returncode == 2
        assert "server" in refused.stderr
        assert not (data / "logs-v2").exists()
    finally:
        server.terminate()
    lease = JobsLease(data / "jobs.lock")
    assert lease.try_take()  # the server is gone: nothing holds the data directory
    lease.release()
    result = run_logsvc(settings, "store", "migrate")
    assert result.returncode == 0, result.stderr
    assert "300 entries copied" in result.stdout

    tiered = ServerProcess(data, "--store-engine", "tiered").start()
    try:
        page = httpx.get(f"{tiered.url}/logs", params={"limit": 1000}, headers=tiered.headers).json()
        assert sorted(entry["message"] for entry in page["logs"]) == sorted(f"entry {i}" for i in range(300))
    finally:
        tiered.kill()
