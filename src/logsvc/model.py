"""The data model: what a log entry is, what a query is, and every rule that decides whether they are valid.

Incoming JSON is decoded untyped and checked here field by field, so that a rejected batch names every bad
entry and field at once (a typed decoder stops at the first error). The msgspec Structs below describe the
wire format for OpenAPI and encode responses.
"""

from __future__ import annotations

import base64
import binascii
import enum
import functools
import itertools
import math
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, cast

import msgspec
import uuid_utils

from logsvc.errors import FieldError, PayloadTooLarge, ValidationFailed

__all__ = [
    "MAX_LIMIT",
    "MAX_PAGE_BYTES",
    "QUERY_PARAMETERS",
    "VALUES_PER_ENTRY",
    "Level",
    "Limits",
    "LogEntry",
    "LogEntryIn",
    "NewEntry",
    "Page",
    "Query",
    "ReadParameters",
    "RetentionRule",
    "decode_cursor",
    "decode_documents",
    "encode_cursor",
    "entry_bytes",
    "format_log_id",
    "format_timestamp",
    "parse_log_id",
    "parse_query",
    "parse_timestamp",
    "parse_whole_number",
    "retention_rules",
    "timestamp_in_range",
    "validate_entries",
]


class Level(enum.IntEnum):
    """Severity; the numbers are OpenTelemetry's SeverityNumber, so OTLP maps without a table."""

    TRACE = 1
    DEBUG = 5
    INFO = 9
    WARN = 13
    ERROR = 17
    FATAL = 21


_LEVEL_BY_NAME: dict[str, Level] = {level.name.lower(): level for level in Level} | {
    "warning": Level.WARN,
    "err": Level.ERROR,
    "critical": Level.FATAL,
    "information": Level.INFO,
}
_LEVEL_RULE = "must be one of TRACE, DEBUG, INFO, WARN, ERROR, FATAL"

SERVICE_NAME_PATTERN = r"^[A-Za-z0-9._:/-]{1,128}$"
_SERVICE_NAME = re.compile(SERVICE_NAME_PATTERN)
_SERVICE_RULE = "must be 1-128 characters of A-Z a-z 0-9 . _ : / -"
MAX_LOG_TYPE_CHARS = 64
DEFAULT_SERVICE = "default"
DEFAULT_LOG_TYPE = "application"
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_FUTURE_US = 2 * 3600 * 1_000_000
MAX_QUERY_CHARS = 1024
MAX_HOURS = 24 * 366 * 100
# A page stops growing once its entries pass this many bytes (message and metadata), and always holds at
# least one: a Lambda answer must stay under 6 MB, and a read's memory is bounded by this rather than by
# limit x the largest entry (1000 x 256 KiB). The next page starts after the last entry given.
MAX_PAGE_BYTES = 3 * 1024 * 1024
HARD_MAX_MESSAGE_BYTES = 1024 * 1024
# What a body may cost to decode: this many JSON values per entry of a full batch, on average (the fields
# and the metadata). A decoded value takes 30-70 bytes against 2-3 bytes of JSON, so the count of values,
# not the size, bounds the memory of a body: 32 MiB of "{}," would be 11 million dicts, about 900 MB.
VALUES_PER_ENTRY = 100
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
# A non-blank NDJSON line, from its first non-blank byte (bytes.splitlines breaks at \r and \n alone).
_NDJSON_LINE = re.compile(rb"\S[^\r\n]*")

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
_TIMESTAMP_RULE = (
    "must be an RFC 3339 date-time with an offset or Z (e.g. 2024-05-01T12:00:00Z) "
    "or a number of epoch seconds, milliseconds, microseconds or nanoseconds"
)
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:[Zz]|([+-])(\d{2}):(\d{2}))"
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
# The times RFC 3339 can write (years 0001-9999); beyond them a number would overflow the stores' integers.
_MIN_US = (datetime(1, 1, 1, tzinfo=UTC) - _EPOCH) // _MICROSECOND
_MAX_US = (datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC) - _EPOCH) // _MICROSECOND
_WHOLE_NUMBER = re.compile(r"[0-9]+")
_NUMBER = re.compile(r"-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")


