"""The server on the tiered store (storage v2, decision 33): chosen by a setting, a flag or a variable;
entries posted over HTTP are read back over HTTP, also once compacted into the cold file; the compactor
process runs beside the server, is restarted when it dies, and ends with the server, even on SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import uuid
from pathlib import Path

import httpx
import pytest

from logsvc.crypto import store_key
from logsvc.errors import ConfigError
from logsvc.settings import load_settings
from logsvc.storage.open import open_store
from logsvc.storage.tiers import ColdFile, HotFile
from logsvc.store_url import tiered_path
from tests.conftest import ServerProcess, ServerThread, bearer, eventually, make_settings


def post(client: httpx.Client, batch: list[dict[str, object]]) -> httpx.Response:
    return client.post("/logs", content=json.dumps(batch), headers={"Content-Type": "application/json"})


def every_entry(client: httpx.Client, **params: object) -> list[dict[str, object]]:
    """Every page of GET /logs, newest first."""
    found: list[dict[str, object]] = []
    cursor = None
    while True:
        page = client.get("/logs", params={"limit": 1000, **params, **({"cursor": cursor} if cursor else {})})
        assert page.status_code == 200, page.text
        body = page.json()
        found += body["logs"]
        cursor = body.get("next_cursor")
        if not cursor:
            return found


def children(pid: int) -> set[int]:
    """The processes ``pid`` started (Linux)."""
    tasks = Path(f"/proc/{pid}/task")
    found: set[int] = set()
    for task in tasks.iterdir() if tasks.exists() else []:
        found.update(int(child) for child in (task / "children").read_text().split())
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited


def test_the_engine_is_chosen_by_setting_and_the_url_names_a_directory(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert make_settings(data).store_url == f"sqlite:///{data.resolve()}/logs.db"
    tiered = make_settings(data, store_engine="tiered")
    assert tiered.store_url == f"tiered:///{data.resolve()}/logs-v2"
    assert tiered_path(tiered.store_url) == data.resolve() / "logs-v2"
    assert tiered_path("tiered:///relative/dir") == Path("relative/dir")
    from_environment = load_settings(environ={"LOGSVC_STORE_ENGINE": "tiered", "LOGSVC_DATA_DIR": str(data)})
    assert from_environment.store_url == tiered.store_url
    with pytest.raises(ConfigError, match="store_engine"):
        load_settings(environ={"LOGSVC_STORE_ENGINE": "duckdb"})
    with pytest.raises(ConfigError, match="tiered:///DIR"):
        make_settings(data, store_engine="tiered", store="sqlite:///x.db")
    with pytest.raises(ConfigError, match=r"tiered:///relative/dir"):
        tiered_path("tiered://host/dir")
    with pytest.raises(ConfigError, match="generation_rows is a number"):
        open_store(f"tiered:///{tmp_path}/v2?generation_rows=10")
    with pytest.raises(ConfigError, match="unknown option 'rows'"):
        open_store(f"tiered:///{tmp_path}/v2?rows=100")


def test_entries_posted_are_read_back_and_the_compactor_ends_with_the_server(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path / "data", store=f"tiered:///{tmp_path / 'data' / 'v2'}?generation_rows=200"
    )
    server = ServerThread(settings).start()
    sent = [
        {"log_id": str(uuid.uuid4()), "service_name": f"svc-{i % 3}", "message": f"entry {i} of the test"}
        for i in range(1500)
    ]
    try:
        with httpx.Client(base_url=server.url, headers=bearer(server.admin), timeout=30) as client:
            for first in range(0, len(sent), 250):
                assert post(client, sent[first : first + 250]).status_code == 201
            assert post(client, sent[:250]).status_code == 201  # a retried batch is stored once
            # The compactor moves sealed generations into the cold file while the server serves.
            key = store_key(settings)
            cold = ColdFile(tmp_path / "data" / "v2" / "cold.db", key)
            try:
                assert eventually(lambda: sum(1 for _ in cold.rows()) >= 1200, 60)
            finally:
                cold.close()
            got = every_entry(client)
            assert sorted(str(e["log_id"]) for e in got) == sorted(str(e["log_id"]) for e in sent)
            assert len(every_entry(client, q="entry 7")) == 1
            assert len(every_entry(client, service_name="svc-1")) == 500
            one = client.get(f"/logs/{sent[3]['log_id']}")
            assert one.status_code == 200
            assert one.json()["message"] == "entry 3 of the test"
            services = client.get("/services").json()
            assert sorted((s["service_name"], s["count"]) for s in services["services"]) == [
                ("svc-0", 500),
                ("svc-1", 500),
                ("svc-2", 500),
            ]
            (compactor,) = [pid for pid in children(os.getpid()) if "tiered_compactor" in _cmdline(pid)]
            # Once the writes stop, the compactor gives the hot file's free pages back and empties both
            # WALs (decision 38); nothing is lost by it.
            store = tmp_path / "data" / "v2"
            assert eventually(lambda: wal_bytes(store / "hot.db") == wal_bytes(store / "cold.db") == 0, 30)
            hot = HotFile(store / "hot.db", key)
            try:
                assert hot.connection.execute("PRAGMA freelist_count").fetchone() == (0,)
            finally:
                hot.close()
            got = every_entry(client)
            assert sorted(str(e["log_id"]) for e in got) == sorted(str(e["log_id"]) for e in sent)
    finally:
        server.stop()
    assert eventually(lambda: not alive(compactor), 30)


def wal_bytes(database: Path) -> int:
    wal = database.with_name(f"{database.name}-wal")
    return wal.stat().st_size if wal.exists() else 0


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except FileNotFoundError:
        return ""


def compactor_of(server: ServerProcess) -> int | None:
    assert server.proc is not None
    found = [pid for pid in children(server.proc.pid) if "tiered_compactor" in _cmdline(pid)]
    return found[0] if found else None


def test_a_killed_compactor_is_restarted_and_a_killed_server_takes_it_along(tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = ServerProcess(
        data, "--store-engine", "tiered", "--store", f"tiered:///{data / 'logs-v2'}?generation_rows=100"
    ).start()
    try:
        with httpx.Client(base_url=server.url, headers=server.headers, timeout=30) as client:
            assert eventually(lambda: compactor_of(server) is not None, 30)
            first = compactor_of(server)
            assert first is not None
            os.kill(first, signal.SIGKILL)
            assert eventually(lambda: compactor_of(server) not in (None, first), 30)
            sent = [{"log_id": str(uuid.uuid4()), "message": f"after the restart {i}"} for i in range(450)]
            assert post(client, sent).status_code == 201
            assert {str(e["log_id"]) for e in every_entry(client)} == {str(e["log_id"]) for e in sent}
            second = compactor_of(server)
            assert second is not None
        assert server.proc is not None
        # The server alone is SIGKILLed (not its process group): its compactor sees its pipe close.
        os.kill(server.proc.pid, signal.SIGKILL)
        assert eventually(lambda: not alive(second), 30)
    finally:
        server.kill()
