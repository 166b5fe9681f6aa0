"""The rules an incoming entry must keep, checked field by field so that a rejected batch names every bad
entry and field at once.

Two paths share them: the documents of ``POST /logs`` (``validate_entries``, ``validate_each``), and the
records of a shipper's protocol (OTLP, Loki), which their mappers read straight into ``mapped_entry``
without first making a document of each to be read again. Each field's rule is one function both call."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, cast

import msgspec
import uuid_utils

from logsvc.domain.entries import (
    DEFAULT_LOG_TYPE,
    DEFAULT_SERVICE,
    LEVEL_ALIAS,
    LEVEL_ALIAS_RULE,
    LEVEL_RULE,
    MAX_LOG_TYPE_CHARS,
    SERVICE_RULE,
    Level,
    Limits,
    NewEntry,
    is_service_name,
    level_named,
    parse_log_id,
)
from logsvc.domain.timestamps import parse_timestamp
from logsvc.errors import FieldError, ValidationFailed

__all__ = [
    "MAX_FUTURE_US",
    "Source",
    "mapped_entry",
    "message_problem",
    "service_name_rule",
    "timestamp_problem",
    "validate_each",
    "validate_entries",
]

MAX_FUTURE_US = 2 * 3600 * 1_000_000
_ENTRY_FIELDS = frozenset(
    {
        "log_id",
        "service_name",
        "timestamp",
        "level",
        "severity",
        "log_type",
        "message",
        "metadata",
        "received_at",
    }
)


def validate_entries(docs: Sequence[Any], *, now_us: int, limits: Limits, batch: bool) -> list[NewEntry]:
    """Every entry validated and normalised, or ValidationFailed listing every broken rule."""
    if len(docs) > limits.max_batch_entries:
        raise ValidationFailed(
            [FieldError("body", f"a batch holds at most {limits.max_batch_entries} entries; got {len(docs)}")]
        )
    errors: list[FieldError] = []
    entries: list[NewEntry] = []
    for position, doc in enumerate(docs):
        index = position if batch else None
        entry = _validate_entry(doc, index, now_us, limits, errors)
        if entry is not None:
            entries.append(entry)
    if errors:
        raise ValidationFailed(errors)
    return entries


def validate_each(docs: Sequence[Any], *, now_us: int, limits: Limits) -> list[NewEntry | list[FieldError]]:
    """Each document validated alone, as a shipper's records are (a broken one is refused, not the batch):
    its entry, or the rules it breaks. The caller has bounded how many there are."""
    errors: list[FieldError] = []
    outcomes: list[NewEntry | list[FieldError]] = []
    for doc in docs:
        failed = len(errors)
        entry = _validate_entry(doc, None, now_us, limits, errors)
        outcomes.append(errors[failed:] if entry is None else entry)
    return outcomes


# Records a broken rule of one field of the entry being checked.
_Fail = Callable[[str, str], None]


def _validate_entry(
    doc: Any, index: int | None, now_us: int, limits: Limits, errors: list[FieldError]
) -> NewEntry | None:
    if not isinstance(doc, dict):
        errors.append(FieldError("", "must be a JSON object", index))
        return None
    failed = len(errors)

    def fail(field: str, message: str) -> None:
        errors.append(FieldError(field, message, index))

    if not _ENTRY_FIELDS.issuperset(doc):  # without building a set for the many entries that are fine
        for key in doc.keys() - _ENTRY_FIELDS:
            fail(str(key), "unknown field (allowed: " + ", ".join(sorted(_ENTRY_FIELDS)) + ")")
    message = doc.get("message")
    problem = message_problem(message, limits)
    if problem:
        fail("message", problem)
    service, problem = service_name_rule(doc.get("service_name"))
    if problem:
        fail("service_name", problem)
    level = _level(doc, fail)
    log_type = _log_type(doc.get("log_type"), fail)
    raw_id = doc.get("log_id")
    log_id = _log_id(raw_id, fail)
    ts_us = _timestamp(doc.get("timestamp"), log_id if raw_id is not None else None, now_us, fail)
    metadata = _metadata(doc.get("metadata"), limits, fail)
    if len(errors) > failed:
        return None
    return NewEntry(log_id, service, ts_us, level, log_type, cast(str, message), metadata, now_us)


class Source:
    """What the records of one source of a shipper's request share (an OTLP resource and scope, a Loki
    stream): their service, and members of each one's metadata, checked by the rules once for them all."""

    __slots__ = ("checked", "members", "members_text", "service", "service_problem")

    def __init__(self, service: object, members: dict[str, Any], limits: Limits) -> None:
        """``service``: the service named (None: none); ``members``: what every entry's metadata holds."""
        self.service, self.service_problem = service_name_rule(service)
        self.members = members
        self.checked = frozenset(members) if _check_metadata(members, limits) is None else frozenset()
        # The metadata of the records that have none of their own.
        self.members_text = _metadata_text(members, limits, self.checked)


