"""Elasticsearch's bulk API (``POST /_bulk``, ``POST /{index}/_bulk``) as our entry documents, and the answer
Elasticsearch gives, which Filebeat, Fluent Bit, Vector and Logstash read item by item.

A bulk body is NDJSON: an action line (``{"create": {...}}`` or ``{"index": {...}}``, with optional
``_index`` and ``_id``) followed by its source document. Each source becomes one entry document in the shape
``POST /logs`` takes, so that the same validation decides what is stored. The mapping (ECS field names):

- ``timestamp``: ``@timestamp``, else ``timestamp`` (Vector's field), as Elasticsearch's default date format
  reads it (``_es_time``), else the receive time;
- ``message``: ``message``, else ``log`` when it is a string (Fluent Bit's tail and Docker records);
- ``level``: ``log.level`` (a dotted key, or ``{"log": {"level": ...}}``) when it names a level; any other
  value stays in the metadata and the level is INFO, since an agent's level words are not ours to refuse;
- ``service_name``: ``service.name`` (dotted or nested), else the index (the action's ``_index``, else the
  one in the path) when it is a valid service name, else the default service;
- ``metadata``: every other field, nested as sent;
- ``log_id``: the ``_id`` when it is a UUID, else a UUIDv5 of the index and the ``_id``, so that an agent
  retrying a bulk stores nothing twice; without an ``_id``, a new id.

``delete`` and ``update`` actions are answered per item as errors: the log is append-only.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import msgspec

from logsvc.domain.documents import check_json_values, ndjson_lines
from logsvc.domain.entries import Limits, is_service_name, level_named, parse_log_id
from logsvc.errors import FieldError, PayloadTooLarge, ValidationFailed

__all__ = ["BulkItem", "BulkOutcome", "bulk_items", "bulk_response", "license_document", "version_document"]

# The Elasticsearch API version the handshake reports: the last 8.x, since Filebeat refuses a cluster older
# than itself (unless allow_older_versions), and agents of 7.x and 8.x all speak to an 8.x cluster.
ES_VERSION = "8.19.0"
# The namespace of the ids made from an ``_id`` that is not a UUID (a constant: retries must agree).
_ID_NAMESPACE = uuid.UUID("6f1c1a8e-4f0e-5b7a-9d35-3d6f6c0b9e11")
# Elasticsearch's default date format, ``strict_date_optional_time||epoch_millis``: a date whose time, time
# parts and zone may each be left out (no zone is UTC), a zone with or without its colon; or epoch millis.
_ES_DATE = re.compile(
    r"([0-9]{4})(?:-([0-9]{2})(?:-([0-9]{2}))?)?"
    r"(?:T(?:([0-9]{2})(?::([0-9]{2})(?::([0-9]{2})(?:[.,]([0-9]{1,9}))?)?)?)?(Z|[+-][0-9]{2}(?::?[0-9]{2})?)?)?"
)
# Bounded: a longer string is no time, and int() of thousands of digits raises.
_EPOCH_MILLIS = re.compile(r"-?[0-9]{1,20}(?:\.[0-9]{1,9})?")
_WRITES = frozenset({"create", "index"})
_ACTIONS = _WRITES | {"delete", "update"}


class BulkItem(msgspec.Struct, frozen=True):
    """One action of a bulk request: its entry document, or why it cannot be one (an Elasticsearch error
    type and reason)."""

    action: str
    index: str | None
    id: str | None
    document: dict[str, Any] | None = None
    error_type: str = ""
    reason: str = ""


class BulkOutcome(msgspec.Struct, frozen=True):
    """How one item ended: stored (``log_id``), or refused with an error type and reason."""

    log_id: str = ""
    error_type: str = ""
    reason: str = ""


def bulk_items(body: bytes, *, path_index: str | None, limits: Limits) -> list[BulkItem]:
    """The items of a bulk body, in order. PayloadTooLarge for more items than a batch holds (counted as
    lines before any is decoded) or more JSON values than a body of POST /logs; ValidationFailed for a
    body Elasticsearch refuses whole (a malformed or unknown action, a missing source)."""
    lines = ndjson_lines(body, max_lines=2 * limits.max_batch_entries)
    if lines is None:
        raise _too_many(limits)
    check_json_values(body, limits, documents=max(len(lines), 1))
    items: list[BulkItem] = []
    position = 0
    while position < len(lines):
        action, meta = _action(lines[position].group(), position + 1)
        position += 1
        index = meta.get("_index", path_index)
        raw_id = meta.get("_id")
        if not isinstance(index, str | None) or not isinstance(raw_id, str | None):
            raise _malformed(position, "_index and _id must be strings")
        if action == "delete":
            items.append(_unsupported(action, index, raw_id))
            continue
        if position == len(lines):
            raise _malformed(position, f"the {action} action has no source document on the next line")
        source_line = lines[position].group()
        position += 1
        if action == "update":
            items.append(_unsupported(action, index, raw_id))
            continue
        try:
            source = msgspec.json.decode(source_line)
        except (msgspec.DecodeError, RecursionError) as exc:
            reason = f"failed to parse the source document: {exc}"
            items.append(
                BulkItem(action, index, raw_id, error_type="mapper_parsing_exception", reason=reason)
            )
            continue
        if not isinstance(source, dict):
            reason = "the source document must be a JSON object"
            items.append(
                BulkItem(action, index, raw_id, error_type="mapper_parsing_exception", reason=reason)
            )
            continue
        items.append(BulkItem(action, index, raw_id, entry_document(source, index, raw_id)))
    if not items:
        raise ValidationFailed([FieldError("body", "holds no bulk actions")])
    if len(items) > limits.max_batch_entries:
        raise _too_many(limits)
    return items


def entry_document(source: dict[str, Any], index: str | None, doc_id: str | None) -> dict[str, Any]:
    """A source document of ECS fields as an entry document of POST /logs (the mapping above)."""
    doc: dict[str, Any] = {}
    for field in ("@timestamp", "timestamp"):
        if field in source:
            doc["timestamp"] = _es_time(source.pop(field))
            break
    if "message" in source:
        doc["message"] = source.pop("message")
    elif isinstance(source.get("log"), str):
        doc["message"] = source.pop("log")
    level = _take(source, "log", "level", lambda value: isinstance(value, str) and bool(level_named(value)))
    if level is not None:
        doc["level"] = level
    service = _take(source, "service", "name", lambda value: True)
    if service is not None:
        doc["service_name"] = service
    elif index is not None and is_service_name(index):
        doc["service_name"] = index
    if doc_id is not None:
        doc["log_id"] = _log_id(doc_id, index)
    if source:
        doc["metadata"] = source
    return doc


def _es_time(value: Any) -> Any:
    """A time as Elasticsearch reads it, written in a form the rule of POST /logs takes: that rule stays
    strict RFC 3339 for our own API, while agents send what Elasticsearch accepts. What this does not
    recognise is passed on as it is, for that rule to take (an RFC 3339 form Elasticsearch refuses) or
    refuse."""
    if not isinstance(value, str):
        return value  # a JSON number: that rule reads epoch numbers already
    date = _ES_DATE.fullmatch(value)
    if date is None:
        if _EPOCH_MILLIS.fullmatch(value) is None:
            return value
        return float(value) if "." in value else int(value)
    year, month, day, hour, minute, second, fraction, zone = date.groups()
    offset = "Z" if zone is None or zone == "Z" else f"{zone[:3]}:{zone[-2:] if len(zone) > 3 else '00'}"
    return (
        f"{year}-{month or '01'}-{day or '01'}T{hour or '00'}:{minute or '00'}:{second or '00'}"
        f"{'.' + fraction if fraction else ''}{offset}"
    )


def bulk_response(items: Sequence[BulkItem], outcomes: Sequence[BulkOutcome], took_ms: int) -> bytes:
    """Elasticsearch's answer to a bulk request: one result per item, in order, ``errors`` if any failed."""
    results = []
    for item, outcome in zip(items, outcomes, strict=True):
        # A refused item without an _id never had one: null, as Elasticsearch answers an item that failed
        # before it was given an id.
        result: dict[str, Any] = {"_index": item.index or "", "_id": item.id or outcome.log_id or None}
        if outcome.error_type:
            result |= {"status": 400, "error": {"type": outcome.error_type, "reason": outcome.reason}}
        else:
            result |= {"_version": 1, "result": "created", "status": 201}
        results.append({item.action: result})
    errors = any(outcome.error_type for outcome in outcomes)
    return msgspec.json.encode({"took": took_ms, "errors": errors, "items": results})


