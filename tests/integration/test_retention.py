"""Retention, deletion protection, purge and destroy, on real stores and servers."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from logsvc.errors import ConfigError
from logsvc.root import Root
from logsvc.settings import Settings, load_settings, settings_environment
from tests.conftest import ServerThread, bearer, eventually, make_settings, run_logsvc

DAY = 86_400


def fill(server: ServerThread, entries: list[dict[str, Any]]) -> None:
    with httpx.Client(base_url=server.url, headers=bearer(server.admin)) as client:
        assert client.post("/logs", json=entries).status_code == 201


def messages(server: ServerThread, **params: Any) -> set[str]:
    with httpx.Client(base_url=server.url, headers=bearer(server.admin)) as client:
        page = client.get("/logs", params={"limit": 1000, **params}).json()
    return {entry["message"] for entry in page["logs"]}


def aged(service: str, days: float, name: str) -> dict[str, Any]:
    return {"service_name": service, "message": f"{name} findme", "timestamp": time.time() - days * DAY}


def test_the_sweep_deletes_expired_entries_by_rule(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path / "data",
        retention_days=1,
        retention_by_service={"keep*": 0, "short*": 0.5},
        retention_sweep_seconds=0.1,
        deletion_protection=False,
    )
    server = ServerThread(settings).start()
    try:
        fill(
            server,
            [
                aged("web", 2, "web-old"),
                aged("web", 0.75, "web-mid"),
                aged("keep-audit", 30, "keep-ancient"),
                aged("short-debug", 0.75, "short-mid"),
                aged("short-debug", 0.1, "short-new"),
                *[aged("web", 3, f"bulk-{i}") for i in range(1200)],  # more than one delete batch
            ],
        )
        expected = {"web-mid findme", "keep-ancient findme", "short-new findme"}
        assert eventually(lambda: messages(server) == expected), messages(server)
        # The full-text index lost the deleted entries too.
        assert messages(server, q="findme") == expected
        assert messages(server, q="bulk") == set()
    finally:
        server.stop()


def test_shortened_retention_is_refused_while_protection_is_on(tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = ServerThread(make_settings(data)).start()
    fill(server, [aged("web", 2, "two days old"), aged("web", 0, "new")])
    server.stop()

    shortened = make_settings(data, retention_days=1)
    result = run_logsvc(shortened, "serve", "--port", "0")
    assert result.returncode == 2
    assert "deletion_protection is on" in result.stderr
    assert "retention of 1 days for every other service" in result.stderr
    assert "Traceback" not in result.stderr

    # A retention that deletes nothing the store holds is not a shortening that matters.
    assert asyncio.run(_check(make_settings(data, retention_days=3))) is None
    # With protection off it is applied, and then it stands: a later start does not ask again.
    allowed = make_settings(data, retention_days=1, deletion_protection=False, retention_sweep_seconds=0.1)
    server = ServerThread(allowed).start()
    try:
        assert eventually(lambda: messages(server) == {"new findme"}), messages(server)
    finally:
        server.stop()
    assert asyncio.run(_check(make_settings(data, retention_days=1))) is None


async def _check(settings: Settings) -> None:
    root = Root(settings)
    try:
        await root.retention().check()
    finally:
        await root.close()


@pytest.mark.parametrize("engine", ["sqlite", "tiered"])
def test_purge_and_destroy_respect_deletion_protection(tmp_path: Path, engine: str) -> None:
    data = tmp_path / "data"
    server = ServerThread(make_settings(data, store_engine=engine)).start()
    fill(server, [aged("payments", 0, "pay"), aged("web", 0, "web")])
    protected = make_settings(data, store_engine=engine)
    refused = run_logsvc(protected, "store", "purge", "--service", "payments")
    assert refused.returncode == 2
    assert "deletion_protection is on" in refused.stderr
    assert run_logsvc(protected, "store", "destroy").returncode == 2

    unprotected = make_settings(data, deletion_protection=False, store_engine=engine)
    bracket = run_logsvc(unprotected, "store", "purge", "--service", "pay[!x]*")
    assert bracket.returncode == 2
    assert "is not a service pattern" in bracket.stderr
    purged = run_logsvc(unprotected, "store", "purge", "--service", "pay*")
    assert purged.returncode == 0, purged.stderr
    assert "deleted 1 entries" in purged.stdout
    assert messages(server) == {"web findme"}
    busy = run_logsvc(unprotected, "store", "destroy")
    assert busy.returncode == 2
    assert "in use" in busy.stderr
    server.stop()
    assert run_logsvc(unprotected, "store", "destroy").returncode == 0
    assert not (data / ("logs.db" if engine == "sqlite" else "logs-v2")).exists()


def test_retention_settings_travel_through_the_environment() -> None:
    settings = load_settings(environ={}, overrides={"retention_by_service": {"a*": 2, "b": 0}})
    assert load_settings(environ=settings_environment(settings)).retention_by_service == {"a*": 2.0, "b": 0.0}
    with pytest.raises(ConfigError, match="JSON object"):
        load_settings(environ={"LOGSVC_RETENTION_BY_SERVICE": "a*=2"})


@pytest.mark.serial  # a latency bound
def test_a_large_sweep_does_not_hold_ingest_up(tmp_path: Path) -> None:
    """The server's sweep deletes in small transactions between ingest groups: while it removes 30,000
    entries, every single-entry write is still answered promptly (a loose bound: CI machines are noisy)."""
    settings = make_settings(
        tmp_path / "data", retention_days=1, deletion_protection=False, retention_sweep_seconds=0.5
    )
    server = ServerThread(settings).start()
    try:
        for _ in range(3):
            fill(server, [aged("web", 2, f"expired {i}") for i in range(10_000)])
        slowest = 0.0
        writes = 0
        deadline = time.monotonic() + 30
        with httpx.Client(base_url=server.url, headers=bearer(server.admin)) as client:
            while time.monotonic() < deadline:
                started = time.perf_counter()
                assert client.post("/logs", json={"service_name": "web", "message": "now"}).status_code == 201
                slowest = max(slowest, time.perf_counter() - started)
                writes += 1
                if (
                    writes % 50 == 0
                    and client.get("/logs", params={"q": "expired", "limit": 1}).json()["count"] == 0
                ):
                    break
        assert messages(server, q="expired") == set(), "the sweep did not finish"
        assert slowest < 1.0, f"a write waited {slowest:.2f} s behind the sweep"
    finally:
        server.stop()
