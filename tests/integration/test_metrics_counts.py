"""The request metrics count every request exactly, whether counted in the process (one worker) or in
prometheus_client's files (several workers), read back with prometheus_client's own parser; an entry
re-sent with its log_id is counted as acknowledged again, and as stored once."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import msgspec
import pytest
from prometheus_client.parser import text_string_to_metric_families

from logsvc.datadir import DataDir
from logsvc.settings import Settings
from tests.conftest import ServerProcess, ServerThread, bearer, eventually, make_settings

_POSTS = 120
_INVALID = 7
_NOT_FOUND = 3


def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def _load(url: str, headers: dict[str, str]) -> None:
    """_POSTS single entries and a batch of 3 (accepted), _INVALID refused, _NOT_FOUND unknown paths, from
    8 clients at once, each request on a connection of its own."""

    def post(i: int) -> int:
        body = [{"message": f"count {i}"}] * 3 if i == 0 else {"message": f"count {i}"}
        return httpx.post(f"{url}/logs", json=body, headers=headers, timeout=30).status_code

    def invalid(i: int) -> int:
        return httpx.post(f"{url}/logs", json={"level": 7}, headers=headers, timeout=30).status_code

    def missing(i: int) -> int:
        return httpx.get(f"{url}/nowhere/{i}", headers=headers, timeout=30).status_code

    with ThreadPoolExecutor(8) as pool:
        statuses = [
            *pool.map(post, range(_POSTS)),
            *pool.map(invalid, range(_INVALID)),
            *pool.map(missing, range(_NOT_FOUND)),
        ]
    assert statuses == [201] * _POSTS + [400] * _INVALID + [404] * _NOT_FOUND


def _check(text: str) -> None:
    samples = _samples(text)
    requests = "logsvc_http_requests_total"
    assert _value(samples, requests, method="POST", route="/logs", status="201") == _POSTS
    assert _value(samples, requests, method="POST", route="/logs", status="400") == _INVALID
    assert _value(samples, requests, method="GET", route="unmatched", status="404") == _NOT_FOUND
    latency = "logsvc_http_request_duration_seconds"
    route = {"method": "POST", "route": "/logs"}
    count = _value(samples, f"{latency}_count", **route)
    assert count == _POSTS + _INVALID
    buckets = [
        (float(dict(labels)["le"]), value)
        for (name, labels), value in samples.items()
        if name == f"{latency}_bucket" and route.items() <= dict(labels).items()
    ]
    assert len(buckets) == 14
    cumulative = [value for _, value in sorted(buckets)]
    assert cumulative == sorted(cumulative)
    assert cumulative[-1] == count
    assert 0 < _value(samples, f"{latency}_sum", **route) < count * 10
    # One batch of 3, the rest one entry each; the refused ones are counted apart.
    assert _value(samples, "logsvc_entries_ingested_total") == _POSTS + 2
    assert _value(samples, "logsvc_entries_rejected_total") == _INVALID
    # Counted by the writer: with several workers, the one they share in the supervisor process.
    assert _value(samples, "logsvc_store_write_batch_entries_sum") == _POSTS + 2
    # Each of those commits timed, in one bucket each (how long they took is the benchmarks' business: a
    # loaded machine may stall one).
    commits = _value(samples, "logsvc_store_write_batch_entries_count")
    duration = "logsvc_store_commit_duration_seconds"
    assert 0 < commits == _value(samples, f"{duration}_count")
    assert _value(samples, f"{duration}_bucket", le="+Inf") == commits
    assert _value(samples, f"{duration}_sum") > 0


def _metrics_after(settings: Settings, load: Callable[[str, dict[str, str]], None]) -> str:
    """``/metrics`` of a one-process server once ``load`` (given its URL and the admin's headers) ran."""
    server = ServerThread(settings).start()
    try:
        load(server.url, bearer(server.admin))
        return httpx.get(f"{server.url}/metrics", headers=bearer(server.admin), timeout=10).text
    finally:
        server.stop()


def test_one_worker_counts_every_request(tmp_path: Path) -> None:
    _check(_metrics_after(make_settings(tmp_path / "data"), _load))


def _published_all(data: Path) -> bool:
    """Whether the workers' files hold every request: each worker writes its request counts every second
    (the other metrics are in prometheus_client's files at once)."""
    counts: Counter[tuple[str, str, int]] = Counter()
    for path in DataDir(data).metrics.glob("counted_v1_*.json"):
        for method, route, status, count, _ in msgspec.json.decode(path.read_bytes())[0]:
            counts[(method, route, status)] += count
    expected = {
        ("POST", "/logs", 201): _POSTS,
        ("POST", "/logs", 400): _INVALID,
        ("GET", "unmatched", 404): _NOT_FOUND,
    }
    return all(counts[key] == count for key, count in expected.items())


def test_two_workers_count_every_request(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", "--workers", "2")
    try:
        server.start()
        _load(server.url, server.headers)
        # Each worker answers some scrapes (new connections are spread over them): each sums all workers,
        # the other workers' request counts as they wrote them last.
        assert eventually(lambda: _published_all(server.data_dir), seconds=30)
        for _ in range(4):
            _check(httpx.get(f"{server.url}/metrics", headers=server.headers, timeout=10).text)
    finally:
        server.kill()


def _resend(url: str, headers: dict[str, str]) -> None:
    """An entry sent three times with its log_id (a client's retries after lost answers), the third time in
    a batch with a new entry; one request after another, so each is a store transaction of its own."""
    again = {"log_id": str(uuid.uuid4()), "service_name": "retried", "message": "sent again"}
    new = {"service_name": "retried", "message": "new"}
    for body in (again, again, [again, new]):
        answer = httpx.post(f"{url}/logs", json=body, headers=headers, timeout=30)
        assert answer.status_code == 201, answer.text
    held = httpx.get(f"{url}/logs", params={"service_name": "retried"}, headers=headers, timeout=30)
    assert sorted(e["message"] for e in held.json()["logs"]) == ["new", "sent again"]


def _acknowledged(url: str, headers: dict[str, str]) -> float:
    text = httpx.get(f"{url}/metrics", headers=headers, timeout=10).text
    return _value(_samples(text), "logsvc_entries_ingested_total")


def _check_resent(text: str) -> None:
    samples = _samples(text)
    assert _value(samples, "logsvc_entries_ingested_total") == 4  # every entry of every 201
    # Two entries stored, in three transactions: the second stored none, the third only the new entry.
    assert _value(samples, "logsvc_store_write_batch_entries_sum") == 2
    assert _value(samples, "logsvc_store_write_batch_entries_count") == 3
    assert _value(samples, "logsvc_store_write_batch_entries_bucket", le="1.0") == 3
    assert _value(samples, "logsvc_store_commit_duration_seconds_count") == 3


@pytest.mark.parametrize("engine", ["sqlite", "tiered"])
def test_one_worker_counts_a_resent_entry_as_stored_once(tmp_path: Path, engine: str) -> None:
    _check_resent(_metrics_after(make_settings(tmp_path / "data", store_engine=engine), _resend))


def test_the_shared_writer_counts_a_resent_entry_as_stored_once(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", "--workers", "2")
    try:
        server.start()
        _resend(server.url, server.headers)
        # The stored entries are counted by the writer the workers share, in the supervisor process; the
        # acknowledged ones by each worker, written to its file every second.
        assert eventually(lambda: _acknowledged(server.url, server.headers) == 4, seconds=30)
        for _ in range(4):  # scrapes answered by either worker
            _check_resent(httpx.get(f"{server.url}/metrics", headers=server.headers, timeout=10).text)
    finally:
        server.kill()
