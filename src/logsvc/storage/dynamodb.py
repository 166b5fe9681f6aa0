"""The DynamoDB adapter: many writers and readers on one table, with no hot partition.

Keys (decision 11):

- base table: ``pk = service#shard`` (shard = hash(log_id) mod N), ``sk = ts(µs, 19 digits)#log_id``;
- GSI ``by_time``: ``gpk = day#shard``, ``sk``; serves the newest entries across every service;
- GSI ``by_id``: ``id = log_id`` (keys only), for ``GET /logs/{id}``;
- GSI ``by_arrival``: ``apk = hour received#shard``, ``ask = received(µs)#log_id``: what arrived after a
  point, for the tail (decision 23);
- registry items ``#service``/``#day`` list the services and days that hold entries, so a read never scans.

A read merges N (or services x N) key ranges newest first. Reads on the base table are strongly consistent;
the two GSIs are eventually consistent (a just-acknowledged entry can be missing from ``recent`` without a
service filter, or from a get by id, for a moment).
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from logsvc.domain.context import Context, fit_context
from logsvc.domain.cursors import Position
from logsvc.domain.entries import LogEntry, NewEntry, entry_bytes
from logsvc.domain.queries import MAX_PAGE_BYTES, Page, Query, admits
from logsvc.domain.retention import RetentionRule
from logsvc.domain.stats import MAX_COUNTED, ServiceTotal, StatsQuery
from logsvc.domain.timestamps import DAY_US
from logsvc.errors import ConfigError, FieldError, StoreUnavailable, ValidationFailed
from logsvc.scopes import covers
from logsvc.storage.dynamodb_items import (
    HIGHEST,
    HOUR_US,
    LOWEST,
    arrival_key,
    day_key,
    item_size,
    key_bounds,
    shard_of,
    sort_key,
    to_entry,
    to_page,
)
from logsvc.storage.dynamodb_stats import count_items, nearest_items, service_totals
from logsvc.storage.dynamodb_table import (
    CONFIG_KEY,
    DEFAULT_SHARDS,
    client_for,
    error_reason,
    parse_url,
)
from logsvc.storage.port import Arrival, Arrivals

__all__ = ["DynamoDBStore"]

log = logging.getLogger("logsvc.storage.dynamodb")

MAX_ITEM_BYTES = 400 * 1024
# A read examines at most this many items before it answers with what it found and a cursor to go on.
MAX_EXAMINED = 10_000
_QUERY_COST = 40
# Merging more key ranges than this costs more than filtering the time index by service pattern.
MAX_SCOPED_RANGES = 64
_BATCH = 25
_MAX_REMEMBERED = 100_000
_MAX_WRITE_ATTEMPTS = 8
_BACKOFF_BASE = 0.05
_BACKOFF_CAP = 2.0
_LOG_ID_HEX = re.compile(r"[0-9a-f]{32}")
# How far back a tail may resume on this store: each hour costs a query per shard.
_RESUME_HOURS = 24
# An entry reaches the tail this long after it arrived: the time its write and the arrival index take to
# be seen (decision 23); an entry seen later than that is not given to a tail that passed its arrival.
TAIL_DELAY_SECONDS = 2.0

R = TypeVar("R")


class _Budget:
    """What one read may still spend: items DynamoDB examines, and bytes of the page it answers."""

    def __init__(self, examine_limit: int) -> None:
        self.examine_limit = examine_limit
        self.examined = 0
        self.page_bytes = 0


class _Range:
    """One key range read newest first, a page at a time; ``head`` is its newest unread item."""

    def __init__(self, request: dict[str, Any], page: int, high: str) -> None:
        self.request = request
        self.page = page
        self.high = high  # exclusive upper end of the range
        self.started = False
        self.items: list[dict[str, Any]] = []
        self.position = 0
        self.last_key: dict[str, Any] | None = None
        self.done = False

    @property
    def empty(self) -> bool:
        return self.position >= len(self.items)

    @property
    def head(self) -> str:
        return str(self.items[self.position]["sk"]["S"])

    def bound(self) -> str | None:
        """Exclusive upper bound of what this range has not yet shown; None when it is read to the end."""
        if not self.started:
            return self.high
        if not self.empty:
            return self.head + HIGHEST  # the head itself is not yet consumed
        if self.done or self.last_key is None:
            return None
        return str(self.last_key["sk"]["S"])


class DynamoDBStore:
    """The LogStore port on one DynamoDB table (see the module docstring for the keys)."""

    def __init__(
        self,
        url: str,
        *,
        retention: Sequence[RetentionRule] = (),
        threads: int = 16,
        client: Any = None,
        examine_limit: int = MAX_EXAMINED,
        count_limit: int = MAX_COUNTED,
    ) -> None:
        self.url = parse_url(url)
        self.table = self.url.table
        self._client = client or client_for(self.url, threads)
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="logsvc-dynamodb")
        self._retention = tuple(retention)
        self._examine_limit = examine_limit
        self._count_limit = count_limit
        self._expiry_days: dict[str, float | None] = {}
        self._registered: set[tuple[str, str]] = set()
        self._registered_lock = threading.Lock()
        self.shards = self._configured_shards()

    def _configured_shards(self) -> int:
        """The table's shard count: fixed for its life, since a read must query every shard ever written."""
        try:
            item = self._client.get_item(TableName=self.table, Key=CONFIG_KEY, ConsistentRead=True).get(
                "Item"
            )
        except (ClientError, BotoCoreError) as exc:
            raise ConfigError(f"cannot open DynamoDB table {self.table}: {error_reason(exc)}") from None
        if item is None:
            return self.url.shards or DEFAULT_SHARDS
        recorded = int(item["shards"]["N"])
        if self.url.shards is not None and self.url.shards != recorded:
            raise ConfigError(
                f"table {self.table} was created with {recorded} shards; the store URL says "
                f"{self.url.shards}. The shard count cannot change: remove shards= from the URL or make it "
                f"{recorded}"
            )
        return recorded

    async def _call(self, function: Callable[..., R], /, **kwargs: Any) -> R:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool, lambda: function(**kwargs))
        except (ClientError, BotoCoreError) as exc:
            raise _translate(exc, self.table) from None

    # ---- writes ------------------------------------------------------------------------------------------

    async def append(self, entries: Sequence[NewEntry]) -> None:
        """Registry items first, then the entries in parallel chunks of 25: an entry is never stored
        where no read can find it. A failed chunk fails the request, while other chunks may be stored;
        the client's retry rewrites them as the same items."""
        items = self._items(entries)
        registry = self._pending_registry(entries)
        if registry:
            await self._put([{"pk": {"S": f"#{kind}"}, "sk": {"S": value}} for kind, value in registry])
            with self._registered_lock:
                if len(self._registered) > _MAX_REMEMBERED:  # a bound on made-up service names
                    self._registered.clear()
                self._registered |= registry
        await asyncio.gather(*(self._put(items[i : i + _BATCH]) for i in range(0, len(items), _BATCH)))

    def _items(self, entries: Sequence[NewEntry]) -> list[dict[str, Any]]:
        """Every entry as an item, refusing any over DynamoDB's item size."""
        items: list[dict[str, Any]] = []
        seen: set[bytes] = set()
        errors: list[FieldError] = []
        for index, entry in enumerate(entries):
            if entry.log_id in seen:  # the first of two same-id entries wins, as a retry would
                continue
            seen.add(entry.log_id)
            item = self._item(entry)
            size = item_size(item)
            if size > MAX_ITEM_BYTES:
                errors.append(
                    FieldError(
                        "message",
                        f"the entry is {size} bytes as a DynamoDB item; this store takes at most "
                        f"{MAX_ITEM_BYTES} bytes per entry (message and metadata together)",
                        index if len(entries) > 1 else None,
                    )
                )
            items.append(item)
        if errors:
            raise ValidationFailed(errors)
        return items

    def _pending_registry(self, entries: Sequence[NewEntry]) -> set[tuple[str, str]]:
        wanted = {("service", e.service_name) for e in entries} | {("day", day_key(e.ts_us)) for e in entries}
        with self._registered_lock:
            return wanted - self._registered

    def _item(self, entry: NewEntry) -> dict[str, Any]:
        hex_id = entry.log_id.hex()
        shard = shard_of(entry.log_id, self.shards)
        item: dict[str, Any] = {
            "pk": {"S": f"{entry.service_name}#{shard:02d}"},
            "sk": {"S": sort_key(entry.ts_us, hex_id)},
            "gpk": {"S": f"{day_key(entry.ts_us)}#{shard:02d}"},
            "apk": {"S": f"{entry.received_us // HOUR_US:06d}#{shard:02d}"},
            "ask": {"S": arrival_key(entry.received_us, hex_id)},
            "id": {"S": hex_id},
            "svc": {"S": entry.service_name},
            "lvl": {"N": str(int(entry.level))},
            "typ": {"S": entry.log_type},
            "msg": {"S": entry.message},
            "rcv": {"N": str(entry.received_us)},
        }
        if entry.metadata is not None:
            item["meta"] = {"S": entry.metadata}
        days = self._days_kept(entry.service_name)
        if days is not None:
            item["expires_at"] = {"N": str((entry.ts_us + round(days * DAY_US)) // 1_000_000)}
        return item

    def _days_kept(self, service: str) -> float | None:
        """Days the first matching retention rule keeps this service (None: forever), for the TTL."""
        if service not in self._expiry_days:
            if len(self._expiry_days) > _MAX_REMEMBERED:
                self._expiry_days.clear()
            self._expiry_days[service] = next(
                (rule.days for rule in self._retention if _in_scope(service, rule.include, rule.exclude)),
                None,
            )
        return self._expiry_days[service]

    async def _put(self, items: list[dict[str, Any]]) -> None:
        await self._batch({self.table: [{"PutRequest": {"Item": item}} for item in items]})

    async def _batch(self, requests: dict[str, list[dict[str, Any]]]) -> None:
        """One BatchWriteItem, retrying what DynamoDB left unprocessed with capped, jittered backoff."""
        for attempt in range(_MAX_WRITE_ATTEMPTS):
            if attempt:
                # Full jitter: writers that were throttled together do not come back together.
                pause = random.uniform(0, min(_BACKOFF_CAP, _BACKOFF_BASE * 2**attempt))  # noqa: S311
                await asyncio.sleep(pause)
            response = await self._call(self._client.batch_write_item, RequestItems=requests)
            requests = response.get("UnprocessedItems") or {}
            if not requests:
                return
        left = sum(len(r) for r in requests.values())
        raise StoreUnavailable(
            f"DynamoDB left {left} writes unprocessed after {_MAX_WRITE_ATTEMPTS} attempts (throttled); "
            "nothing was acknowledged: retry the request, retries are idempotent"
        )

    async def check_writable(self) -> None:
        """A real write, so that a role without PutItem or a deleted table is not reported ready."""
        item = {"pk": {"S": "#ready"}, "sk": {"S": "#ready"}, "at": {"N": str(time.time_ns() // 1000)}}
        await self._call(self._client.put_item, TableName=self.table, Item=item)

    # ---- reads -------------------------------------------------------------------------------------------

    async def get(self, log_id: bytes) -> list[LogEntry]:
        found = await self._call(
            self._client.query,
            TableName=self.table,
            IndexName="by_id",
            KeyConditionExpression="id = :id",
            ExpressionAttributeValues={":id": {"S": log_id.hex()}},
        )
        entries = []
        for index_item in found["Items"]:  # one per service that used this id, at most a few
            key = {"pk": index_item["pk"], "sk": index_item["sk"]}
            item = await self._call(self._client.get_item, TableName=self.table, Key=key, ConsistentRead=True)
            if "Item" in item:
                entries.append(to_entry(item["Item"]))
        return sorted(entries, key=lambda entry: entry.timestamp, reverse=True)

    async def recent(self, query: Query) -> Page:
        if query.levels == ():
            return Page(count=0, logs=[], next_cursor=None)
        low, high = key_bounds(query)
        if high <= low:  # e.g. a cursor older than a moving `since`: DynamoDB refuses such a BETWEEN
            return Page(count=0, logs=[], next_cursor=None)
        want = query.limit + 1
        found: list[dict[str, Any]] = []
        budget = _Budget(self._examine_limit)
        groups = await self._range_groups(query, low, high, want)
        for ranges in groups:
            cursor = await self._merge(ranges, query, high, want, found, budget)
            if len(found) == want:
                break
            if cursor is not None:  # out of budget: answer what was found, and where to go on
                return to_page(found, query.limit, cursor)
        return to_page(found, query.limit, None)

    async def _range_groups(self, query: Query, low: str, high: str, want: int) -> list[list[_Range]]:
        """The key ranges a read walks, in groups read one after the other (newest day first); when the
        scope names too many services to merge, the time index, filtered by the scope in ``_matches``."""
        if query.service_name is not None:
            return [self._service_ranges([query.service_name], low, high, want)]
        if query.service_patterns:
            services = await self._services(query.service_patterns, ())
            if len(services) * self.shards <= MAX_SCOPED_RANGES:
                return [self._service_ranges(services, low, high, want)]
        return await self._day_groups(low, high, want)

    async def histogram(self, query: StatsQuery) -> list[tuple[int, int | str, int]]:
        """Counted from the items of the window (no counters: see ``dynamodb_stats``)."""
        filters = query.filters
        if filters.levels == ():
            return []
        low, high = f"{query.since_us:019d}", sort_key(query.until_us, "")
        groups = await self._range_groups(filters, low, high, 1)
        return await count_items(
            self._query,
            [one.request for ranges in groups for one in ranges],
            query,
            lambda item: _matches(item, filters),
            self._count_limit,
        )

    async def services(
        self, patterns: tuple[str, ...], *, after: str | None = None, limit: int | None = None
    ) -> list[ServiceTotal]:
        names = sorted(name for name in await self._services(patterns, ()) if after is None or name > after)
        want = len(names) if limit is None else limit
        found: list[ServiceTotal] = []
        # The registry keeps services whose entries all expired (service_totals leaves them out): count the
        # next names until the page is full, never more services than it still needs.
        while names and len(found) < want:
            take = want - len(found)
            found += await service_totals(self._query, self.table, self.shards, names[:take])
            names = names[take:]
        return found

    async def context(self, log_id: bytes, service: str, *, before: int, after: int) -> Context | None:
        found = await self._query(
            TableName=self.table,
            IndexName="by_id",
            KeyConditionExpression="id = :id",
            ExpressionAttributeValues={":id": {"S": log_id.hex()}},
        )
        keys = [key for key in found["Items"] if key["pk"]["S"].rpartition("#")[0] == service]
        if not keys:
            return None
        key = {"pk": keys[0]["pk"], "sk": keys[0]["sk"]}
        item = (
            await self._call(self._client.get_item, TableName=self.table, Key=key, ConsistentRead=True)
        ).get("Item")
        if item is None:
            return None
        run, table, shards, at = self._query, self.table, self.shards, item["sk"]["S"]
        older, newer = await asyncio.gather(
            nearest_items(run, table, shards, service, at, before, older=True),
            nearest_items(run, table, shards, service, at, after, older=False),
        )
        return fit_context(to_entry(item), [to_entry(i) for i in older], [to_entry(i) for i in newer])

    async def _query(self, **request: Any) -> dict[str, Any]:
        response: dict[str, Any] = await self._call(self._client.query, **request)
        return response

    async def _services(self, include: tuple[str, ...], exclude: tuple[str, ...]) -> list[str]:
        return [
            service for service in await self._registry("service") if _in_scope(service, include, exclude)
        ]

    def _service_ranges(self, services: list[str], low: str, high: str, want: int) -> list[_Range]:
        page = _firstpage(want, len(services) * self.shards)
        return [
            _Range(
                {
                    "TableName": self.table,
                    "KeyConditionExpression": "pk = :p AND sk BETWEEN :lo AND :hi",
                    "ExpressionAttributeValues": {
                        ":p": {"S": f"{service}#{shard:02d}"},
                        ":lo": {"S": low},
                        ":hi": {"S": high},
                    },
                    "ScanIndexForward": False,
                    "ConsistentRead": True,
                },
                page,
                high,
            )
            for service in services
            for shard in range(self.shards)
        ]

    async def _day_groups(self, low: str, high: str, want: int) -> list[list[_Range]]:
        """The time index's ranges, one group per day holding entries, newest day first."""
        # high is exclusive: "T#" admits only times before T, which may lie in the day before T's.
        top = HIGHEST if high == HIGHEST else day_key(int(high[:19]) - high.endswith("#"))
        days = await self._registry("day", low=day_key(int(low[:19])), high=top, newest=True)
        page = _firstpage(want, self.shards)
        return [
            [
                _Range(
                    {
                        "TableName": self.table,
                        "IndexName": "by_time",
                        "KeyConditionExpression": "gpk = :p AND sk BETWEEN :lo AND :hi",
                        "ExpressionAttributeValues": {
                            ":p": {"S": f"{day}#{shard:02d}"},
                            ":lo": {"S": low},
                            ":hi": {"S": high},
                        },
                        "ScanIndexForward": False,
                    },
                    page,
                    min(high, sort_key((int(day) + 1) * DAY_US, "")),
                )
                for shard in range(self.shards)
            ]
            for day in days
        ]

    async def _registry(
        self, kind: str, *, low: str = LOWEST, high: str = HIGHEST, newest: bool = False
    ) -> list[str]:
        values: list[str] = []
        request: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :p AND sk BETWEEN :lo AND :hi",
            "ExpressionAttributeValues": {":p": {"S": f"#{kind}"}, ":lo": {"S": low}, ":hi": {"S": high}},
            "ScanIndexForward": not newest,
            "ConsistentRead": True,
        }
        while True:
            response = await self._call(self._client.query, **request)
            values += [item["sk"]["S"] for item in response["Items"]]
            if "LastEvaluatedKey" not in response:
                return values
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    async def _fill(self, ranges: list[_Range], budget: _Budget) -> None:
        """Read the next page of every range that has run dry, in parallel."""

        async def fill(one: _Range) -> None:
            request = dict(one.request, Limit=one.page)
            if one.last_key is not None:
                request["ExclusiveStartKey"] = one.last_key
            response = await self._call(self._client.query, **request)
            one.items, one.position, one.started = response["Items"], 0, True
            one.last_key = response.get("LastEvaluatedKey")
            one.done = one.last_key is None
            one.page = min(one.page * 2, 1000)
            # An empty answer costs too: walking many empty days must run out of budget as well.
            budget.examined += max(response.get("ScannedCount", 0), _QUERY_COST)

        await asyncio.gather(*(fill(one) for one in ranges))

    async def _merge(
        self,
        ranges: list[_Range],
        query: Query,
        high: str,
        want: int,
        found: list[dict[str, Any]],
        budget: _Budget,
    ) -> str | None:
        """Move matches, newest first across ``ranges``, into ``found`` until it holds ``want``.

        Returns None when the ranges are read to the end (or ``found`` is full), else, when the budget runs
        out, the exclusive bound above which everything was examined."""
        while len(found) < want:
            dry = [one for one in ranges if one.empty and not one.done]
            if dry:
                if budget.examined >= budget.examine_limit:
                    bounds = [b for b in (one.bound() for one in ranges) if b is not None]
                    if not bounds:
                        return None
                    if max(bounds) < high:  # stop only after progress, or the next page would start here
                        return max(bounds)
                await self._fill(dry, budget)
                continue
            live = [one for one in ranges if not one.empty]
            if not live:
                return None
            newest = max(live, key=lambda one: one.head)
            item = newest.items[newest.position]
            newest.position += 1
            if item["sk"]["S"] < high and _matches(item, query):
                found.append(item)
                budget.page_bytes += entry_bytes(
                    item["msg"]["S"], item["meta"]["S"] if "meta" in item else None
                )
                if budget.page_bytes > MAX_PAGE_BYTES and len(found) < want:
                    return str(item["sk"]["S"])  # everything newer was examined; go on below this one
        return None

    # ---- the tail ----------------------------------------------------------------------------------------

    @property
    def tail_delay(self) -> float:
        return TAIL_DELAY_SECONDS

    async def arrivals(
        self, after: Position | None, *, limit: int, searches: Sequence[tuple[str, ...]] = ()
    ) -> Arrivals:
        """What arrived after ``after`` and at least TAIL_DELAY_SECONDS ago, by the arrival index: its
        hours in order, each hour's shards in parallel and merged. A read scans at most a day of hours."""
        settled = time.time_ns() // 1000 - round(TAIL_DELAY_SECONDS * 1_000_000)
        end: Position = (settled - 1, HIGHEST)  # after everything that arrived before `settled`
        if after is None:
            return Arrivals(entries=[], position=end)
        if not (after[1] == HIGHEST or _LOG_ID_HEX.fullmatch(after[1])):
            raise ValidationFailed([FieldError("cursor", "belongs to another store")])
        if after[0] < settled - _RESUME_HOURS * HOUR_US:
            raise ValidationFailed(
                [
                    FieldError(
                        "cursor",
                        f"is older than {_RESUME_HOURS} hours: start a new tail, and read older entries "
                        "with GET /logs",
                    )
                ]
            )
        if after >= end:
            return Arrivals(entries=[], position=after)
        low, high = arrival_key(*after), arrival_key(*end)
        items: list[dict[str, Any]] = []
        position, more = end, False
        for hour in range(after[0] // HOUR_US, settled // HOUR_US + 1):
            found, cut = await self._arrived(hour, low, high, limit - len(items))
            items += found
            if cut is not None or len(items) >= limit:
                more = True
                break
        size = 0
        for count, item in enumerate(items[:limit], 1):
            size += entry_bytes(item["msg"]["S"], item["meta"]["S"] if "meta" in item else None)
            if size > MAX_PAGE_BYTES:
                items, more = items[:count], True
                break
        else:
            more = more or len(items) > limit
            items = items[:limit]
        entries = [
            Arrival(
                position=(int(item["ask"]["S"][:19]), item["ask"]["S"][20:]),
                ts_us=int(item["sk"]["S"][:19]),
                level=int(item["lvl"]["N"]),
                entry=to_entry(item),
            )
            for item in items
        ]
        if more:
            position = entries[-1].position if entries else after
        matched = {
            terms: frozenset(
                arrival.position
                for arrival, item in zip(entries, items, strict=True)
                if _found(item["msg"]["S"], terms)
            )
            for terms in searches
        }
        return Arrivals(entries=entries, position=position, more=more, found=matched)

    async def _arrived(
        self, hour: int, low: str, high: str, limit: int
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One hour of the arrival index between ``low`` (exclusive) and ``high``, every shard, in arrival
        order; when a shard had more than ``limit``, only what lies up to its last key (also returned)."""

        async def shard(number: int) -> tuple[list[dict[str, Any]], bool]:
            response = await self._call(
                self._client.query,
                TableName=self.table,
                IndexName="by_arrival",
                KeyConditionExpression="apk = :p AND ask BETWEEN :lo AND :hi",
                ExpressionAttributeValues={
                    ":p": {"S": f"{hour:06d}#{number:02d}"},
                    ":lo": {"S": low},
                    ":hi": {"S": high},
                },
                Limit=limit + 1,  # BETWEEN includes `low` itself
            )
            return response["Items"], "LastEvaluatedKey" in response

        answers = await asyncio.gather(*(shard(number) for number in range(self.shards)))
        cuts = [found[-1]["ask"]["S"] for found, cut in answers if cut and found]
        cut = min(cuts) if cuts else None
        items = sorted(
            (
                item
                for found, _ in answers
                for item in found
                if low < item["ask"]["S"] and (cut is None or item["ask"]["S"] <= cut)
            ),
            key=lambda item: str(item["ask"]["S"]),
        )
        return items, cut

    # ---- retention ---------------------------------------------------------------------------------------

    async def delete_older(
        self,
        cutoff_us: int,
        *,
        include: tuple[str, ...] = (),
        exclude: tuple[str, ...] = (),
        limit: int = 500,
    ) -> int:
        """Delete entries older than the cutoff now, rather than when TTL gets to them (up to days later)."""
        partitions = [
            f"{s}#{shard:02d}" for s in await self._services(include, exclude) for shard in range(self.shards)
        ]
        high = sort_key(cutoff_us, "")
        keys: list[dict[str, Any]] = []
        for partition in partitions:
            if len(keys) >= limit:
                break
            response = await self._call(
                self._client.query,
                TableName=self.table,
                KeyConditionExpression="pk = :p AND sk < :hi",
                ExpressionAttributeValues={":p": {"S": partition}, ":hi": {"S": high}},
                ProjectionExpression="pk, sk",
                Limit=limit - len(keys),
                ConsistentRead=True,
            )
            keys += response["Items"]
        chunks = [keys[i : i + _BATCH] for i in range(0, len(keys), _BATCH)]
        await asyncio.gather(
            *(
                self._batch({self.table: [{"DeleteRequest": {"Key": key}} for key in chunk]})
                for chunk in chunks
            )
        )
        return len(keys)

    async def oldest(self, *, include: tuple[str, ...] = (), exclude: tuple[str, ...] = ()) -> int | None:
        services = await self._services(include, exclude)

        async def first(partition: str) -> int | None:
            response = await self._call(
                self._client.query,
                TableName=self.table,
                KeyConditionExpression="pk = :p",
                ExpressionAttributeValues={":p": {"S": partition}},
                ProjectionExpression="sk",
                Limit=1,
                ConsistentRead=True,
            )
            return int(response["Items"][0]["sk"]["S"][:19]) if response["Items"] else None

        firsts = await asyncio.gather(
            *(first(f"{service}#{shard:02d}") for service in services for shard in range(self.shards))
        )
        present = [ts for ts in firsts if ts is not None]
        return min(present) if present else None

    async def close(self) -> None:
        self._pool.shutdown(wait=True)


def _firstpage(want: int, ranges: int) -> int:
    # Hashing spreads entries evenly over shards, so each range gives about want/ranges; 1.5x that spares
    # a second round trip in most reads.
    return max(10, min(1000, want * 3 // (2 * max(ranges, 1)) + 5))


def _in_scope(service: str, include: tuple[str, ...], exclude: tuple[str, ...]) -> bool:
    return covers(include, service) and not (exclude and covers(exclude, service))


def _matches(item: dict[str, Any], query: Query) -> bool:
    return admits(
        query,
        service=item["svc"]["S"],
        level=int(item["lvl"]["N"]),
        log_type=item["typ"]["S"],
        ts_us=int(item["sk"]["S"][:19]),
    ) and (not query.terms or _found(item["msg"]["S"], query.terms))  # histograms read no messages


def _found(message: str, terms: tuple[str, ...]) -> bool:
    """This store's search: no full-text index, every term must occur in the message, ignoring case."""
    if not terms:
        return True
    folded = message.casefold()
    return all(term.casefold() in folded for term in terms)


def _translate(exc: ClientError | BotoCoreError, table: str) -> StoreUnavailable:
    """A backend failure as the 503 a client may retry; what AWS said goes to the log, not the client."""
    log.warning("DynamoDB table %s: %s", table, error_reason(exc))
    code = exc.response.get("Error", {}).get("Code", "") if isinstance(exc, ClientError) else ""
    if code in {"ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded"}:
        return StoreUnavailable("DynamoDB is throttling this table; retry after the indicated time")
    return StoreUnavailable(
        "the DynamoDB store could not answer; retry later (the service log has the reason)"
    )
