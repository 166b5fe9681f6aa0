"""Encryption at rest: nothing readable on disk, keys that do not fit are refused, master-key rotation."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import apsw
import httpx
import pytest

from logsvc.crypto import store_key
from logsvc.crypto.sqlite import connect
from logsvc.errors import ConfigError
from logsvc.settings import Settings
from tests.conftest import (
    ServerProcess,
    ServerThread,
    bearer,
    logsvc_environment,
    make_settings,
    run_logsvc,
)


def assert_markers_after_restart(server: ServerThread, markers: list[str]) -> None:
    """The store, opened again by a new server with the same settings, holds exactly the marked entries."""
    restarted = ServerThread(server.settings).start()
    try:
        with httpx.Client(base_url=restarted.url, headers=bearer(server.admin)) as client:
            found = client.get("/logs", params={"limit": 1000}).json()["logs"]
            assert sorted(e["metadata"]["m"] for e in found) == sorted(markers)
    finally:
        restarted.stop()


def digest(folder: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()
    }


@pytest.fixture
def filled(tmp_path: Path) -> Iterator[tuple[ServerThread, list[str]]]:
    """A server whose store holds entries with unique markers, stopped again so its files are at rest."""
    server = ServerThread(make_settings(tmp_path / "data")).start()
    markers = [f"MARKER-{uuid.uuid4().hex}" for _ in range(50)]
    with httpx.Client(base_url=server.url, headers=bearer(server.admin)) as client:
        for marker in markers:
            entry = {"service_name": "secret-svc", "message": f"card {marker}", "metadata": {"m": marker}}
            assert client.post("/logs", json=entry).status_code == 201
        # While it runs, the entries are in the WAL: it must be encrypted as well.
        wal = (tmp_path / "data" / "logs.db-wal").read_bytes()
        assert len(wal) > 0
        assert not any(marker.encode() in wal for marker in markers)
    yield server, markers
    server.stop()


def test_no_plaintext_on_disk(filled: tuple[ServerThread, list[str]]) -> None:
    server, markers = filled
    server.stop()
    data = Path(server.settings.data_dir)
    everything = b"".join(path.read_bytes() for path in data.iterdir() if path.is_file())
    assert not any(marker.encode() in everything for marker in markers)
    for secret in (server.admin.secret_access_key, server.admin.access_key_id, "secret-svc"):
        assert secret.encode() not in everything
    for name in ("logs.db", "auth.db"):
        plain = apsw.Connection(str(data / name))
        with pytest.raises(apsw.NotADBError):
            plain.execute("SELECT count(*) FROM sqlite_master").fetchall()
        plain.close()
    conn = connect(data / "logs.db", store_key(server.settings))
    assert conn.execute("SELECT count(*) FROM logs WHERE service = 'secret-svc'").get == len(markers)
    conn.close()


def test_a_wrong_or_missing_master_key_stops_start_up_and_touches_nothing(
    filled: tuple[ServerThread, list[str]],
) -> None:
    server, _ = filled
    server.stop()
    settings = server.settings
    data = Path(settings.data_dir)
    key_file = Path(settings.master_key_file)
    original = key_file.read_text()
    before = digest(data)

    key_file.write_text(base64.b64encode(secrets.token_bytes(32)).decode())
    result = run_logsvc(settings, "serve", "--data-dir", str(data), "--port", "0")
    assert result.returncode == 2
    assert "does not open" in result.stderr
    assert "fingerprint" in result.stderr
    assert "Traceback" not in result.stderr

    key_file.unlink()
    result = run_logsvc(settings, "serve", "--data-dir", str(data), "--port", "0")
    assert result.returncode == 2
    assert "does not exist" in result.stderr
    assert not key_file.exists(), "a new master key must not be made for an existing store"
    assert digest(data) == before

    key_file.write_text(original)
    os.chmod(key_file, 0o644)
    with pytest.raises(ConfigError, match="readable by others"):
        store_key(settings)


def test_rotating_the_master_key(filled: tuple[ServerThread, list[str]], tmp_path: Path) -> None:
    server, markers = filled
    settings = server.settings
    key_file = Path(settings.master_key_file)
    old_key = key_file.read_text()
    # The server keeps serving across the rotation: it holds the data key, not the master key.
    result = run_logsvc(settings, "keys", "rotate-master", "--data-dir", settings.data_dir)
    assert result.returncode == 0, result.stderr
    assert "new master key" in result.stdout
    assert key_file.read_text() != old_key
    with httpx.Client(base_url=server.url, headers=bearer(server.admin)) as client:
        assert client.get("/logs", params={"limit": 1000}).json()["count"] == len(markers)
    server.stop()

    old_file = tmp_path / "old.key"
    old_file.write_text(old_key)
    os.chmod(old_file, 0o600)
    with pytest.raises(ConfigError, match="does not open"):
        store_key(make_settings(Path(settings.data_dir), master_key_file=str(old_file)))
    assert_markers_after_restart(server, markers)


def test_master_key_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_LOGSVC_KEY", base64.b64encode(secrets.token_bytes(32)).decode())
    settings = make_settings(tmp_path / "data", master_key_env="MY_LOGSVC_KEY")
    key = store_key(settings)
    assert key is not None
    assert store_key(settings) == key
    assert not Path(settings.master_key_file).exists()
    monkeypatch.setenv("MY_LOGSVC_KEY", "not base64!")
    with pytest.raises(ConfigError, match="not base64"):
        store_key(settings)


def test_key_file_rules(tmp_path: Path) -> None:
    inside = make_settings(tmp_path / "data", master_key_file=str(tmp_path / "data" / "master.key"))
    with pytest.raises(ConfigError, match="inside the data directory"):
        store_key(inside)


def test_encryption_can_be_off_but_not_for_an_encrypted_store(tmp_path: Path) -> None:
    plain = make_settings(tmp_path / "plain", encryption=False)
    assert store_key(plain) is None
    encrypted = make_settings(tmp_path / "enc")
    store_key(encrypted)
    with pytest.raises(ConfigError, match="is encrypted"):
        store_key(make_settings(tmp_path / "enc", encryption=False))
    (tmp_path / "lost").mkdir()
    (tmp_path / "lost" / "logs.db").write_bytes(b"")
    with pytest.raises(ConfigError, match=r"without keyring\.json"):
        store_key(make_settings(tmp_path / "lost"))


def test_a_store_outside_the_data_directory_without_its_keyring_is_refused(tmp_path: Path) -> None:
    """The keyring lost with the data directory, while the store the ``store`` setting puts elsewhere is
    kept: start-up names the lost keyring, and makes none (a new one would wrap a data key the store was
    never encrypted with, and stand in the way of the keyring restored from a backup)."""
    data = tmp_path / "data"
    settings = make_settings(data, store=f"sqlite:///{tmp_path / 'elsewhere' / 'logs.db'}")
    server = ServerThread(settings).start()
    marker = f"MARKER-{uuid.uuid4().hex}"
    with httpx.Client(base_url=server.url, headers=bearer(server.admin), timeout=30) as client:
        entry = {"service_name": "away", "message": marker, "metadata": {"m": marker}}
        assert client.post("/logs", json=entry).status_code == 201
    server.stop()
    kept = (data / "keyring.json").read_bytes()
    shutil.rmtree(data)

    lost = ServerProcess(data, env={"LOGSVC_STORE": settings.store})
    try:
        with pytest.raises(RuntimeError, match="did not start"):
            lost.start(timeout=30)
    finally:
        lost.kill()
    log = lost.log_path.read_text()
    assert f"{tmp_path / 'elsewhere' / 'logs.db'} exist without keyring.json in {data}" in log
    assert "the keyring was lost (restore it from a backup)" in log
    assert not (data / "keyring.json").exists()

    data.mkdir(mode=0o700)
    (data / "keyring.json").write_bytes(kept)
    restored = ServerThread(settings).start()  # the credentials went with the data directory: a new admin
    try:
        with httpx.Client(base_url=restored.url, headers=bearer(restored.admin), timeout=30) as client:
            assert [e["message"] for e in client.get("/logs").json()["logs"]] == [marker]
    finally:
        restored.stop()


def _ciphers_after_one_entry(settings: Settings) -> tuple[dict[str, str], str]:
    """A store given one entry by a server, then at rest: ``store stats``'s ciphers (``--json``) and its
    table's text."""
    server = ServerThread(settings).start()
    with httpx.Client(base_url=server.url, headers=bearer(server.admin), timeout=30) as client:
        assert client.post("/logs", json={"service_name": "svc", "message": "hello"}).status_code == 201
    server.stop()
    stats = run_logsvc(settings, "store", "stats", "--json", "--data-dir", settings.data_dir)
    assert stats.returncode == 0, stats.stderr
    table = run_logsvc(settings, "store", "stats", "--data-dir", settings.data_dir).stdout
    return json.loads(stats.stdout)["encryption"], table