def version_document() -> dict[str, Any]:
    """What ``GET /`` answers: the version document agents read to choose their protocol (an 8.x cluster),
    with ``name`` saying which server this really is."""
    return {
        "name": "logsvc",
        "cluster_name": "logsvc",
        "cluster_uuid": "logsvc",
        "version": {
            "number": ES_VERSION,
            "build_flavor": "default",
            "build_type": "logsvc",
            "minimum_wire_compatibility_version": "7.17.0",
            "minimum_index_compatibility_version": "7.0.0",
        },
        "tagline": "You Know, for Search",
    }


def license_document() -> dict[str, Any]:
    """What ``GET /_license`` answers: an active basic license, which Filebeat checks before it sends."""
    return {"license": {"uid": "logsvc", "type": "basic", "mode": "basic", "status": "active"}}


def _action(line: bytes, number: int) -> tuple[str, dict[str, Any]]:
    try:
        doc = msgspec.json.decode(line)
    except (msgspec.DecodeError, RecursionError):
        raise _malformed(number, "is not JSON") from None
    if not isinstance(doc, dict) or len(doc) != 1:
        raise _malformed(number, 'must be one action object such as {"create": {}}')
    ((action, meta),) = doc.items()
    if action not in _ACTIONS or not isinstance(meta, dict):
        raise _malformed(number, "has no create, index, delete or update action")
    return action, meta


def _take(source: dict[str, Any], parent: str, child: str, wanted: Callable[[Any], bool]) -> Any:
    """The value of ``parent.child`` (a dotted key, or nested) when ``wanted`` takes it, then removed from
    the source (the parent too when that leaves it empty); None, the source untouched, otherwise."""
    dotted = f"{parent}.{child}"
    if dotted in source:
        return source.pop(dotted) if wanted(source[dotted]) else None
    nested = source.get(parent)
    if not isinstance(nested, dict) or child not in nested or not wanted(nested[child]):
        return None
    value = nested.pop(child)
    if not nested:
        del source[parent]
    return value


def _log_id(doc_id: str, index: str | None) -> str:
    try:
        parse_log_id(doc_id)
    except ValueError:
        return str(uuid.uuid5(_ID_NAMESPACE, f"{index or ''}\x00{doc_id}"))
    return doc_id


def _unsupported(action: str, index: str | None, doc_id: str | None) -> BulkItem:
    reason = f"the {action} action is not supported: logs are append-only (send create or index)"
    return BulkItem(action, index, doc_id, error_type="illegal_argument_exception", reason=reason)


def _malformed(line: int, problem: str) -> ValidationFailed:
    return ValidationFailed([FieldError("body", f"bulk line {line} (an action line) {problem}")])


def _too_many(limits: Limits) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"a bulk request holds at most {limits.max_batch_entries} items; send smaller batches "
        "(Filebeat bulk_max_size, Fluent Bit Buffer_Size, Vector batch.max_events)"
    )
