"""Loki's push API (``POST /loki/api/v1/push``) as our entries.

A push is JSON, ``{"streams": [{"stream": {labels}, "values": [["<epoch ns>", "<line>", {structured
metadata}], ...]}]}``, or a ``logproto.PushRequest`` in protobuf (``logsvc.domain.loki_proto``) whose labels
are one string in Prometheus' syntax (``logsvc.domain.labels``). Each entry becomes one of ours by the rules
of ``POST /logs`` (``logsvc.domain.validation.mapped_entry``; what breaks them is named by the fields of
``POST /logs``). The mapping:

- ``service_name``: the first of the labels ``service_name``, ``service``, ``app``, ``application``,
  ``job``, ``container`` (none of them: the default service);
- ``level``: the first of the labels ``level``, ``severity``, ``detected_level`` that names a level, else
  the first of the entry's structured metadata of those names that does, else ``level=`` of a logfmt line
  or the top-level ``"level"`` of a JSON line when it names one, else INFO;
- ``message``: the line; ``timestamp``: the entry's (epoch nanoseconds); ``log_type``: the default one;
- ``metadata``: ``{"labels": {...}, "structured_metadata": {...}}``, the labels and structured metadata
  not taken as the service or the level, each only when not empty;
- ``log_id``: a UUIDv7 of the entry's millisecond whose other bits are a hash of the stream's labels, the
  entry's nanosecond, its structured metadata and its line. A retried push stores nothing twice, and, as
  Loki keeps one of them, identical entries of a stream (same nanosecond, same line) are one entry.

A body that is not a push (not JSON or protobuf of these shapes, a timestamp that is not a string of epoch
nanoseconds) is refused whole, as Loki refuses it. A stream whose labels cannot be read is refused with its
entries, and an entry with an impossible timestamp alone; the others are kept (``LokiPush.refused``).
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Iterable
from typing import Any

import msgspec

from logsvc.domain.documents import check_json_values
from logsvc.domain.entries import LONGEST_LEVEL_NAME, Level, Limits, NewEntry, derived_log_id, level_named
from logsvc.domain.labels import is_label_name, parse_labels
from logsvc.domain.loki_proto import push_request
from logsvc.domain.timestamps import ns_to_us
from logsvc.domain.validation import Source, mapped_entry
from logsvc.domain.wire import check_expanded, check_records, check_wire, needs_wire_count
from logsvc.errors import FieldError, ValidationFailed

__all__ = ["LEVEL_KEYS", "SERVICE_LABELS", "LokiPush", "loki_entries"]

SERVICE_LABELS = ("service_name", "service", "app", "application", "job", "container")
LEVEL_KEYS = ("level", "severity", "detected_level")
_LEVEL_KEYS = frozenset(LEVEL_KEYS)
_ENTRY = "logproto.EntryAdapter"
_NANOS = 1_000_000_000
# A logfmt line's first key ``level`` (at the start or after a space or tab) and its value: `"quoted"` or up
# to the next space.
_LOGFMT_LEVEL = re.compile(r'(?:^|(?<=[ \t]))level=(?:"([^"]*)"|([^ \t"]*))')


class _JsonLevel(msgspec.Struct):
    level: Any = None


_JSON_LEVEL = msgspec.json.Decoder(_JsonLevel)


class _JsonEntry(msgspec.Struct, array_like=True, frozen=True, forbid_unknown_fields=True):
    ts: str
    line: str
    structured_metadata: dict[str, str] | None = None


class _JsonStream(msgspec.Struct, frozen=True):
    stream: dict[str, str]
    values: list[_JsonEntry]


class _JsonPush(msgspec.Struct, frozen=True):
    streams: list[_JsonStream]


_JSON_PUSH = msgspec.json.Decoder(_JsonPush)
_encode = msgspec.json.encode

# One entry as either format gives it: epoch ns (None: not sent), line, structured metadata (None: none).
_Entry = tuple[int | None, str, dict[str, str] | None]


class LokiPush(msgspec.Struct, frozen=True):
    """Each entry of a push as ours or the rules of ``POST /logs`` it breaks, and where each was (stream,
    entry); and what was refused before that, named by its place (``streams[2].values[5]``; ``entries`` in
    protobuf)."""

    outcomes: list[NewEntry | list[FieldError]]
    places: list[tuple[int, int]]
    refused: list[FieldError]
    refused_entries: int
    entries_field: str


def loki_entries(body: bytes, *, as_json: bool, limits: Limits, now_us: int) -> LokiPush:
    """The entries of a push (JSON, or protobuf already inflated from snappy), received at ``now_us``.
    ValidationFailed for a body that is not a push; PayloadTooLarge for more entries than a batch holds or
    more values than a body of POST /logs (a JSON body counted as POST /logs counts it, a large protobuf
    one on the wire, both before they are decoded), or for entries that, each with its stream's labels,
    come to more than a body may inflate to."""
    if as_json:
        check_json_values(body, limits)
        streams = _json_streams(body, limits)
    else:
        streams = _protobuf_streams(body, limits)
    check_expanded(
        len(body) + sum(size * count for _, size, _, count in streams),
        limits,
        what="the entries with their stream's labels",
        advice="send smaller batches or fewer labels",
    )
    return _entries(streams, "values" if as_json else "entries", limits, now_us)


# A stream as either format gives it: its labels (or why they cannot be read), how many bytes they take,
# its entries and how many.
_Stream = tuple[tuple[tuple[str, str], ...] | str, int, Iterable[_Entry], int]


def _json_streams(body: bytes, limits: Limits) -> list[_Stream]:
    try:
        push = _JSON_PUSH.decode(body)
    except msgspec.DecodeError as exc:
        raise ValidationFailed([FieldError("body", f"is not a Loki push (JSON): {exc}")]) from None
    check_records(sum(len(stream.values) for stream in push.streams), limits, noun="entries")
    streams: list[_Stream] = []
    for number, stream in enumerate(push.streams):
        bad = [name for name in stream.stream if not is_label_name(name)]
        labels: tuple[tuple[str, str], ...] | str = tuple(stream.stream.items())
        if bad:
            labels = f"{bad[0]!r} is not a label name ([a-zA-Z_][a-zA-Z0-9_]*)"
        size = sum(len(name) + len(value) for name, value in stream.stream.items())
        entries = [
            (_json_time(entry.ts, number, index), entry.line, entry.structured_metadata)
            for index, entry in enumerate(stream.values)
        ]
        streams.append((labels, size, entries, len(entries)))
    return streams


def _json_time(ts: str, stream: int, index: int) -> int:
    if not (ts.isascii() and ts.isdigit()):
        raise ValidationFailed(
            [
                FieldError(
                    f"streams[{stream}].values[{index}][0]",
                    f'must be a string of epoch nanoseconds such as "1700000000000000000"; got {ts[:40]!r}',
                )
            ]
        )
    digits = ts.lstrip("0")
    # Over 22 digits is past the year 9999, refused by the rules as the first such number is (int() would
    # refuse a string of over 4,300 digits with an error of its own).
    return int(digits or "0") if len(digits) <= 22 else 10**22


def _protobuf_streams(body: bytes, limits: Limits) -> list[_Stream]:
    from google.protobuf.message import DecodeError  # noqa: PLC0415 (see logsvc.domain.loki_proto)

    request_class = push_request()
    if needs_wire_count(body, limits):
        check_wire(body, request_class.DESCRIPTOR, _ENTRY, limits, noun="entries", kind="a Loki PushRequest")
    request = request_class()
    try:
        request.ParseFromString(body)
    except DecodeError as exc:
        raise ValidationFailed(
            [FieldError("body", f"is not a Loki PushRequest (snappy-compressed protobuf): {exc}")]
        ) from None
    check_records(sum(len(stream.entries) for stream in request.streams), limits, noun="entries")
    streams: list[_Stream] = []
    for number, stream in enumerate(request.streams):
        labels: tuple[tuple[str, str], ...] | str
        text = _text(stream.labels)
        try:
            labels = parse_labels(text)
        except ValueError as exc:
            labels = f"{text[:100]!r} {exc}"
        entries = _protobuf_entries(stream.entries, number)
        streams.append((labels, len(stream.labels), entries, len(stream.entries)))
    return streams


def _text(raw: bytes) -> str:
    """A protobuf string, read as bytes (``logsvc.domain.loki_proto``): bytes that are not UTF-8 become
    U+FFFD, as on the syslog listener, so that the entry is kept, as Loki keeps it."""
    return raw.decode("utf-8", "replace")


def _protobuf_entries(entries: Any, stream: int) -> Iterable[_Entry]:
    for index, entry in enumerate(entries):
        ns = None
        if entry.HasField("timestamp"):
            time = entry.timestamp
            nanos = time.nanos
            if not 0 <= nanos < _NANOS:
                # Not a google.protobuf.Timestamp: Loki refuses the whole push, as for a JSON one.
                where = f"streams[{stream}].entries[{index}].timestamp.nanos"
                raise ValidationFailed([FieldError(where, f"must be 0 to 999999999; got {nanos}")])
            ns = time.seconds * _NANOS + nanos
        metadata = {_text(pair.name): _text(pair.value) for pair in entry.structuredMetadata} or None
        yield ns, _text(entry.line), metadata


def _entries(streams: list[_Stream], entries_field: str, limits: Limits, now_us: int) -> LokiPush:
    outcomes: list[NewEntry | list[FieldError]] = []
    places: list[tuple[int, int]] = []
    refused: list[FieldError] = []
    refused_entries = 0
    for number, (labels, _, entries, count) in enumerate(streams):
        if isinstance(labels, str) or not labels:
            why = labels if isinstance(labels, str) else "a stream needs at least one label"
            refused.append(FieldError(f"streams[{number}]", f"labels: {why} (its {count} entries refused)"))
            refused_entries += count
            continue
        rule = _StreamRule(labels, limits, now_us)
        for index, (ns, line, metadata) in enumerate(entries):
            try:
                outcomes.append(rule.entry(ns, line, metadata))
            except ValueError as exc:
                refused.append(FieldError(f"streams[{number}].{entries_field}[{index}]", f"timestamp {exc}"))
                refused_entries += 1
                continue
            places.append((number, index))
    return LokiPush(outcomes, places, refused, refused_entries, entries_field)


class _StreamRule:
    """What a stream's labels give each of its entries: the service, the level, the metadata, the hash."""

    def __init__(self, labels: tuple[tuple[str, str], ...], limits: Limits, now_us: int) -> None:
        named = dict(labels)
        service = next((named.pop(key) for key in SERVICE_LABELS if key in named), None)
        self.level = _take_level(named)
        self.labels = named
        # The labels left are checked once as every entry's metadata member.
        self.source = Source(service, {"labels": named} if named else {}, limits)
        self.members = self.source.members or None
        self.limits, self.now_us = limits, now_us
        # The entries' hashes start from the labels in order of name, as Loki orders a stream's labels.
        self.hash = hashlib.blake2b(msgspec.json.encode(sorted(labels)), digest_size=10)

    def entry(
        self, ns: int | None, line: str, metadata: dict[str, str] | None
    ) -> NewEntry | list[FieldError]:
        """One entry (``metadata``, its structured metadata, goes into the entry's), or the rules of
        ``POST /logs`` it breaks; ValueError for a time no RFC 3339 date can write."""
        level = self.level
        own = metadata
        if level is None and metadata and not _LEVEL_KEYS.isdisjoint(metadata):
            own = dict(metadata)
            level = _take_level(own)
        if level is None:
            level = _line_level(line)
        entry_metadata: dict[str, Any] | None = self.members
        if own:
            entry_metadata = (
                {"labels": self.labels, "structured_metadata": own}
                if self.labels
                else {"structured_metadata": own}
            )
        ts_us = log_id = None
        if ns is not None:
            ts_us = ns_to_us(ns)
            if 0 <= ns < 2**63:  # any other time is refused by the rules (before 1970, far ahead)
                digest = self.hash.copy()
                digest.update(_encode((ns, line, metadata)))
                log_id = derived_log_id(ns // 1_000_000, digest.digest())
        return mapped_entry(
            self.source,
            line,
            level or Level.INFO,
            ts_us,
            log_id,
            entry_metadata,
            now_us=self.now_us,
            limits=self.limits,
        )


def _take_level(pairs: dict[str, str]) -> Level | None:
    """The level the first of LEVEL_KEYS that names one gives, taken out of ``pairs``."""
    for key in LEVEL_KEYS:
        value = pairs.get(key)
        level = _level_of(value) if value is not None else None
        if level is not None:
            del pairs[key]
            return level
    return None


def _level_of(value: str) -> Level | None:
    """The level ``value`` names. (Lines say their few level words again and again: each is looked up
    once, and only words short enough to name one are kept.)"""
    return _level_of_word(value) if len(value) <= LONGEST_LEVEL_NAME else None


_level_of_word = functools.lru_cache(maxsize=256)(level_named)


def _line_level(line: str) -> Level | None:
    """The level a JSON line's top-level ``"level"`` or a logfmt line's ``level=`` names, if any."""
    if line.startswith("{"):
        try:
            found = _JSON_LEVEL.decode(line).level
        except (msgspec.DecodeError, RecursionError):
            found = None
        else:
            return _level_of(found) if isinstance(found, str) else None
    value = _LOGFMT_LEVEL.search(line)
    if value is None:
        return None
    return _level_of(value.group(1) if value.group(1) is not None else value.group(2))