def test_store_stats_says_a_store_without_encryption_is_not_encrypted(tmp_path: Path) -> None:
    ciphers, table = _ciphers_after_one_entry(make_settings(tmp_path / "plain", encryption=False))
    assert ciphers == {"logs.db": "none", "auth.db": "none"}
    assert "encryption: logs.db not encrypted, auth.db not encrypted" in table


def test_store_stats_names_the_cipher_of_a_store_outside_the_data_directory(tmp_path: Path) -> None:
    """The store's own file is encrypted with the data key wherever ``store`` puts it: its cipher is listed
    beside the data directory's, by its path."""
    elsewhere = tmp_path / "else[bold]where" / "logs.db"  # a path is shown as it is, never as markup
    settings = make_settings(tmp_path / "data", store=f"sqlite:///{elsewhere}")
    ciphers, table = _ciphers_after_one_entry(settings)
    assert ciphers == {"auth.db": "aegis", str(elsewhere): "aegis"}
    assert f"encryption: auth.db AEGIS-256, {elsewhere} AEGIS-256" in table


def test_rekey_re_encrypts_and_keeps_every_entry(filled: tuple[ServerThread, list[str]]) -> None:
    server, markers = filled
    settings = server.settings
    data = Path(settings.data_dir)
    old_key = store_key(settings)

    refused = run_logsvc(settings, "store", "rekey", "--data-dir", str(data))
    assert refused.returncode == 2, "the server still has the store open"
    assert "in use" in refused.stderr
    assert store_key(settings) == old_key, "a refused re-encryption leaves the store as it was"
    server.stop()
    assert run_logsvc(settings, "store", "rekey", "--data-dir", str(data)).returncode == 0
    new_key = store_key(settings)
    assert new_key != old_key
    for name in ("logs.db", "auth.db"):
        with pytest.raises(ConfigError, match="cannot open"):
            connect(data / name, old_key)
    assert_markers_after_restart(server, markers)


