"""The use cases: ingest, recent, stats, services, get, context. The only place business rules are applied."""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import msgspec

from logsvc.auth.policy import Principal
from logsvc.content import (
    decode_content,
    decode_snappy_body,
    is_encoded,
    is_loki_json,
    is_ndjson,
    is_otlp_json,
)
from logsvc.domain.context import Context, parse_context
from logsvc.domain.cursors import decode_position, encode_position, past_head
from logsvc.domain.documents import decode_documents
from logsvc.domain.entries import Limits, LogEntry, NewEntry, format_log_id, parse_log_id
from logsvc.domain.esbulk import BulkItem, BulkOutcome, bulk_items
from logsvc.domain.loki import loki_entries
from logsvc.domain.mapping import FieldMapping, parse_mapping
from logsvc.domain.otlp import otlp_entries
from logsvc.domain.parameters import no_parameters, parameter_values
from logsvc.domain.queries import MAX_LIMIT, Page, Query, parse_query
from logsvc.domain.retention import retention_rules
from logsvc.domain.stats import ServiceList, Stats, parse_services, parse_stats, service_list, stats_answer
from logsvc.domain.syslog import SyslogRefused, syslog_document
from logsvc.domain.timestamps import format_timestamp, parse_whole_number
from logsvc.domain.validation import validate_each, validate_entries
from logsvc.errors import (
    ConfigError,
    EntriesRefused,
    FieldError,
    Forbidden,
    LogServiceError,
    NotFound,
    ServerBusy,
    ValidationFailed,
)
from logsvc.scopes import check_pattern, covers
from logsvc.storage.port import EncodedReads, LogStore
from logsvc.tail import TailPage, TailRequest, wanted

if TYPE_CHECKING:  # the Lambda handlers import this module and must not load SQLite
    from logsvc.auth.credential_service import AuditEvent, Credential, CredentialService, NewCredential

__all__ = [
    "AdminService",
    "BatchCreated",
    "BulkResult",
    "Created",
    "IngestObserver",
    "LogService",
    "OtlpResult",
    "Retention",
    "SyslogOutcome",
    "check_destroy",
    "purge",
]

log = logging.getLogger("logsvc.service")

# Bodies up to this size, as sent and not compressed, are decoded on the event loop: a thread hop would cost
# a small post more than its decoding. Larger ones go to a thread, a few at a time.
INLINE_BODY_BYTES = 64 * 1024
# How long a large body waits for a decoding slot before the answer is 503.
DECODE_QUEUE_SECONDS = 5.0
# The rejected records an OTLP answer or a Loki refusal describes one by one; it counts the rest.
MAX_PROBLEMS = 10

_T = TypeVar("_T")


class Created(msgspec.Struct, frozen=True):
    message: str
    log_id: str
    timestamp: str


class BatchCreated(msgspec.Struct, frozen=True):
    count: int
    log_ids: list[str]


class OtlpResult(msgspec.Struct, frozen=True):
    """What an OTLP request stored and what it rejected (``error_message`` says why)."""

    entries: list[NewEntry]
    rejected: int
    error_message: str


class BulkResult(msgspec.Struct, frozen=True):
    """The items of an Elasticsearch bulk request and how each ended, in order."""

    items: list[BulkItem]
    outcomes: list[BulkOutcome]


class SyslogOutcome(msgspec.Struct, frozen=True):
    """What a batch of syslog messages became: how many were stored; of the others, how many were dropped
    for each reason (``logsvc.domain.syslog``'s, ``invalid`` or ``outside_scope``) and the detail of the
    last one of each."""

    stored: int
    dropped: dict[str, int]
    details: dict[str, str]


# Why a syslog message was dropped, besides the reasons of its parser: it broke a rule of POST /logs, or
# names a service outside syslog_services.
SYSLOG_INVALID = "invalid"
SYSLOG_OUTSIDE_SCOPE = "outside_scope"


class IngestObserver(Protocol):
    """Told how many entries each ingest stored or rejected (metrics)."""

    def ingested(self, count: int) -> None: ...

    def rejected(self, count: int) -> None: ...


