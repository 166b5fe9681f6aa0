"""The DynamoDB store's overview reads (decision 24): histograms and service counts made by reading the
items (DynamoDB keeps no counts that a retried, idempotent write would not double), and an entry's
neighbours in its service. Each takes ``run``, which runs one DynamoDB Query for the store."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from logsvc.domain.entries import entry_bytes
from logsvc.domain.queries import MAX_PAGE_BYTES
from logsvc.domain.stats import ServiceTotal, StatsQuery
from logsvc.errors import FieldError, ValidationFailed

__all__ = ["count_items", "nearest_items", "service_totals"]

Run = Callable[..., Awaitable[dict[str, Any]]]
_COUNTED_ATTRIBUTES = {"#sk": "sk", "#lvl": "lvl", "#svc": "svc", "#typ": "typ"}


async def count_items(
    run: Run,
    requests: list[dict[str, Any]],
    query: StatsQuery,
    accept: Callable[[dict[str, Any]], bool],
    limit: int,
) -> list[tuple[int, int | str, int]]:
    """``(bucket, key, count)`` of the items of the key ranges ``requests`` read that ``accept`` takes.
    Every range is read to its end, in parallel, projected to the attributes counted and eventually
    consistent (half the read cost); ValidationFailed once DynamoDB examined more than ``limit`` items
    (MAX_COUNTED but in tests)."""
    names = dict(_COUNTED_ATTRIBUTES)
    if query.filters.terms:
        names["#msg"] = "msg"
    key = "lvl" if query.by == "level" else "svc"
    counts: Counter[tuple[int, int | str]] = Counter()
    examined = 0
    over = False

    async def walk(request: dict[str, Any]) -> None:
        nonlocal examined, over
        request = {
            **request,
            "ProjectionExpression": ", ".join(names),
            "ExpressionAttributeNames": names,
            "ConsistentRead": False,
        }
        while not over:
            response = await run(**request)
            examined += response.get("ScannedCount", len(response["Items"]))
            if examined > limit:
                over = True
                raise ValidationFailed(
                    [
                        FieldError(
                            "since",
                            f"a histogram on DynamoDB reads the window's entries, at most {limit:,}; this "
                            "window holds more: narrow it (since, until or hours) or filter by service_name",
                        )
                    ]
                )
            for item in response["Items"]:
                if accept(item):
                    value: int | str = int(item["lvl"]["N"]) if key == "lvl" else item["svc"]["S"]
                    counts[(query.bucket_of(int(item["sk"]["S"][:19])), value)] += 1
            if "LastEvaluatedKey" not in response:
                return
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    # The first range over the bound fails the request; the others stop at their next page.
    await asyncio.gather(*(walk(request) for request in requests))
    return [(bucket, value, count) for (bucket, value), count in counts.items()]


async def service_totals(run: Run, table: str, shards: int, services: list[str]) -> list[ServiceTotal]:
    """The services holding items: each one's items counted (a COUNT query reads, and bills, every item of
    its partitions) and its newest event time (the first item of each partition, newest first)."""

    async def count(partition: str) -> int:
        request: dict[str, Any] = {
            "TableName": table,
            "KeyConditionExpression": "pk = :p",
            "ExpressionAttributeValues": {":p": {"S": partition}},
            "Select": "COUNT",
        }
        total = 0
        while True:
            response = await run(**request)
            total += int(response["Count"])
            if "LastEvaluatedKey" not in response:
                return total
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    async def newest(partition: str) -> int | None:
        response = await run(
            TableName=table,
            KeyConditionExpression="pk = :p",
            ExpressionAttributeValues={":p": {"S": partition}},
            ProjectionExpression="sk",
            ScanIndexForward=False,
            Limit=1,
            ConsistentRead=True,
        )
        return int(response["Items"][0]["sk"]["S"][:19]) if response["Items"] else None

    async def total(service: str) -> ServiceTotal:
        partitions = [f"{service}#{shard:02d}" for shard in range(shards)]
        counts = await asyncio.gather(*(count(partition) for partition in partitions))
        times = [ts for ts in await asyncio.gather(*(newest(p) for p in partitions)) if ts is not None]
        return ServiceTotal(service, sum(counts), max(times) if times else None)

    # The registry lists every service ever written; one whose entries all expired holds none.
    return [found for found in await asyncio.gather(*map(total, services)) if found.count]


async def nearest_items(
    run: Run, table: str, shards: int, service: str, sort_key: str, count: int, *, older: bool
) -> list[dict[str, Any]]:
    """Up to ``count`` items of the service just older (or newer) than ``sort_key``, nearest first: each
    shard read nearest first, until it gave ``count`` or passed MAX_PAGE_BYTES (``fit_context`` takes
    nothing beyond that point of any shard), then merged."""
    if count == 0:
        return []

    async def from_shard(shard: int) -> list[dict[str, Any]]:
        request: dict[str, Any] = {
            "TableName": table,
            "KeyConditionExpression": f"pk = :p AND sk {'<' if older else '>'} :k",
            "ExpressionAttributeValues": {":p": {"S": f"{service}#{shard:02d}"}, ":k": {"S": sort_key}},
            "ScanIndexForward": not older,
            "ConsistentRead": True,
            "Limit": count,
        }
        items: list[dict[str, Any]] = []
        size = 0
        while True:
            response = await run(**request)
            for item in response["Items"]:
                items.append(item)
                size += entry_bytes(item["msg"]["S"], item["meta"]["S"] if "meta" in item else None)
                if len(items) == count or size > MAX_PAGE_BYTES:
                    return items
            if "LastEvaluatedKey" not in response:
                return items
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    found = [item for items in await asyncio.gather(*map(from_shard, range(shards))) for item in items]
    return sorted(found, key=lambda item: str(item["sk"]["S"]), reverse=older)[:count]