def test_rekey_re_encrypts_a_store_outside_the_data_directory(tmp_path: Path) -> None:
    """The keyring in the data directory also encrypts a store the ``store`` setting puts elsewhere: a
    re-encryption that left it under the old key, whose keyring it replaces, would lose every entry."""
    settings = make_settings(tmp_path / "data", store=f"sqlite:///{tmp_path / 'elsewhere' / 'logs.db'}")
    server = ServerThread(settings).start()
    markers = [f"MARKER-{uuid.uuid4().hex}" for _ in range(5)]
    with httpx.Client(base_url=server.url, headers=bearer(server.admin), timeout=30) as client:
        for marker in markers:
            entry = {"service_name": "away", "message": marker, "metadata": {"m": marker}}
            assert client.post("/logs", json=entry).status_code == 201
    server.stop()
    rekeyed = run_logsvc(settings, "store", "rekey", "--data-dir", settings.data_dir)
    assert rekeyed.returncode == 0, rekeyed.stderr
    assert_markers_after_restart(server, markers)


def test_an_interrupted_rekey_is_finished_by_running_it_again(filled: tuple[ServerThread, list[str]]) -> None:
    server, markers = filled
    server.stop()
    settings = server.settings
    data = Path(settings.data_dir)
    holder = connect(data / "auth.db", store_key(settings))  # auth.db in use: logs.db is done, auth.db not
    holder.execute("PRAGMA journal_mode=WAL").fetchall()
    holder.execute("SELECT count(*) FROM credentials").fetchall()
    try:
        assert run_logsvc(settings, "store", "rekey", "--data-dir", str(data)).returncode == 2
    finally:
        holder.close()
    with pytest.raises(ConfigError, match="was interrupted"):
        store_key(settings)
    assert run_logsvc(settings, "store", "rekey", "--data-dir", str(data)).returncode == 0
    assert_markers_after_restart(server, markers)