class Limits(msgspec.Struct, frozen=True):
    """Size limits of one entry and one batch."""

    max_message_bytes: int = 256 * 1024
    max_metadata_bytes: int = 64 * 1024
    max_metadata_depth: int = 8
    max_metadata_key_chars: int = 128
    max_batch_entries: int = 10_000
    max_decompressed_bytes: int = 32 * 1024 * 1024

    @property
    def max_body_values(self) -> int:
        """JSON values a body may hold: a full batch of average entries, plus one entry with metadata as
        large as allowed (each value takes at least 2 bytes of it), so that a small batch limit still
        admits any valid entry."""
        return self.max_batch_entries * VALUES_PER_ENTRY + self.max_metadata_bytes // 2


class NewEntry(msgspec.Struct, frozen=True, gc=False):
    """A validated entry, normalised for storage: times are integer microseconds since the epoch (UTC)."""

    log_id: bytes
    service_name: str
    ts_us: int
    level: Level
    log_type: str
    message: str
    metadata: str | None
    received_us: int


JsonObject = Annotated[msgspec.Raw, msgspec.Meta(extra_json_schema={"type": "object"})]


class LogEntry(msgspec.Struct, frozen=True, gc=False):
    """A stored entry as the API returns it."""

    log_id: str
    service_name: str
    timestamp: Annotated[str, msgspec.Meta(description="event time, RFC 3339 UTC with 6 fractional digits")]
    level: Annotated[str, msgspec.Meta(extra_json_schema={"enum": [level.name for level in Level]})]
    log_type: str
    message: str
    metadata: JsonObject | None
    received_at: str


class LogEntryIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """An entry as a client sends it (documentation of the input; the rules live in validate_entries)."""

    message: Annotated[
        str, msgspec.Meta(min_length=1, description="required, non-blank, at most 256 KiB of UTF-8")
    ]
    # Every optional field may also be null, which means the same as absent.
    service_name: Annotated[str, msgspec.Meta(pattern=SERVICE_NAME_PATTERN)] | None = DEFAULT_SERVICE
    timestamp: (
        Annotated[str, msgspec.Meta(description="RFC 3339 with offset or Z")]
        | Annotated[float, msgspec.Meta(ge=0, description="epoch seconds, ms, µs or ns (magnitude decides)")]
        | None
    ) = None
    level: (
        Annotated[str, msgspec.Meta(description="TRACE DEBUG INFO WARN ERROR FATAL, any case; synonyms")]
        | None
    ) = "INFO"
    severity: Annotated[str | None, msgspec.Meta(description="alias of level for older clients")] = None
    log_type: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_LOG_TYPE_CHARS)] | None = (
        DEFAULT_LOG_TYPE
    )
    metadata: dict[str, Any] | None = None
    log_id: Annotated[
        str | None, msgspec.Meta(description="client UUID: a retry with the same id is a no-op")
    ] = None
    received_at: Annotated[Any, msgspec.Meta(description="ignored (set by the server)")] = None


DAY_US = 86_400_000_000


class RetentionRule(msgspec.Struct, frozen=True):
    """Entries of services matching ``include`` (every service when empty) and none of ``exclude`` are
    kept ``days`` days by event time."""

    include: tuple[str, ...]
    exclude: tuple[str, ...]
    days: float

    def cutoff_us(self, now_us: int) -> int:
        return now_us - round(self.days * DAY_US)

    @property
    def scope(self) -> str:
        return "services " + ", ".join(self.include) if self.include else "every other service"


def retention_rules(default_days: float, by_service: Mapping[str, float]) -> list[RetentionRule]:
    """The rules in force: per-service patterns first (first match wins), then the default; 0 days keeps
    forever, so it makes no rule but still shields its services from the rules after it."""
    rules: list[RetentionRule] = []
    before: list[str] = []
    for pattern, days in by_service.items():
        rules.append(RetentionRule((pattern,), tuple(before), days))
        before.append(pattern)
    rules.append(RetentionRule((), tuple(before), default_days))
    return [rule for rule in rules if rule.days > 0]


class Query(msgspec.Struct, frozen=True):
    """A validated read: filters, page size and position; ``levels`` is None when no level filter applies."""

    limit: int = DEFAULT_LIMIT
    service_name: str | None = None
    levels: tuple[Level, ...] | None = None
    log_type: str | None = None
    since_us: int | None = None
    until_us: int | None = None
    terms: tuple[str, ...] = ()
    cursor: tuple[int, int | str] | None = None
    service_patterns: tuple[str, ...] = ()


