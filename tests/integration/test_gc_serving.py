"""A serving process keeps Python's garbage collector out of the way of its requests (decision 49): young
objects are collected every few hundred requests, not every few dozen. Read from the python_gc_* metrics of
a ``logsvc serve``, as an operator would. (What the freeze of the startup heap saves, the time of each full
collection, is measured by the benchmarks, not here: a test cannot time it reliably.)"""

from __future__ import annotations

import asyncio

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ServerProcess

# As many requests in flight as a busy server has: what they hold at once is what the young generation fills.
_CONNECTIONS = 64
_POSTS_EACH = 40


def _collections(server: ServerProcess) -> dict[str, float]:
    """Collections so far, by generation."""
    text = httpx.get(f"{server.url}/metrics", headers=server.headers, timeout=10).text
    return {
        sample.labels["generation"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "python_gc_collections_total"
    }


async def _post_many(server: ServerProcess) -> list[int]:
    limits = httpx.Limits(max_connections=_CONNECTIONS)
    async with httpx.AsyncClient(
        base_url=server.url, headers=server.headers, timeout=60, limits=limits
    ) as client:

        async def one_connection(number: int) -> list[int]:
            return [
                (await client.post("/logs", json={"message": f"connection {number} entry {i}"})).status_code
                for i in range(_POSTS_EACH)
            ]

        answers = await asyncio.gather(*(one_connection(n) for n in range(_CONNECTIONS)))
    return [status for statuses in answers for status in statuses]


def test_requests_rarely_wake_the_collector(server_process: ServerProcess) -> None:
    server = server_process.start()
    before = _collections(server)
    assert set(before) == {"0", "1", "2"}
    assert asyncio.run(_post_many(server)) == [201] * (_CONNECTIONS * _POSTS_EACH)
    after = _collections(server)
    # With Python's defaults these 2,560 POSTs (from one Python client: a few in flight at a time) collected
    # the young generation 7 times; under wrk's 64 connections, every 30-odd requests.
    assert after["0"] - before["0"] <= 2