def test_store_stats_reads_the_encrypted_store(filled: tuple[ServerThread, list[str]]) -> None:
    server, markers = filled
    settings = server.settings
    result = run_logsvc(settings, "store", "stats", "--json", "--data-dir", settings.data_dir)
    assert result.returncode == 0, result.stderr
    stats = json.loads(result.stdout)
    (service,) = stats["services"]
    assert (service["service_name"], service["entries"]) == ("secret-svc", len(markers))
    assert service["oldest"] <= service["newest"]
    assert service["bytes"] > sum(len(m) for m in markers)
    assert stats["entries"] == len(markers)
    assert stats["file_bytes"] > 0
    assert stats["encryption"] == {"logs.db": "aegis", "auth.db": "aegis"}
    table = run_logsvc(settings, "store", "stats", "--data-dir", settings.data_dir)
    assert "secret-svc" in table.stdout
    assert "encryption: logs.db AEGIS-256, auth.db AEGIS-256" in table.stdout
    assert "rekey" not in table.stdout
    missing = run_logsvc(
        settings, "store", "stats", "--data-dir", str(Path(settings.data_dir).parent / "nowhere")
    )
    assert missing.returncode == 2
    assert "no store" in missing.stderr


def test_rekey_re_encrypts_both_files_of_a_tiered_store(tmp_path: Path) -> None:
    data = tmp_path / "data"
    settings = make_settings(
        data, store_engine="tiered", store=f"tiered:///{data / 'logs-v2'}?generation_rows=64"
    )
    server = ServerThread(settings).start()
    markers = [f"MARKER-{uuid.uuid4().hex}" for _ in range(150)]
    with httpx.Client(base_url=server.url, headers=bearer(server.admin), timeout=30) as client:
        for marker in markers:
            entry = {"service_name": "secret-svc", "message": f"card {marker}", "metadata": {"m": marker}}
            assert client.post("/logs", json=entry).status_code == 201
    server.stop()
    old_key = store_key(settings)
    assert run_logsvc(settings, "store", "rekey", "--data-dir", str(data)).returncode == 0
    for name in ("hot.db", "cold.db"):
        with pytest.raises(ConfigError, match="cannot open"):
            connect(data / "logs-v2" / name, old_key)
        connect(data / "logs-v2" / name, store_key(settings)).close()
    assert_markers_after_restart(server, markers)


def at_rest(server: ServerThread) -> tuple[Settings, Path, bytes]:
    """The server stopped, so that its files are at rest: its settings, data directory and store key."""
    server.stop()
    settings = server.settings
    key = store_key(settings)
    assert key is not None
    return settings, Path(settings.data_dir), key


def cipher_of(path: Path, key: bytes) -> str:
    """The cipher that reads ``path`` with ``key``, tried with SQLite3 Multiple Ciphers itself."""
    for cipher in ("aegis", "chacha20"):
        conn = apsw.Connection(str(path))
        try:
            conn.execute(f"PRAGMA cipher = '{cipher}'")
            conn.execute(f"PRAGMA key = \"x'{key.hex()}'\"")
            conn.execute("SELECT count(*) FROM sqlite_master").fetchall()
            return cipher
        except apsw.NotADBError:
            continue
        finally:
            conn.close()
    raise AssertionError(f"{path} opens with neither cipher")


def as_before_aegis(path: Path, key: bytes) -> None:
    """Re-encrypt ``path`` with ChaCha20-Poly1305 under the same key: the file as logsvc wrote it before
    decision 48 (same schema and key, sqlite3mc's default cipher)."""
    conn = apsw.Connection(str(path))
    conn.execute("PRAGMA cipher = 'aegis'")
    conn.execute(f"PRAGMA key = \"x'{key.hex()}'\"")
    assert conn.execute("PRAGMA journal_mode=DELETE").get == "delete"
    conn.execute("PRAGMA cipher = 'chacha20'")
    conn.execute(f"PRAGMA rekey = \"x'{key.hex()}'\"")
    conn.execute("PRAGMA journal_mode=WAL").fetchall()
    conn.close()
    assert cipher_of(path, key) == "chacha20"