class Page(msgspec.Struct, frozen=True):
    count: int
    logs: list[LogEntry]
    next_cursor: str | None


def format_timestamp(us: int) -> str:
    """Microseconds since the epoch as RFC 3339 UTC with exactly six fractional digits."""
    seconds, micros = divmod(us, 1_000_000)
    return f"{_second_prefix(seconds)}{micros:06d}Z"


@functools.lru_cache(maxsize=65_536)
def _second_prefix(seconds: int) -> str:
    # Entries come in bursts within the same seconds: formatting each second once makes reads 3x cheaper.
    t = time.gmtime(seconds)
    return f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}."


def entry_bytes(message: str, metadata: str | None) -> int:
    """What an entry counts against MAX_PAGE_BYTES, in every store: its message and metadata as UTF-8
    (measured without encoding when ASCII, as most log lines are)."""
    size = len(message) if message.isascii() else len(message.encode())
    if metadata is not None:
        size += len(metadata) if metadata.isascii() else len(metadata.encode())
    return size


def format_log_id(log_id: bytes) -> str:
    """16 bytes as a UUID's canonical text (lower-case, dashed)."""
    h = log_id.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def timestamp_in_range(us: int) -> int:
    """``us`` when it is a time of the years 0001-9999; ValueError otherwise."""
    if not _MIN_US <= us <= _MAX_US:
        raise ValueError("must be a time between the years 0001 and 9999")
    return us


def parse_whole_number(text: str) -> int:
    """A whole number written in ASCII digits only; ValueError otherwise. (int() also takes "5_0", "+5",
    " 5" and the digits of other scripts, which no client means as a number.)"""
    if _WHOLE_NUMBER.fullmatch(text) is None:
        raise ValueError(f"{text!r} is not a whole number")
    return int(text)


def parse_timestamp(value: object) -> int:
    """An RFC 3339 string or an epoch number as microseconds since the epoch; ValueError names the rule."""
    if isinstance(value, bool):
        raise ValueError(_TIMESTAMP_RULE)
    if isinstance(value, int | float):
        return timestamp_in_range(_epoch_number_to_us(value))
    if not isinstance(value, str):
        raise ValueError(_TIMESTAMP_RULE)
    match = _RFC3339.fullmatch(value)
    if match is None:
        raise ValueError(_TIMESTAMP_RULE)
    year, month, day, hour, minute, second, fraction, sign, off_h, off_m = match.groups()
    try:
        moment = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), tzinfo=UTC)
    except ValueError:
        raise ValueError(f"{_TIMESTAMP_RULE}; {value!r} is not a real date and time") from None
    us = (moment - _EPOCH) // _MICROSECOND + (int(fraction[:6].ljust(6, "0")) if fraction else 0)
    if sign:
        if int(off_h) > 23 or int(off_m) > 59:
            raise ValueError(f"{_TIMESTAMP_RULE}; offset {sign}{off_h}:{off_m} is out of range")
        offset = (int(off_h) * 3600 + int(off_m) * 60) * 1_000_000
        us = us - offset if sign == "+" else us + offset
    return timestamp_in_range(us)


def _epoch_number_to_us(value: float) -> int:
    if isinstance(value, float) and not math.isfinite(value):  # an int too large for a float is refused later
        raise ValueError(_TIMESTAMP_RULE)
    magnitude = abs(value)
    if magnitude < 1e11:
        scale = 1_000_000
    elif magnitude < 1e14:
        scale = 1_000
    elif magnitude < 1e17:
        return int(value)
    else:
        return int(value) // 1_000
    return round(value * scale)


def _check_timestamp_range(us: int, now_us: int) -> str | None:
    if us < 0:
        return "must not be before 1970-01-01T00:00:00Z"
    if us > now_us + MAX_FUTURE_US:
        return "must not be more than 2 hours in the future"
    return None


def parse_log_id(value: object) -> bytes:
    """A UUID in its canonical text form as 16 bytes; ValueError otherwise."""
    if not isinstance(value, str) or len(value) != 36:
        raise ValueError("must be a UUID such as 01890a5d-ac96-774b-bcce-b302099a8057")
    try:
        return uuid_utils.UUID(value).bytes
    except ValueError:
        raise ValueError("must be a UUID such as 01890a5d-ac96-774b-bcce-b302099a8057") from None


