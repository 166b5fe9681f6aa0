"""What a log entry is: its level, its service name, its id, the size limits it must keep, and its shapes as
sent, stored and returned. The msgspec Structs describe the wire format for OpenAPI and encode responses."""

from __future__ import annotations

import enum
import re
from typing import Annotated, Any

import msgspec
import uuid_utils

__all__ = [
    "DEFAULT_LOG_TYPE",
    "DEFAULT_SERVICE",
    "HARD_MAX_MESSAGE_BYTES",
    "LEVEL_ALIAS",
    "LEVEL_ALIAS_RULE",
    "LEVEL_RULE",
    "LONGEST_LEVEL_NAME",
    "MAX_LOG_TYPE_CHARS",
    "SERVICE_NAME_PATTERN",
    "SERVICE_RULE",
    "VALUES_PER_ENTRY",
    "Level",
    "Limits",
    "LogEntry",
    "LogEntryIn",
    "NewEntry",
    "derived_log_id",
    "entry_bytes",
    "format_log_id",
    "is_service_name",
    "level_named",
    "parse_log_id",
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
LEVEL_RULE = "must be one of TRACE, DEBUG, INFO, WARN, ERROR, FATAL"
# No longer word names a level.
LONGEST_LEVEL_NAME = max(len(name) for name in _LEVEL_BY_NAME)
# Older clients name the level "severity", in an entry as in a read's parameters: either name, not both.
LEVEL_ALIAS = "severity"
LEVEL_ALIAS_RULE = "is an alias of level; send only one of them"

SERVICE_NAME_PATTERN = r"^[A-Za-z0-9._:/-]{1,128}$"
_SERVICE_NAME = re.compile(SERVICE_NAME_PATTERN)
SERVICE_RULE = "must be 1-128 characters of A-Z a-z 0-9 . _ : / -"
MAX_LOG_TYPE_CHARS = 64
DEFAULT_SERVICE = "default"
DEFAULT_LOG_TYPE = "application"
HARD_MAX_MESSAGE_BYTES = 1024 * 1024
# What a body may cost to decode: this many JSON values per entry of a full batch, on average (the fields
# and the metadata). A decoded value takes 30-70 bytes against 2-3 bytes of JSON, so the count of values,
# not the size, bounds the memory of a body: 32 MiB of "{}," would be 11 million dicts, about 900 MB.
VALUES_PER_ENTRY = 100


def level_named(name: str) -> Level | None:
    """The level a name (any case, or a common synonym) stands for; None when it names none."""
    return _LEVEL_BY_NAME.get(name.lower())


def is_service_name(name: str) -> bool:
    return _SERVICE_NAME.fullmatch(name) is not None


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


# The version (4 bits from bit 76) and variant (2 bits from bit 62) of a UUID as an integer.
_NOT_VERSION_OR_VARIANT = ~(0xF << 76 | 0x3 << 62)
_VERSION_7_VARIANT_10 = 0x7 << 76 | 0x2 << 62


def derived_log_id(ms: int, digest: bytes) -> bytes:
    """A UUIDv7 of the millisecond ``ms`` whose random bits are taken from ``digest`` (at least 10 bytes): the
    id of a shipper's record made from its time and a hash of its content, so that a retry stores it once."""
    value = (ms << 80 | int.from_bytes(digest[:10])) & _NOT_VERSION_OR_VARIANT | _VERSION_7_VARIANT_10
    return value.to_bytes(16)


def parse_log_id(value: object) -> bytes:
    """A UUID in its canonical text form as 16 bytes; ValueError otherwise."""
    if not isinstance(value, str) or len(value) != 36:
        raise ValueError("must be a UUID such as 01890a5d-ac96-774b-bcce-b302099a8057")
    try:
        return uuid_utils.UUID(value).bytes
    except ValueError:
        raise ValueError("must be a UUID such as 01890a5d-ac96-774b-bcce-b302099a8057") from None