def test_new_files_are_aegis_and_files_made_before_keep_working(
    filled: tuple[ServerThread, list[str]],
) -> None:
    server, markers = filled
    settings, data, key = at_rest(server)
    for name in ("logs.db", "auth.db"):
        assert cipher_of(data / name, key) == "aegis"
        as_before_aegis(data / name, key)
    # A server on the older files reads what they hold and adds to them, in their cipher.
    restarted = ServerThread(settings).start()
    try:
        with httpx.Client(base_url=restarted.url, headers=bearer(server.admin)) as client:
            later = "MARKER-after-the-upgrade"
            entry = {"service_name": "secret-svc", "message": later, "metadata": {"m": later}}
            assert client.post("/logs", json=entry).status_code == 201
    finally:
        restarted.stop()
    markers.append(later)
    assert cipher_of(data / "logs.db", key) == "chacha20"
    assert_markers_after_restart(server, markers)
    # The operator sees it, and what moves them on.
    stats = run_logsvc(settings, "store", "stats", "--json", "--data-dir", str(data))
    assert json.loads(stats.stdout)["encryption"] == {"logs.db": "chacha20", "auth.db": "chacha20"}
    table = run_logsvc(settings, "store", "stats", "--data-dir", str(data)).stdout
    assert "encryption: logs.db ChaCha20-Poly1305, auth.db ChaCha20-Poly1305" in table
    assert "`logsvc store rekey` (the server stopped) moves every file to AEGIS-256" in table
    # A re-encryption moves every file to AEGIS-256.
    assert run_logsvc(settings, "store", "rekey", "--data-dir", str(data)).returncode == 0
    new_key = store_key(settings)
    assert new_key is not None
    for name in ("logs.db", "auth.db"):
        assert cipher_of(data / name, new_key) == "aegis"
    stats = run_logsvc(settings, "store", "stats", "--json", "--data-dir", str(data))
    assert json.loads(stats.stdout)["encryption"] == {"logs.db": "aegis", "auth.db": "aegis"}
    assert_markers_after_restart(server, markers)


# A script's opening: the file (argv 1) opened as logsvc did before decision 48, with the key (argv 2, hex).
_OPENED_AS_BEFORE = """
import os, sys, apsw
conn = apsw.Connection(sys.argv[1])
conn.execute("PRAGMA cipher = 'chacha20'")
conn.execute("PRAGMA key = \\"x'" + sys.argv[2] + "'\\"")
"""


def _as_before(body: str) -> str:
    """The script ``body`` run on the file opened as before decision 48."""
    return _OPENED_AS_BEFORE + body


_KILLED_WRITER = _as_before("""conn.execute("PRAGMA journal_mode=WAL").fetchall()
conn.execute("PRAGMA wal_autocheckpoint=0")
conn.execute("CREATE TABLE t(n INTEGER)")
for n in range(100):
    conn.execute("INSERT INTO t VALUES (?)", (n,))
conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
for n in range(100, 200):
    conn.execute("INSERT INTO t VALUES (?)", (n,))
os.kill(os.getpid(), 9)
""")


@pytest.mark.parametrize("wal_index", ["kept", "lost"])
def test_a_file_made_before_recovers_its_wal_after_a_crash(tmp_path: Path, wal_index: str) -> None:
    """The first cipher tried fails on such a file; that attempt must leave its committed WAL frames (and
    a WAL index to rebuild) as they were for the cipher that reads it."""
    path, key = tmp_path / "old.db", secrets.token_bytes(32)
    killed = subprocess.run([sys.executable, "-c", _KILLED_WRITER, str(path), key.hex()], check=False)
    assert killed.returncode == -signal.SIGKILL
    assert path.with_name("old.db-wal").stat().st_size > 0
    if wal_index == "lost":
        path.with_name("old.db-shm").unlink()
    conn = connect(path, key)
    try:
        assert conn.execute("SELECT count(*), sum(n) FROM t").fetchall() == [(200, sum(range(200)))]
    finally:
        conn.close()
    with pytest.raises(ConfigError, match="cannot be read with the store's key"):
        connect(path, secrets.token_bytes(32))


_KILLED_IN_A_TRANSACTION = _as_before("""conn.execute("PRAGMA journal_mode=DELETE").fetchall()
conn.execute("CREATE TABLE t(n INTEGER, pad BLOB)")
with conn:
    for n in range(2000):
        conn.execute("INSERT INTO t VALUES (?, randomblob(500))", (n,))
conn.execute("PRAGMA cache_size=5")
conn.execute("BEGIN")
conn.execute("UPDATE t SET n = n + 1000000")
os.kill(os.getpid(), 9)
""")