def decode_documents(body: bytes, *, ndjson: bool, limits: Limits) -> tuple[list[Any], bool]:
    """The entries of a request body and whether it was a single object (rather than a batch).

    A body holding more entries or JSON values than a batch may is refused before it is decoded, at the
    cost of a few scans of its bytes: decoding first would build every object of a gzip bomb.
    """
    if ndjson:
        docs = _decode_lines(body, limits)
        if not docs:
            raise ValidationFailed([FieldError("body", "contains no entries")])
        return docs, False
    _check_values(body, limits, documents=1)
    doc = _decode_json(body, "is")
    if isinstance(doc, dict) and "logs" in doc:
        if len(doc) != 1:
            extra = ", ".join(sorted(k for k in doc if k != "logs"))
            raise ValidationFailed(
                [FieldError("body", f'a {{"logs": [...]}} batch has no other fields; got {extra}')]
            )
        doc = doc["logs"]
        if not isinstance(doc, list):
            raise ValidationFailed([FieldError("logs", "must be an array of entries")])
    if isinstance(doc, list):
        if not doc:
            raise ValidationFailed([FieldError("body", "contains no entries")])
        return doc, False
    if isinstance(doc, dict):
        return [doc], True
    raise ValidationFailed(
        [FieldError("body", 'must be an entry object, an array of entries or {"logs": [...]}')]
    )


def _decode_lines(body: bytes, limits: Limits) -> list[Any]:
    lines = list(itertools.islice(_NDJSON_LINE.finditer(body), limits.max_batch_entries + 1))
    if len(lines) > limits.max_batch_entries:
        raise ValidationFailed(
            [FieldError("body", f"a batch holds at most {limits.max_batch_entries} entries; got more")]
        )
    _check_values(body, limits, documents=len(lines))
    docs = []
    for line in lines:
        try:
            docs.append(msgspec.json.decode(line.group()))
        except (msgspec.DecodeError, RecursionError) as exc:
            # Numbered only now: counting the lines before each one would scan the body once per line.
            raise _invalid_json(f"line {_line_number(body, line.start())} is", exc) from None
    return docs


def _line_number(body: bytes, offset: int) -> int:
    """The line, counted from 1 as bytes.splitlines counts them (\r\n, \r or \n ends one), of an offset."""
    crlf = body.count(b"\r\n", 0, offset)
    return 1 + body.count(b"\n", 0, offset) + body.count(b"\r", 0, offset) - crlf


def _check_values(body: bytes, limits: Limits, *, documents: int) -> None:
    """413 for a body of more JSON values than limits.max_body_values, counted without decoding it."""
    budget = limits.max_body_values - documents
    # Commas and brackets inside strings are not structure; without the strings the count is exact.
    if _values_at_most(body) <= budget or _values_at_most(_JSON_STRING.sub(b"", body)) <= budget:
        return
    raise PayloadTooLarge(
        f"the body holds more than {limits.max_body_values} JSON values; a batch holds at most "
        f"{limits.max_batch_entries} entries of about {VALUES_PER_ENTRY} values each: send smaller batches"
    )


def _values_at_most(data: bytes) -> int:
    # Each value but the first of an array or object follows a comma: with one first value per document,
    # this bounds the values (and, as many, the object keys) that decoding builds.
    return data.count(b",") + data.count(b"[") + data.count(b"{")


def _decode_json(data: bytes, subject: str) -> Any:
    try:
        return msgspec.json.decode(data)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise _invalid_json(subject, exc) from None


def _invalid_json(subject: str, exc: Exception) -> ValidationFailed:
    problem = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
    return ValidationFailed([FieldError("body", f"{subject} not valid JSON: {problem}")])


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