def mapped_entry(
    source: Source,
    message: Any,
    level: Level,
    ts_us: int | None,
    log_id: bytes | None,
    metadata: dict[str, Any] | None,
    *,
    now_us: int,
    limits: Limits,
) -> NewEntry | list[FieldError]:
    """A shipper's record, as its mapper reads it, made an entry by the rules of ``POST /logs``, or the
    rules it breaks (named by the fields of ``POST /logs``, in the order it names them). ``ts_us``: the
    event time (None: the receive time); ``log_id``: None for a new one; ``metadata``: the entry's (its
    source's members with the same values included; the members themselves when it has no others), None
    for none."""
    # Most records keep every rule: the problems are named in a list only once one is found.
    message_rule = message_problem(message, limits)
    if ts_us is None:
        ts_us = now_us
        time_rule = None
    else:
        time_rule = timestamp_problem(ts_us, now_us)
    text = metadata_rule = None
    if metadata is not None:
        text, metadata_rule = (
            source.members_text
            if metadata is source.members
            else _metadata_text(metadata, limits, source.checked)
        )
    if message_rule or source.service_problem or time_rule or metadata_rule:
        named = (
            ("message", message_rule),
            ("service_name", source.service_problem),
            ("timestamp", time_rule),
            ("metadata", metadata_rule),
        )
        return [FieldError(field, problem) for field, problem in named if problem]
    return NewEntry(
        log_id or _new_log_id(), source.service, ts_us, level, DEFAULT_LOG_TYPE, message, text, now_us
    )


def message_problem(message: object, limits: Limits) -> str | None:
    """The rule of an entry's message that ``message`` breaks, if any."""
    if message is None:
        return "is required"
    if not isinstance(message, str):
        return "must be a string"
    if not message.strip():
        return "must not be blank"
    if len(message) * 4 > limits.max_message_bytes and len(message.encode()) > limits.max_message_bytes:
        return f"must be at most {limits.max_message_bytes} bytes of UTF-8"
    return None


def service_name_rule(service: object) -> tuple[Any, str | None]:
    """The service a ``service_name`` names (None: the default one), and the rule it breaks, if any."""
    if service is None:
        return DEFAULT_SERVICE, None
    if not isinstance(service, str) or not is_service_name(service):
        return service, SERVICE_RULE
    return service, None


def _level(doc: dict[str, Any], fail: _Fail) -> Level:
    raw_level = doc.get("level")
    if doc.get(LEVEL_ALIAS) is not None:
        if raw_level is not None:
            fail(LEVEL_ALIAS, LEVEL_ALIAS_RULE)
        raw_level = doc[LEVEL_ALIAS]
        level_field = LEVEL_ALIAS
    else:
        level_field = "level"
    if raw_level is None:
        return Level.INFO
    found = level_named(raw_level) if isinstance(raw_level, str) else None
    if found is None:
        fail(level_field, LEVEL_RULE)
        return Level.INFO
    return found


def _log_type(log_type: Any, fail: _Fail) -> Any:
    if log_type is None:
        return DEFAULT_LOG_TYPE
    if (
        not isinstance(log_type, str)
        or not 1 <= len(log_type) <= MAX_LOG_TYPE_CHARS
        or not log_type.isprintable()
    ):
        fail("log_type", f"must be a string of 1-{MAX_LOG_TYPE_CHARS} printable characters")
    return log_type


def _log_id(raw_id: Any, fail: _Fail) -> bytes:
    if raw_id is None:
        return _new_log_id()
    try:
        return parse_log_id(raw_id)
    except ValueError as exc:
        fail("log_id", str(exc))
        return b""