def test_a_file_made_before_rolls_back_a_hot_journal(tmp_path: Path) -> None:
    """A process killed in a transaction of a file in rollback-journal mode (as `store rekey` puts it in)
    leaves a hot journal, which the next connection plays back. A cache of a few pages has spilled the
    transaction's first pages into the file, and the journal begins with one of them, not the first page:
    read with the other cipher, that page is reported as corruption (CorruptError), not as "not a
    database". Only the cipher of the file may roll the journal back."""
    path, key = tmp_path / "old.db", secrets.token_bytes(32)
    killed = subprocess.run(
        [sys.executable, "-c", _KILLED_IN_A_TRANSACTION, str(path), key.hex()], check=False
    )
    assert killed.returncode == -signal.SIGKILL
    journal = path.with_name("old.db-journal")
    assert journal.stat().st_size > 0
    conn = connect(path, key)
    try:
        assert conn.execute("SELECT count(*), sum(n) FROM t").fetchall() == [(2000, sum(range(2000)))]
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        conn.close()
    assert not journal.exists()
    assert cipher_of(path, key) == "chacha20"


# ``logsvc`` run in a process that reports the most memory it held: its own peak (VmHWM), which, unlike a
# child's ru_maxrss, does not start from the memory of the process that started it.
_PEAK_OF_LOGSVC = """
import runpy, sys
sys.argv[0] = "logsvc"
try:
    runpy.run_module("logsvc", run_name="__main__")
finally:
    with open("/proc/self/status") as status:
        print(next(line for line in status if line.startswith("VmHWM:")).split()[1], file=sys.stderr)
"""


def rekey_peak_rss(settings: Settings) -> int:
    """``logsvc store rekey`` run to its end; the most memory (RSS, bytes) its process held."""
    result = subprocess.run(
        [sys.executable, "-c", _PEAK_OF_LOGSVC, "store", "rekey", "--data-dir", settings.data_dir],
        capture_output=True,
        text=True,
        timeout=120,
        env=logsvc_environment(settings),
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return int(result.stderr.split()[-1]) * 1024


def test_rekey_to_aegis_does_not_hold_the_database_in_memory(filled: tuple[ServerThread, list[str]]) -> None:
    """AEGIS-256 reserves more bytes a page than ChaCha20-Poly1305, so moving a file made before decision
    48 to it is a VACUUM, which builds the new file in a temporary database: in memory by default, as
    large as the store. The same command on the same file already in AEGIS-256 (rewritten page by page)
    is the measure of what the process needs."""
    server, markers = filled
    settings, data, key = at_rest(server)
    as_before_aegis(data / "logs.db", key)
    grown = connect(data / "logs.db", key)
    try:
        grown.execute("CREATE TABLE filler(pad BLOB)")
        grown.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 80000) "
            "INSERT INTO filler SELECT randomblob(500) FROM n"
        )
    finally:
        grown.close()
    size = (data / "logs.db").stat().st_size
    assert size > 40 << 20
    moved = rekey_peak_rss(settings)
    assert cipher_of(data / "logs.db", store_key(settings) or b"") == "aegis"
    again = rekey_peak_rss(settings)
    assert moved - again < size / 4, f"{(moved - again) >> 20} MiB more to move a {size >> 20} MiB file"
    assert_markers_after_restart(server, markers)


def test_a_rekey_short_of_temporary_space_changes_nothing_and_says_why(
    filled: tuple[ServerThread, list[str]], small_disk: Path
) -> None:
    """Moving a file made before decision 48 to AEGIS-256 copies it through SQLite's temporary directory:
    with too little room there, the command names the problem and the store stays as it was."""
    server, markers = filled
    settings, data, key = at_rest(server)
    conn = connect(data / "logs.db", key)
    conn.execute("CREATE TABLE ballast(b BLOB)")
    conn.execute("INSERT INTO ballast VALUES (randomblob(5000000))")  # more than the 3 MB of small_disk
    conn.close()
    as_before_aegis(data / "logs.db", key)

    def rekey(**env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "logsvc", "store", "rekey", "--data-dir", str(data)],
            capture_output=True,
            text=True,
            timeout=120,
            env=logsvc_environment(settings) | env,
            check=False,
        )

    short = rekey(SQLITE_TMPDIR=str(small_disk))
    assert short.returncode == 2, short.stderr
    assert "needs free space" in short.stderr
    assert "Traceback" not in short.stderr
    assert store_key(settings) == key, "the keyring is as it was, no re-encryption pending"
    assert cipher_of(data / "logs.db", key) == "chacha20"
    assert_markers_after_restart(server, markers)
    assert rekey().returncode == 0
    new_key = store_key(settings)
    assert new_key is not None
    assert new_key != key
    assert cipher_of(data / "logs.db", new_key) == "aegis"
    assert_markers_after_restart(server, markers)