def _validate_entry(
    doc: Any, index: int | None, now_us: int, limits: Limits, errors: list[FieldError]
) -> NewEntry | None:
    if not isinstance(doc, dict):
        errors.append(FieldError("", "must be a JSON object", index))
        return None
    failed = len(errors)

    def fail(field: str, message: str) -> None:
        errors.append(FieldError(field, message, index))

    for key in doc.keys() - _ENTRY_FIELDS:
        fail(str(key), "unknown field (allowed: " + ", ".join(sorted(_ENTRY_FIELDS)) + ")")

    message = doc.get("message")
    if message is None:
        fail("message", "is required")
    elif not isinstance(message, str):
        fail("message", "must be a string")
    elif not message.strip():
        fail("message", "must not be blank")
    elif len(message) * 4 > limits.max_message_bytes and len(message.encode()) > limits.max_message_bytes:
        fail("message", f"must be at most {limits.max_message_bytes} bytes of UTF-8")

    service = doc.get("service_name")
    if service is None:
        service = DEFAULT_SERVICE
    elif not isinstance(service, str) or _SERVICE_NAME.fullmatch(service) is None:
        fail("service_name", _SERVICE_RULE)

    level = Level.INFO
    raw_level = doc.get("level")
    if "severity" in doc and doc["severity"] is not None:
        if raw_level is not None:
            fail("severity", "is an alias of level; send only one of them")
        raw_level = doc["severity"]
        level_field = "severity"
    else:
        level_field = "level"
    if raw_level is not None:
        found = _LEVEL_BY_NAME.get(raw_level.lower()) if isinstance(raw_level, str) else None
        if found is None:
            fail(level_field, _LEVEL_RULE)
        else:
            level = found

    log_type = doc.get("log_type")
    if log_type is None:
        log_type = DEFAULT_LOG_TYPE
    elif (
        not isinstance(log_type, str)
        or not 1 <= len(log_type) <= MAX_LOG_TYPE_CHARS
        or not log_type.isprintable()
    ):
        fail("log_type", f"must be a string of 1-{MAX_LOG_TYPE_CHARS} printable characters")

    raw_id = doc.get("log_id")
    log_id = b""
    if raw_id is None:
        log_id = uuid_utils.uuid7().bytes
    else:
        try:
            log_id = parse_log_id(raw_id)
        except ValueError as exc:
            fail("log_id", str(exc))

    # A client's UUIDv7 carries the time it was made: taking that rather than the receive time as the
    # default makes a retried entry identical to the first try, which keyed stores (DynamoDB) need.
    ts_us, ts_field = (
        (_uuid7_us(log_id), "log_id") if raw_id is not None and _is_uuid7(log_id) else (now_us, "")
    )
    raw_ts = doc.get("timestamp")
    if raw_ts is not None:
        ts_field = "timestamp"
        try:
            ts_us = parse_timestamp(raw_ts)
        except ValueError as exc:
            fail("timestamp", str(exc))
            ts_field = ""
    if ts_field:
        problem = _check_timestamp_range(ts_us, now_us)
        if problem:
            fail(ts_field, problem if ts_field == "timestamp" else f"is a UUIDv7 whose time {problem}")

    metadata: str | None = None
    raw_metadata = doc.get("metadata")
    if raw_metadata is not None:
        if not isinstance(raw_metadata, dict):
            fail("metadata", "must be a JSON object")
        else:
            problem = _check_metadata(raw_metadata, limits)
            if problem:
                fail("metadata", problem)
            else:
                encoded = msgspec.json.encode(raw_metadata)
                if len(encoded) > limits.max_metadata_bytes:
                    fail("metadata", f"must be at most {limits.max_metadata_bytes} bytes as JSON")
                metadata = encoded.decode()

    if len(errors) > failed:
        return None
    return NewEntry(log_id, service, ts_us, level, log_type, cast(str, message), metadata, now_us)


def _is_uuid7(log_id: bytes) -> bool:
    return len(log_id) == 16 and log_id[6] >> 4 == 7 and log_id[8] >> 6 == 0b10


def _uuid7_us(log_id: bytes) -> int:
    return int.from_bytes(log_id[:6]) * 1000