class LogService:
    def __init__(
        self,
        store: LogStore,
        limits: Limits,
        *,
        observer: IngestObserver | None = None,
        clock_us: Callable[[], int] = lambda: time.time_ns() // 1000,
        decode_threads: int = 2,
        on_stored: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self._encoded_reads = store if isinstance(store, EncodedReads) else None
        self.limits = limits
        self._observer = observer
        self._on_stored = on_stored
        self._clock_us = clock_us
        self._decoding = asyncio.Semaphore(decode_threads)

    async def ingest(
        self,
        body: bytes,
        headers: Mapping[str, str],
        *,
        principal: Principal,
        params: Iterable[tuple[str, str]] = (),
    ) -> Created | BatchCreated:
        """Validate a whole request body (as sent: ``headers`` give its media type and content encoding)
        and store it atomically; returns once the entries are durable. ``params``, the query string, may
        map the fields of any JSON documents to an entry's (``logsvc.domain.mapping``)."""
        ndjson = is_ndjson(headers)
        mapping = parse_mapping(params)
        entries, single = await self._decode(
            body, headers, lambda: self._entries(body, headers, ndjson, mapping)
        )
        await self._store(entries, principal)
        if single:
            return _created(entries[0])
        return BatchCreated(count=len(entries), log_ids=[format_log_id(e.log_id) for e in entries])

    async def ingest_otlp(
        self, body: bytes, headers: Mapping[str, str], *, principal: Principal
    ) -> OtlpResult:
        """Store the valid records of an OTLP logs request (``logsvc.domain.otlp`` maps them to entries) and
        reject the others, as OTLP's partial success; returns once the stored ones are durable."""
        as_json = is_otlp_json(headers)
        result = await self._decode(body, headers, lambda: self._otlp_entries(body, headers, as_json))
        await self._store(result.entries, principal)
        return result

    async def ingest_bulk(
        self, body: bytes, headers: Mapping[str, str], *, index: str | None, principal: Principal
    ) -> BulkResult:
        """Store the valid items of an Elasticsearch bulk request (``logsvc.domain.esbulk`` maps them to
        entries) and refuse the others one by one, as Elasticsearch does; returns once the stored ones are
        durable. ``index`` is the one named in the path, if any."""
        is_ndjson(headers)  # only to refuse a media type that is neither JSON nor NDJSON
        items, entries, outcomes = await self._decode(
            body, headers, lambda: self._bulk_entries(body, headers, index)
        )
        await self._store(entries, principal)
        return BulkResult(items=items, outcomes=outcomes)

    async def ingest_loki(self, body: bytes, headers: Mapping[str, str], *, principal: Principal) -> int:
        """Store the valid entries of a Loki push (``logsvc.domain.loki`` maps them to entries); returns how
        many once they are durable. If any were refused, EntriesRefused (a 400 naming them) is raised after
        the others are durable, as Loki answers: a shipper does not retry a 400, and nothing it was told
        is stored can be lost."""
        as_json = is_loki_json(headers)
        entries, refused, problems = await self._decode(
            body, headers, lambda: self._loki_entries(body, headers, as_json), compressed=not as_json
        )
        await self._store(entries, principal)
        if refused:
            raise EntriesRefused(problems, refused=refused, stored=len(entries))
        return len(entries)

    async def ingest_syslog(
        self, messages: Sequence[tuple[bytes, str | None]], *, scope: tuple[str, ...], zone: tzinfo | None
    ) -> SyslogOutcome:
        """Store the syslog messages (each with its sender's address) that follow their format and the
        rules of POST /logs, one by one (``logsvc.domain.syslog`` maps them to entries); returns once they
        are durable. Syslog has no credentials: ``scope`` (syslog_services, never empty) stands for one,
        and a message of a service outside it is dropped, never stored. ``zone``: that of RFC 3164
        timestamps (None: the server's)."""
        size = sum(len(frame) for frame, _ in messages)
        decode = functools.partial(self._syslog_entries, messages, scope, zone)
        entries, outcome = decode() if size <= INLINE_BODY_BYTES else await self._off_loop(decode)
        await self._append(entries)
        return outcome

    def _syslog_entries(
        self, messages: Sequence[tuple[bytes, str | None]], scope: tuple[str, ...], zone: tzinfo | None
    ) -> tuple[list[NewEntry], SyslogOutcome]:
        now_us = self._clock_us()
        entries: list[NewEntry] = []
        dropped: dict[str, int] = {}
        details: dict[str, str] = {}

        def drop(reason: str, detail: str) -> None:
            dropped[reason] = dropped.get(reason, 0) + 1
            details[reason] = detail

        for frame, peer in messages:
            try:
                doc = syslog_document(frame, now_us=now_us, zone=zone, peer=peer)
            except SyslogRefused as exc:
                drop(exc.reason, exc.detail)
                continue
            (entry,) = self._each_entry([doc], now_us)
            if isinstance(entry, str):
                drop(SYSLOG_INVALID, entry)
            elif not scope or not covers(scope, entry.service_name):
                drop(SYSLOG_OUTSIDE_SCOPE, f"service {entry.service_name!r} is outside syslog_services")
            else:
                entries.append(entry)
        self._rejected(len(messages) - len(entries))
        return entries, SyslogOutcome(stored=len(entries), dropped=dropped, details=details)

    async def ingest_one(
        self,
        body: bytes,
        headers: Mapping[str, str],
        *,
        to_entry: Callable[[Any], dict[str, Any]],
        principal: Principal,
    ) -> NewEntry:
        """Store one entry that an older client sent in its own shape (``logsvc.domain.compat``): the body
        is one JSON object whatever its media type (the function URLs those clients called read it so),
        ``to_entry`` makes it an entry document, and the rules of ``POST /logs`` apply; returns once it is
        durable."""
        (entry,) = await self._decode(body, headers, lambda: self._translated(body, headers, to_entry))
        await self._store([entry], principal)
        return entry

    def _translated(
        self, body: bytes, headers: Mapping[str, str], to_entry: Callable[[Any], dict[str, Any]]
    ) -> list[NewEntry]:
        docs, single = self._parsed(
            body,
            headers,
            lambda content: decode_documents(content, ndjson=False, limits=self.limits, logs_wrapper=False),
        )
        try:
            if not single:
                raise ValidationFailed([FieldError("body", "must be one JSON object")])
            return validate_entries(
                [to_entry(docs[0])], now_us=self._clock_us(), limits=self.limits, batch=False
            )
        except ValidationFailed:
            self._rejected(1)
            raise

    async def _decode(
        self, body: bytes, headers: Mapping[str, str], decode: Callable[[], _T], *, compressed: bool = False
    ) -> _T:
        """``decode()``, on the event loop for a small body as sent, else in a thread. ``compressed``: the
        body is compressed whatever its Content-Encoding says (Loki's snappy)."""
        if len(body) <= INLINE_BODY_BYTES and not compressed and not is_encoded(headers):
            return decode()  # without a coroutine of its own: most bodies are small
        return await self._off_loop(decode)

    async def _off_loop(self, decode: Callable[[], _T]) -> _T:
        # Inflating and decoding up to max_decompressed_bytes takes a CPU for a while: off the event
        # loop, and a few at a time, so that a burst of large bodies cannot take every thread and all
        # the memory at once.
        try:
            async with asyncio.timeout(DECODE_QUEUE_SECONDS):
                await self._decoding.acquire()
        except TimeoutError:
            raise ServerBusy("too many large request bodies are being decoded; retry shortly") from None
        try:
            return await asyncio.to_thread(decode)
        finally:
            self._decoding.release()

    def _store(self, entries: list[NewEntry], principal: Principal) -> Awaitable[None]:
        """The scope rule (a credential writing a service it may not: 403 for the whole request, raised when
        called), then the durable append, to await."""
        outside = sorted({e.service_name for e in entries if not principal.covers(e.service_name)})
        if outside:
            self._rejected(len(entries))
            allowed = ", ".join(principal.services)
            raise Forbidden(
                f"this credential may write only to services {allowed}; not to {', '.join(outside)}"
            )
        return self._append(entries)

    async def _append(self, entries: list[NewEntry]) -> None:
        """The durable append of every ingest, HTTP or syslog: then the tail is told at once (not at its
        next poll) and the metrics count what was stored."""
        if entries:
            await self.store.append(entries)
            if self._on_stored is not None:
                self._on_stored()
        if self._observer is not None:
            self._observer.ingested(len(entries))

    def _entries(
        self, body: bytes, headers: Mapping[str, str], ndjson: bool, mapping: FieldMapping | None
    ) -> tuple[list[NewEntry], bool]:
        try:
            content = decode_content(body, headers, max_decompressed_bytes=self.limits.max_decompressed_bytes)
            docs, single = decode_documents(
                content, ndjson=ndjson, limits=self.limits, logs_wrapper=mapping is None
            )
        except LogServiceError:
            self._rejected(1)
            raise
        try:
            entries = validate_entries(
                docs if mapping is None else mapping.documents(docs),
                now_us=self._clock_us(),
                limits=self.limits,
                batch=not single,
            )
        except ValidationFailed as exc:
            self._rejected(len(docs))
            if mapping is not None:
                raise ValidationFailed(mapping.source_errors(exc.errors)) from None
            raise
        return entries, single

    def _parsed(
        self, body: bytes, headers: Mapping[str, str], parse: Callable[[bytes], _T], *, snappy: bool = False
    ) -> _T:
        """A shipper's body, inflated within the limits (``snappy``: also from snappy's block format) and
        parsed; a refused body counts as rejected."""
        inflate = decode_snappy_body if snappy else decode_content
        try:
            return parse(inflate(body, headers, max_decompressed_bytes=self.limits.max_decompressed_bytes))
        except LogServiceError:
            self._rejected(1)
            raise

    def _each_entry(self, docs: list[Any], now_us: int | None = None) -> list[NewEntry | str]:
        """The records of a shipper's batch through the rules of POST /logs, each alone: a broken one is
        refused (the reason is given in its place), not the whole request. ``now_us``: the receive time
        (default: now)."""
        now_us = self._clock_us() if now_us is None else now_us
        return [
            found if isinstance(found, NewEntry) else _named(found)
            for found in validate_each(docs, now_us=now_us, limits=self.limits)
        ]

    def _otlp_entries(self, body: bytes, headers: Mapping[str, str], as_json: bool) -> OtlpResult:
        now_us = self._clock_us()
        outcomes = self._parsed(
            body,
            headers,
            lambda content: otlp_entries(content, as_json=as_json, limits=self.limits, now_us=now_us),
        )
        entries: list[NewEntry] = []
        problems: list[str] = []
        for index, found in enumerate(outcomes):
            if isinstance(found, NewEntry):
                entries.append(found)
            else:
                problems.append(f"record {index}: {_named(found)}")
        self._rejected(len(problems))
        message = "; ".join(problems[:MAX_PROBLEMS])
        if len(problems) > MAX_PROBLEMS:
            message += f"; and {len(problems) - MAX_PROBLEMS} more"
        return OtlpResult(entries=entries, rejected=len(problems), error_message=message)

    def _bulk_entries(
        self, body: bytes, headers: Mapping[str, str], index: str | None
    ) -> tuple[list[BulkItem], list[NewEntry], list[BulkOutcome]]:
        items = self._parsed(
            body, headers, lambda content: bulk_items(content, path_index=index, limits=self.limits)
        )
        found = iter(self._each_entry([item.document for item in items if item.document is not None]))
        entries: list[NewEntry] = []
        outcomes: list[BulkOutcome] = []
        for item in items:
            if item.document is None:
                outcomes.append(BulkOutcome(error_type=item.error_type, reason=item.reason))
                continue
            entry = next(found)
            if isinstance(entry, str):
                outcomes.append(BulkOutcome(error_type="mapper_parsing_exception", reason=entry))
                continue
            entries.append(entry)
            outcomes.append(BulkOutcome(log_id=format_log_id(entry.log_id)))
        self._rejected(len(items) - len(entries))
        return items, entries, outcomes

    def _loki_entries(
        self, body: bytes, headers: Mapping[str, str], as_json: bool
    ) -> tuple[list[NewEntry], int, list[FieldError]]:
        """The valid entries of a push, how many were refused, and the first refusals named."""
        now_us = self._clock_us()
        push = self._parsed(
            body,
            headers,
            lambda content: loki_entries(content, as_json=as_json, limits=self.limits, now_us=now_us),
            snappy=not as_json,
        )
        entries: list[NewEntry] = []
        problems = push.refused[:MAX_PROBLEMS]
        refused = push.refused_entries
        for found, (stream, index) in zip(push.outcomes, push.places, strict=True):
            if isinstance(found, NewEntry):
                entries.append(found)
            else:
                refused += 1
                if len(problems) < MAX_PROBLEMS:
                    problems.append(
                        FieldError(f"streams[{stream}].{push.entries_field}[{index}]", _named(found))
                    )
        self._rejected(refused)
        return entries, refused, problems

    def _rejected(self, count: int) -> None:
        if self._observer is not None:
            self._observer.rejected(count)

    async def recent(self, params: Iterable[tuple[str, str]], *, principal: Principal) -> Page:
        """A read of ``GET /logs`` by its query-string parameters."""
        return await self.store.recent(self._read_query(params, principal))

    async def recent_json(self, params: Iterable[tuple[str, str]], *, principal: Principal) -> bytes:
        """The JSON answer of ``recent``: the store's own where it keeps its entries encoded."""
        query = self._read_query(params, principal)
        if self._encoded_reads is not None:
            return await self._encoded_reads.recent_json(query)
        return msgspec.json.encode(await self.store.recent(query))

    async def page(self, query: Query, *, principal: Principal) -> Page:
        """The page a query asks for, held to the credential's service scope."""
        return await self.store.recent(_scoped(query, principal))

    def _read_query(self, params: Iterable[tuple[str, str]], principal: Principal) -> Query:
        """A read's parameters as a Query held to the credential's scope."""
        return _scoped(parse_query(params, now_us=self._clock_us()), principal)

    async def tail_request(
        self, params: Iterable[tuple[str, str]], *, principal: Principal, last_event_id: str | None = None
    ) -> TailRequest:
        """A tail's filters (those of a read, held to the scope in the same way) and the position it goes
        on after: the ``Last-Event-ID`` of a reconnecting stream, else ``cursor``. A stream reconnects to
        the URL it first opened, so the header, which is newer, wins over a cursor in the URL. A position
        past the store's newest commit is refused: the store gave no such cursor."""
        params = list(params)
        cursors = [value for name, value in params if name == "cursor"]
        query = self._read_query([(n, v) for n, v in params if n != "cursor"], principal)
        if len(cursors) > 1:
            raise ValidationFailed([FieldError("cursor", "given more than once")])
        if last_event_id is not None:
            name, value = "Last-Event-ID", last_event_id
        elif cursors:
            name, value = "cursor", cursors[0]
        else:
            return TailRequest(query=query, after=None)
        rule = "is not a tail cursor this service returned (an event id or next_cursor, as given)"
        try:
            after = decode_position(value.strip())
        except ValueError:
            raise ValidationFailed([FieldError(name, rule)]) from None
        # The head is read from the store now, not taken from this process's tail hub: another worker
        # process or replica may have handed out positions of commits this one's hub has not read yet.
        head = (await self.store.arrivals(None, limit=1)).position
        # On DynamoDB a position is an arrival time, and the head this replica's clock less the tail delay:
        # a replica whose clock runs ahead gives positions past it. Up to the delay ahead is taken; clocks
        # further apart break the tail anyway (a lagging writer's entries arrive behind its readers). Where
        # positions are arrival numbers the delay is 0 and the head exact.
        if past_head(after, head, leeway=round(self.store.tail_delay * 1_000_000)):
            raise ValidationFailed([FieldError(name, f"{rule}: it is past the newest commit")])
        return TailRequest(query=query, after=after)

    async def tail_page(self, request: TailRequest) -> TailPage:
        """The polling form of a tail: what committed after its position, oldest first, up to the query's
        limit of entries read; without a position, none, and the cursor of the newest commit."""
        if request.after is None:
            head = await self.store.arrivals(None, limit=1)
            return TailPage(count=0, logs=[], next_cursor=encode_position(head.position), more=False)
        query = request.query
        arrivals = await self.store.arrivals(
            request.after, limit=query.limit, searches=(query.terms,) if query.terms else ()
        )
        logs = [arrival.entry for arrival in wanted(query, arrivals)]
        return TailPage(
            count=len(logs), logs=logs, next_cursor=encode_position(arrivals.position), more=arrivals.more
        )

    async def stats(self, params: Iterable[tuple[str, str]], *, principal: Principal) -> Stats:
        """Entries counted per time bucket, with the filters and scope of ``recent``."""
        query = parse_stats(params, now_us=self._clock_us())
        query = msgspec.structs.replace(query, filters=_scoped(query.filters, principal))
        return stats_answer(query, await self.store.histogram(query))

    async def services(self, params: Iterable[tuple[str, str]], *, principal: Principal) -> ServiceList:
        """A page of the services the credential may read that hold entries, with their counts and newest
        entry; one more than the page is asked for, to know whether more follow."""
        page = parse_services(params)
        found = await self.store.services(principal.services, after=page.after, limit=page.limit + 1)
        return service_list(found, page)

    async def get(
        self, log_id: str, *, principal: Principal, params: Iterable[tuple[str, str]] = ()
    ) -> LogEntry:
        no_parameters(params)
        key = _log_id(log_id)
        # Entries of services the credential may not read do not exist for it; ids are unique per service.
        for entry in await self.store.get(key):
            if principal.covers(entry.service_name):
                return entry
        raise NotFound(f"no log entry with log_id {log_id}")

    async def context(
        self, log_id: str, params: Iterable[tuple[str, str]], *, principal: Principal
    ) -> Context:
        """The entry (as ``get`` finds it, or in the service named) and its service's entries around it."""
        request = parse_context(params)
        service = request.service_name
        if service is None:
            service = (await self.get(log_id, principal=principal)).service_name
        else:
            _scoped(Query(service_name=service), principal)
        found = await self.store.context(_log_id(log_id), service, before=request.before, after=request.after)
        if found is None:
            raise NotFound(f"no log entry with log_id {log_id} in service {service}")
        return found


class AdminService:
    """Credential management and the audit trail, for admins, over the credential service (which holds
    the rules)."""

    def __init__(self, auth: CredentialService) -> None:
        self.auth = auth

    def create_key(
        self, body: bytes, *, principal: Principal, source: str, params: Iterable[tuple[str, str]] = ()
    ) -> NewCredential:
        no_parameters(params)
        try:
            doc = msgspec.json.decode(body)
        except msgspec.DecodeError as exc:
            raise ValidationFailed([FieldError("body", f"is not valid JSON: {exc}")]) from None
        return self.auth.create_requested(doc, actor=principal.id, source=source, scope=principal.services)

    def list_keys(self, principal: Principal, params: Iterable[tuple[str, str]] = ()) -> list[Credential]:
        no_parameters(params)
        return self.auth.credentials(principal.services)

    def revoke_key(
        self,
        access_key_id: str,
        *,
        principal: Principal,
        source: str,
        params: Iterable[tuple[str, str]] = (),
    ) -> Credential:
        no_parameters(params)
        return self.auth.revoke_keeping_an_admin(
            access_key_id, actor=principal.id, source=source, scope=principal.services
        )

    def audit(self, params: Iterable[tuple[str, str]], *, principal: Principal) -> list[AuditEvent]:
        if principal.services:
            raise Forbidden(
                "the audit trail covers every service: it needs an admin credential without a service scope"
            )
        errors: list[FieldError] = []
        values = parameter_values(params, ("limit",), errors)
        if errors:
            raise ValidationFailed(errors)
        limit = 100
        if "limit" in values:
            try:
                limit = parse_whole_number(values["limit"])
                if not 1 <= limit <= MAX_LIMIT:
                    raise ValueError
            except ValueError:
                rule = f"must be a whole number from 1 to {MAX_LIMIT}"
                raise ValidationFailed([FieldError("limit", rule)]) from None
        return self.auth.audit(limit=limit)

    async def expire_audit(self) -> int:
        """Delete the audit records past their retention; how many."""
        return await asyncio.to_thread(self.auth.expire_audit)


def _scoped(query: Query, principal: Principal) -> Query:
    """The read a credential may make: a service outside its scope is refused (403), and a read of every
    service reads every service it may see."""
    if principal.services:
        if query.service_name is not None and not principal.covers(query.service_name):
            allowed = ", ".join(principal.services)
            raise Forbidden(f"this credential may read only services {allowed}; not {query.service_name}")
        query = msgspec.structs.replace(query, service_patterns=principal.services)
    return query


def _log_id(log_id: str) -> bytes:
    try:
        return parse_log_id(log_id)
    except ValueError as exc:
        raise ValidationFailed([FieldError("log_id", str(exc))]) from None


def _named(errors: list[FieldError]) -> str:
    """The rules a shipper's record broke, in one line (its answer names them for each record)."""
    return "; ".join(f"{e.field} {e.message}" for e in errors)


def _created(entry: NewEntry) -> Created:
    return Created(
        message="Log entry created successfully",
        log_id=format_log_id(entry.log_id),
        timestamp=format_timestamp(entry.ts_us),
    )


class Retention:
    """Deletes entries past their retention, and refuses, while deletion protection is on, a retention
    shortened below data the store already holds. The rules last applied are kept in ``applied_file``."""

    BATCH = 500

    def __init__(
        self,
        store: LogStore,
        *,
        default_days: float,
        by_service: Mapping[str, float],
        protection: bool,
        applied_file: Path,
        clock_us: Callable[[], int] = lambda: time.time_ns() // 1000,
    ) -> None:
        self.store = store
        self.default_days = default_days
        self.by_service = dict(by_service)
        self.rules = retention_rules(default_days, by_service)
        self.protection = protection
        self.applied_file = applied_file
        self._clock_us = clock_us

    async def check(self) -> None:
        """Refuse a retention that newly deletes existing entries while protection is on; then record it."""
        applied = self._applied()
        now = self._clock_us()
        for rule in self.rules:
            previous = float(applied.get("default", 0.0))
            if rule.include:
                previous = float(applied.get("by_service", {}).get(rule.include[0], previous))
            if previous and rule.days >= previous:
                continue  # not shortened: entries expiring under it were already due to expire
            oldest = await self.store.oldest(include=rule.include, exclude=rule.exclude)
            if oldest is not None and oldest < rule.cutoff_us(now) and self.protection:
                raise ConfigError(
                    f"a retention of {rule.days:g} days for {rule.scope} would delete entries back to "
                    f"{format_timestamp(oldest)}; deletion_protection is on: set deletion_protection = false "
                    "to allow it, or keep the longer retention"
                )
        record = {"default": self.default_days, "by_service": self.by_service}
        temporary = self.applied_file.with_name(self.applied_file.name + ".tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "wb") as file:
            file.write(msgspec.json.encode(record))
        os.replace(temporary, self.applied_file)

    def _applied(self) -> dict[str, Any]:
        try:
            record: dict[str, Any] = msgspec.json.decode(self.applied_file.read_bytes())
        except FileNotFoundError:
            return {}
        except msgspec.DecodeError:
            raise ConfigError(
                f"{self.applied_file} is damaged; remove it to treat the retention as new"
            ) from None
        return record

    async def sweep(self) -> int:
        """Delete every expired entry, in small transactions between the ingest groups; how many."""
        deleted = 0
        now = self._clock_us()
        for rule in self.rules:
            while True:
                count = await self.store.delete_older(
                    rule.cutoff_us(now), include=rule.include, exclude=rule.exclude, limit=self.BATCH
                )
                deleted += count
                if count < self.BATCH:
                    break
        return deleted


def check_destroy(*, protection: bool) -> None:
    """ConfigError while deletion protection forbids destroying the store."""
    if protection:
        raise ConfigError(
            "destroying the store is refused while deletion_protection is on: set deletion_protection = "
            "false first"
        )


async def purge(store: LogStore, pattern: str, *, protection: bool) -> int:
    """Delete every entry of the services matching ``pattern``, unless deletion protection is on."""
    if protection:
        raise Forbidden(
            "purging is refused while deletion_protection is on: set deletion_protection = false first"
        )
    try:
        check_pattern(pattern)
    except ValueError as exc:
        raise ValidationFailed([FieldError("service", str(exc))]) from None
    deleted = 0
    while True:
        count = await store.delete_older(2**62, include=(pattern,), limit=Retention.BATCH)
        deleted += count
        if count < Retention.BATCH:
            return deleted