def _new_log_id() -> bytes:
    return uuid_utils.uuid7().bytes


def _timestamp(raw_ts: Any, client_id: bytes | None, now_us: int, fail: _Fail) -> int:
    """The event time: ``timestamp`` when given, else the time in a client's UUIDv7, else the receive time."""
    # A client's UUIDv7 carries the time it was made: taking that rather than the receive time as the
    # default makes a retried entry identical to the first try, which keyed stores (DynamoDB) need.
    ts_us, ts_field = (
        (_uuid7_us(client_id), "log_id") if client_id is not None and _is_uuid7(client_id) else (now_us, "")
    )
    if raw_ts is not None:
        ts_field = "timestamp"
        try:
            ts_us = parse_timestamp(raw_ts)
        except ValueError as exc:
            fail("timestamp", str(exc))
            ts_field = ""
    if ts_field:
        problem = timestamp_problem(ts_us, now_us)
        if problem:
            fail(ts_field, problem if ts_field == "timestamp" else f"is a UUIDv7 whose time {problem}")
    return ts_us


def _metadata(raw_metadata: Any, limits: Limits, fail: _Fail) -> str | None:
    if raw_metadata is None:
        return None
    if not isinstance(raw_metadata, dict):
        fail("metadata", "must be a JSON object")
        return None
    text, problem = _metadata_text(raw_metadata, limits)
    if problem:
        fail("metadata", problem)
    return text


def _metadata_text(
    metadata: dict[str, Any], limits: Limits, checked: frozenset[str] = frozenset()
) -> tuple[str | None, str | None]:
    """The metadata object as compact JSON text, or the rule it breaks. ``checked``: members whose values
    are known to keep the nesting and key rules (a source's, checked once)."""
    problem = _check_metadata(metadata, limits, checked)
    if problem:
        return None, problem
    encoded = msgspec.json.encode(metadata)
    if len(encoded) > limits.max_metadata_bytes:
        return None, f"must be at most {limits.max_metadata_bytes} bytes as JSON"
    return encoded.decode(), None


def timestamp_problem(us: int, now_us: int) -> str | None:
    """The rule an event time (of the years 0001-9999) breaks, if any."""
    if us < 0:
        return "must not be before 1970-01-01T00:00:00Z"
    if us > now_us + MAX_FUTURE_US:
        return "must not be more than 2 hours in the future"
    return None


def _is_uuid7(log_id: bytes) -> bool:
    return len(log_id) == 16 and log_id[6] >> 4 == 7 and log_id[8] >> 6 == 0b10


def _uuid7_us(log_id: bytes) -> int:
    return int.from_bytes(log_id[:6]) * 1000


def _check_metadata(
    value: dict[str, Any], limits: Limits, checked: frozenset[str] = frozenset()
) -> str | None:
    """The first nesting or key-length rule the object breaks, if any; the values of its members named in
    ``checked`` are known to break none. (Leaving out subtrees that break no rule leaves the first problem
    found as it was: the others are walked in the same order.)"""
    # Every entry of a batch comes here: the limits are read once, the container types made once. (A plain
    # loop: map, max and set operations over the keys and types cost more on objects of a few members.)
    max_depth, max_key = limits.max_metadata_depth, limits.max_metadata_key_chars
    if max_depth < 1:
        return f"must be nested at most {max_depth} levels deep"
    stack: list[tuple[Any, int]] = []
    for key, child in value.items():
        if len(key) > max_key:
            return f"keys must be at most {max_key} characters; {key[:32]!r}... is longer"
        if isinstance(child, _CONTAINERS) and key not in checked:
            stack.append((child, 2))
    while stack:
        node, depth = stack.pop()
        if depth > max_depth:
            return f"must be nested at most {max_depth} levels deep"
        if isinstance(node, dict):
            for key, child in node.items():
                if len(key) > max_key:
                    return f"keys must be at most {max_key} characters; {key[:32]!r}... is longer"
                if isinstance(child, _CONTAINERS):
                    stack.append((child, depth + 1))
        else:
            stack.extend((child, depth + 1) for child in node if isinstance(child, _CONTAINERS))
    return None


_CONTAINERS = (dict, list)