def _check_metadata(value: dict[str, Any], limits: Limits) -> str | None:
    """The first nesting or key-length rule the object breaks, if any."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limits.max_metadata_depth:
            return f"must be nested at most {limits.max_metadata_depth} levels deep"
        if isinstance(node, dict):
            for key, child in node.items():
                if len(key) > limits.max_metadata_key_chars:
                    limit = limits.max_metadata_key_chars
                    return f"keys must be at most {limit} characters; {key[:32]!r}... is longer"
                if isinstance(child, dict | list):
                    stack.append((child, depth + 1))
        else:
            stack.extend((child, depth + 1) for child in node if isinstance(child, dict | list))
    return None


# ---- reads -------------------------------------------------------------------------------------------------

_LEVEL = msgspec.Meta(extra_json_schema={"enum": [level.name for level in Level]})
_TIME_FORMS = "an RFC 3339 date-time, or epoch seconds/ms/µs/ns (magnitude decides)"


class ReadParameters(msgspec.Struct, frozen=True):
    """The query-string parameters of a read, as documented (OpenAPI); ``parse_query`` holds the rules."""

    service_name: Annotated[
        str, msgspec.Meta(pattern=SERVICE_NAME_PATTERN, description="only this service")
    ] | (msgspec.UnsetType) = msgspec.UNSET
    level: Annotated[str, _LEVEL, msgspec.Meta(description="only this level")] | msgspec.UnsetType = (
        msgspec.UNSET
    )
    min_level: Annotated[str, _LEVEL, msgspec.Meta(description="this level or more severe")] | (
        msgspec.UnsetType
    ) = msgspec.UNSET
    log_type: (
        Annotated[
            str, msgspec.Meta(min_length=1, max_length=MAX_LOG_TYPE_CHARS, description="only this log type")
        ]
        | msgspec.UnsetType
    ) = msgspec.UNSET
    since: (
        Annotated[str | float, msgspec.Meta(description=f"event time at or after (inclusive): {_TIME_FORMS}")]
        | msgspec.UnsetType
    ) = msgspec.UNSET
    until: (
        Annotated[str | float, msgspec.Meta(description=f"event time before (exclusive): {_TIME_FORMS}")]
        | msgspec.UnsetType
    ) = msgspec.UNSET
    hours: (
        Annotated[float, msgspec.Meta(gt=0, le=MAX_HOURS, description="window of this many hours ending now")]
        | msgspec.UnsetType
    ) = msgspec.UNSET
    q: (
        Annotated[
            str,
            msgspec.Meta(
                min_length=1,
                max_length=MAX_QUERY_CHARS,
                description='full-text search: every word and "quoted phrase" must occur in the message',
            ),
        ]
        | msgspec.UnsetType
    ) = msgspec.UNSET
    limit: Annotated[int, msgspec.Meta(ge=1, description=f"page size, 1-{MAX_LIMIT} (larger is clamped)")] = (
        DEFAULT_LIMIT
    )
    cursor: (
        Annotated[
            str, msgspec.Meta(pattern="^[A-Za-z0-9_-]+$", description="next_cursor of the previous page")
        ]
        | msgspec.UnsetType
    ) = msgspec.UNSET


QUERY_PARAMETERS = frozenset(ReadParameters.__struct_fields__)


def parse_query(params: Iterable[tuple[str, str]], *, now_us: int) -> Query:
    """A read's query-string parameters as a Query, or ValidationFailed naming every bad parameter."""
    errors: list[FieldError] = []
    values: dict[str, str] = {}
    for name, value in params:
        if name not in QUERY_PARAMETERS:
            errors.append(
                FieldError(name, "unknown parameter (allowed: " + ", ".join(sorted(QUERY_PARAMETERS)) + ")")
            )
        elif name in values:
            errors.append(FieldError(name, "given more than once"))
        else:
            values[name] = value

    limit = DEFAULT_LIMIT
    if "limit" in values:
        try:
            limit = min(parse_whole_number(values["limit"]), MAX_LIMIT)
        except ValueError:
            errors.append(FieldError("limit", f"must be a whole number from 1 to {MAX_LIMIT}"))
        else:
            if limit < 1:
                errors.append(FieldError("limit", f"must be a whole number from 1 to {MAX_LIMIT}"))

    service = values.get("service_name")
    if service is not None and _SERVICE_NAME.fullmatch(service) is None:
        errors.append(FieldError("service_name", _SERVICE_RULE))

    levels: set[Level] | None = None
    if "level" in values:
        exact = _LEVEL_BY_NAME.get(values["level"].lower())
        if exact is None:
            errors.append(FieldError("level", _LEVEL_RULE))
        else:
            levels = {exact}
    if "min_level" in values:
        floor = _LEVEL_BY_NAME.get(values["min_level"].lower())
        if floor is None:
            errors.append(FieldError("min_level", _LEVEL_RULE))
        elif floor != Level.TRACE or levels is not None:
            at_least = {level for level in Level if level >= floor}
            levels = at_least if levels is None else levels & at_least

    log_type = values.get("log_type")
    if log_type is not None and not 1 <= len(log_type) <= MAX_LOG_TYPE_CHARS:
        errors.append(FieldError("log_type", f"must be 1-{MAX_LOG_TYPE_CHARS} characters"))

    since = _parse_time_param("since", values, errors)
    until = _parse_time_param("until", values, errors)
    if "hours" in values:
        if since is not None:
            errors.append(FieldError("hours", "use either hours or since, not both"))
        try:
            hours = _parse_number(values["hours"])
            if not 0 < hours <= MAX_HOURS:
                raise ValueError
        except ValueError:
            errors.append(FieldError("hours", "must be a positive number of hours"))
        else:
            since = now_us - round(hours * 3600 * 1_000_000)
    if since is not None and until is not None and until <= since:
        errors.append(FieldError("until", "must be later than since"))

    terms: tuple[str, ...] = ()
    if "q" in values:
        q = values["q"]
        terms = _search_terms(q)
        if len(q) > MAX_QUERY_CHARS:
            errors.append(FieldError("q", f"must be at most {MAX_QUERY_CHARS} characters"))
        elif "\x00" in q:
            # SQLite's full-text query syntax ends a string at NUL; no message holds one to be found.
            errors.append(FieldError("q", "must not contain NUL characters"))
        elif not terms:
            errors.append(FieldError("q", "must contain at least one word"))

    cursor = None
    if "cursor" in values:
        try:
            cursor = decode_cursor(values["cursor"])
        except ValueError:
            errors.append(
                FieldError("cursor", "is not a cursor this service returned (use next_cursor as given)")
            )

    if errors:
        raise ValidationFailed(errors)
    return Query(
        limit=limit,
        service_name=service,
        levels=tuple(sorted(levels)) if levels is not None else None,
        log_type=log_type,
        since_us=since,
        until_us=until,
        terms=terms,
        cursor=cursor,
    )


