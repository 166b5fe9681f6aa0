"""What a client can make the server spend before it is refused: memory, time and connections, measured on
a real ``logsvc serve`` process (its RSS read from /proc)."""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from logsvc.auth.policy import Role
from tests.conftest import ServerProcess, bearer, make_key, make_settings

MB = 1024 * 1024
# 32 MiB - 1 byte once inflated: just under max_decompressed_bytes, about 32 KB as sent.
BOMB_ENTRIES = 11_184_810
JSON_BOMB = gzip.compress(b"[" + b"{}," * (BOMB_ENTRIES - 1) + b"{}]")
NDJSON_BOMB = gzip.compress(b"{}\n" * BOMB_ENTRIES)


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for process {pid}")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[ServerProcess]:
    server = ServerProcess(tmp_path / "data").start()
    yield server
    server.kill()


class TestGzipBombs:
    def post_bomb(self, server: ServerProcess, headers: dict[str, str], ndjson: bool) -> httpx.Response:
        content_type = "application/x-ndjson" if ndjson else "application/json"
        return httpx.post(
            f"{server.url}/logs",
            content=NDJSON_BOMB if ndjson else JSON_BOMB,
            headers={**headers, "Content-Type": content_type, "Content-Encoding": "gzip"},
            timeout=60,
        )

    def test_bombs_are_refused_naming_the_limit_in_bounded_memory_while_healthz_answers(
        self, served: ServerProcess
    ) -> None:
        assert len(JSON_BOMB) < 64 * 1024
        assert len(NDJSON_BOMB) < 64 * 1024
        key = make_key(make_settings(served.data_dir), Role.INGEST, services=("app*",))
        assert served.proc is not None
        pid = served.proc.pid
        small = httpx.post(
            f"{served.url}/logs", json={"service_name": "app", "message": "warm"}, headers=bearer(key)
        )
        assert small.status_code == 201
        baseline = rss_bytes(pid)

        answers: list[httpx.Response] = []
        peak = [baseline]

        def attack(ndjson: bool) -> None:
            for _ in range(3):
                answers.append(self.post_bomb(served, bearer(key), ndjson))

        attackers = [threading.Thread(target=attack, args=(n,)) for n in (False, True, False)]
        for thread in attackers:
            thread.start()
        latencies = []
        with httpx.Client(base_url=served.url, timeout=30) as probe:
            while any(thread.is_alive() for thread in attackers):
                started = time.perf_counter()
                assert probe.get("/healthz").status_code == 200
                latencies.append(time.perf_counter() - started)
                peak[0] = max(peak[0], rss_bytes(pid))
                time.sleep(0.02)
        for thread in attackers:
            thread.join()

        assert len(answers) == 9
        for answer in answers:
            problem = answer.json()
            assert (answer.status_code, problem["code"]) in {
                (413, "payload_too_large"),
                (400, "validation_error"),
            }
            assert "a batch holds at most 10000 entries" in problem["detail"]
        assert len(latencies) >= 5
        assert max(latencies) < 0.5, f"/healthz took up to {max(latencies):.2f} s during the bombs"
        grown = (max(peak[0], rss_bytes(pid)) - baseline) / MB
        assert grown < 200, f"the server grew by {grown:.0f} MB"