def _parse_time_param(name: str, values: dict[str, str], errors: list[FieldError]) -> int | None:
    raw = values.get(name)
    if raw is None:
        return None
    value: str | float = raw
    if _WHOLE_NUMBER.fullmatch(raw):
        value = int(raw)
    elif _NUMBER.fullmatch(raw):
        value = float(raw)
    try:
        return parse_timestamp(value)
    except ValueError as exc:
        errors.append(FieldError(name, str(exc)))
        return None


def _parse_number(text: str) -> float:
    """A decimal number such as 1.5, -2 or 1e3; ValueError for anything else float() would take."""
    if _NUMBER.fullmatch(text) is None:
        raise ValueError(f"{text!r} is not a number")
    return float(text)


_TERM = re.compile(r'"([^"]*)"|(\S+)')


def _search_terms(q: str) -> tuple[str, ...]:
    """Words and "quoted phrases"; every one must occur. Nothing in q is search syntax but the quotes."""
    terms = (phrase or word for phrase, word in _TERM.findall(q))
    return tuple(t for t in (term.strip() for term in terms) if any(c.isalnum() for c in t))


_CURSOR_VERSION = 1


def encode_cursor(ts_us: int, tiebreak: int | str) -> str:
    """An opaque position after which the next page starts (exclusive)."""
    raw = msgspec.msgpack.encode((_CURSOR_VERSION, ts_us, tiebreak))
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(cursor: str) -> tuple[int, int | str]:
    """The position ``encode_cursor`` wrote; ValueError for anything else, however it was made."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        version, ts_us, tiebreak = msgspec.msgpack.decode(raw, type=tuple[int, int, int | str])
    except (binascii.Error, ValueError, msgspec.DecodeError):
        raise ValueError("not a cursor") from None
    # A cursor is client input: numbers out of the stores' range would overflow their integers.
    if version != _CURSOR_VERSION or not 0 <= ts_us <= _MAX_US:
        raise ValueError("not a cursor")
    if isinstance(tiebreak, int) and not 0 <= tiebreak < 2**63:
        raise ValueError("not a cursor")
    return ts_us, tiebreak
