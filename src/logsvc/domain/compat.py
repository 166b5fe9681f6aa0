"""The older clients' shapes: the request and answer bodies of the AWS sample log services this project
replaces, translated to and from ours, so that their clients keep working by changing only the base URL and
the credential (docs/migrating.md, decision 22).

Two kinds are served under their own prefix, as thin translations over the same service:

- **Function URL** (``/compat/function-url/``): ``POST /logs`` with ``{"severity", "message"}``, and
  ``GET /logs/recent``: the newest 100 as ``{"count", "logs": [{"logId", "timestamp" (epoch ms),
  "datetime", "severity", "message"}]}``.
- **Cognito** (``/compat/cognito/``): ``POST /logs`` with ``{"id"?, "severity"?, "message"}`` answered
  ``201 {"id", "datetime"}``, and ``GET /logs?severity=&limit=&startKey=`` answered ``{"items": [{"id",
  "datetime", "severity", "message"}], "hasMore", "nextToken"?}``. Its clients send the raw ID token in
  ``Authorization``, without ``Bearer``: accepted under this prefix only (``raw_token_accepted``).

Their severities are ``info``, ``warning`` and ``error``, in lower case; anything else is a 400. Each maps to
one of our levels (info -> INFO, warning -> WARN, error -> ERROR); reading back, every level shows as the
severity nearest to it (TRACE and DEBUG as info, FATAL as error), and a severity filter takes the levels
that show as it. Each kind writes and reads one service of its own (``FUNCTION_URL_SERVICE``,
``COGNITO_SERVICE``), as each sample service had a table of its own. Everything else about an entry (the
message's size, a client's id as the entry's ``log_id``, durability, scopes) is the rule of ``POST /logs``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Annotated, Any, Final

import msgspec

from logsvc.domain.cursors import decode_cursor
from logsvc.domain.entries import Level, LogEntry, NewEntry, format_log_id, parse_log_id
from logsvc.domain.parameters import no_parameters, parameter_values
from logsvc.domain.queries import Page, Query
from logsvc.domain.timestamps import format_timestamp, parse_timestamp, parse_whole_number
from logsvc.errors import FieldError, ValidationFailed

__all__ = [
    "COGNITO_PREFIX",
    "COGNITO_SERVICE",
    "FUNCTION_URL_PREFIX",
    "FUNCTION_URL_SERVICE",
    "CognitoCreated",
    "CognitoEntryIn",
    "CognitoItem",
    "CognitoItems",
    "CognitoReadParameters",
    "FunctionUrlEntryIn",
    "FunctionUrlLog",
    "FunctionUrlLogs",
    "cognito_created",
    "cognito_entry",
    "cognito_items",
    "cognito_query",
    "function_url_entry",
    "function_url_log",
    "function_url_logs",
    "function_url_query",
    "raw_token_accepted",
]

FUNCTION_URL_PREFIX: Final = "/compat/function-url"
COGNITO_PREFIX: Final = "/compat/cognito"
FUNCTION_URL_SERVICE: Final = "function-url"
COGNITO_SERVICE: Final = "cognito"
# The sample services answered at most this many entries a read.
MAX_COMPAT_LIMIT: Final = 100

SEVERITIES: Final = ("info", "warning", "error")
_SEVERITY_RULE = "must be one of info, warning, error"
_LEVEL_OF = {"info": Level.INFO, "warning": Level.WARN, "error": Level.ERROR}
_SEVERITY = Annotated[str, msgspec.Meta(extra_json_schema={"enum": list(SEVERITIES)})]
_MESSAGE = Annotated[str, msgspec.Meta(min_length=1, description="non-blank, at most 256 KiB of UTF-8")]
_NEXT_TOKEN = Annotated[str, msgspec.Meta(description="startKey of the next page; absent on the last")]
_START_KEY = Annotated[str, msgspec.Meta(pattern="^[A-Za-z0-9_-]+$", description="nextToken of a page")]


def raw_token_accepted(path: str) -> bool:
    """Whether a request to ``path`` may carry its token in ``Authorization`` without a scheme, as the
    Cognito sample's clients send their ID token (API Gateway's Cognito authorizer takes it so). Nowhere
    else: a bare value in that header means nothing in HTTP, and a scheme names what a credential is."""
    return path.startswith(COGNITO_PREFIX + "/")


def severity_of(level: Level) -> str:
    """The severity a level shows as."""
    if level >= Level.ERROR:
        return "error"
    return "warning" if level >= Level.WARN else "info"


def _levels_shown_as(severity: str) -> tuple[Level, ...]:
    return tuple(level for level in Level if severity_of(level) == severity)


def _checked_fields(doc: Any, allowed: frozenset[str], shape: str) -> list[FieldError]:
    if not isinstance(doc, dict):
        raise ValidationFailed([FieldError("body", f"must be a JSON object: {shape}")])
    listed = ", ".join(sorted(allowed))
    return [FieldError(str(key), f"unknown field (allowed: {listed})") for key in doc.keys() - allowed]


def _level(doc: Mapping[str, Any], errors: list[FieldError], *, default: Level | None) -> Level:
    severity = doc.get("severity")
    if severity is None and default is not None:
        return default
    level = _LEVEL_OF.get(severity) if isinstance(severity, str) else None
    if level is None:
        required = "is required; " if severity is None else ""
        errors.append(FieldError("severity", required + _SEVERITY_RULE))
        return Level.INFO
    return level


# ---- Function URL ------------------------------------------------------------------------------------------


class FunctionUrlEntryIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """An entry as a function-URL client sends it (documentation; ``function_url_entry`` holds the rules)."""

    severity: _SEVERITY
    message: _MESSAGE


class FunctionUrlLog(msgspec.Struct, frozen=True):
    """One entry as a function-URL client reads it (the field names are the older clients')."""

    logId: str
    timestamp: Annotated[int, msgspec.Meta(description="event time, epoch milliseconds")]
    datetime: Annotated[str, msgspec.Meta(description="event time, RFC 3339 UTC")]
    severity: _SEVERITY
    message: str


class FunctionUrlLogs(msgspec.Struct, frozen=True):
    count: int
    logs: list[FunctionUrlLog]


_FUNCTION_URL_FIELDS = frozenset({"severity", "message"})


def function_url_entry(doc: Any) -> dict[str, Any]:
    """A function-URL client's body as an entry document of ``POST /logs``, or ValidationFailed."""
    errors = _checked_fields(doc, _FUNCTION_URL_FIELDS, '{"severity": "info", "message": "..."}')
    level = _level(doc, errors, default=None)
    if errors:
        raise ValidationFailed(errors)
    return {"service_name": FUNCTION_URL_SERVICE, "level": level.name, "message": doc.get("message")}


def _function_url_log(log_id: str, ts_us: int, level: Level, message: str) -> FunctionUrlLog:
    return FunctionUrlLog(log_id, ts_us // 1000, format_timestamp(ts_us), severity_of(level), message)


def function_url_log(entry: NewEntry) -> FunctionUrlLog:
    """The answer to a function-URL client's POST: the entry as its read shows it."""
    return _function_url_log(format_log_id(entry.log_id), entry.ts_us, entry.level, entry.message)


def function_url_query(params: Iterable[tuple[str, str]]) -> Query:
    """The read of ``GET /compat/function-url/logs/recent``, which takes no parameters."""
    no_parameters(params)
    return Query(limit=MAX_COMPAT_LIMIT, service_name=FUNCTION_URL_SERVICE)


def function_url_logs(page: Page) -> FunctionUrlLogs:
    logs = [
        _function_url_log(e.log_id, parse_timestamp(e.timestamp), Level[e.level], e.message)
        for e in page.logs
    ]
    return FunctionUrlLogs(count=len(logs), logs=logs)


# ---- Cognito -----------------------------------------------------------------------------------------------


class CognitoEntryIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """An entry as a Cognito client sends it (documentation; ``cognito_entry`` holds the rules)."""

    message: _MESSAGE
    id: (
        Annotated[
            str,
            msgspec.Meta(
                extra_json_schema={"format": "uuid"}, description="a retry with the same id is a no-op"
            ),
        ]
        | None
    ) = None
    severity: _SEVERITY | None = "info"


class CognitoCreated(msgspec.Struct, frozen=True):
    id: str
    datetime: Annotated[str, msgspec.Meta(description="event time, RFC 3339 UTC")]


class CognitoItem(msgspec.Struct, frozen=True):
    id: str
    datetime: Annotated[str, msgspec.Meta(description="event time, RFC 3339 UTC")]
    severity: _SEVERITY
    message: str


class CognitoItems(msgspec.Struct, frozen=True, omit_defaults=True):
    items: list[CognitoItem]
    hasMore: bool
    nextToken: _NEXT_TOKEN | msgspec.UnsetType = msgspec.UNSET


class CognitoReadParameters(msgspec.Struct, frozen=True):
    """The query-string parameters of ``GET /compat/cognito/logs`` (documentation; ``cognito_query``)."""

    severity: _SEVERITY | msgspec.UnsetType = msgspec.UNSET
    limit: Annotated[int, msgspec.Meta(ge=1, le=MAX_COMPAT_LIMIT, description="page size, 1-100")] = (
        MAX_COMPAT_LIMIT
    )
    startKey: _START_KEY | msgspec.UnsetType = msgspec.UNSET


_COGNITO_FIELDS = frozenset({"id", "severity", "message"})
_COGNITO_PARAMETERS = frozenset(CognitoReadParameters.__struct_fields__)


def cognito_entry(doc: Any) -> dict[str, Any]:
    """A Cognito client's body as an entry document of ``POST /logs``, or ValidationFailed."""
    errors = _checked_fields(doc, _COGNITO_FIELDS, '{"id": "<uuid>", "severity": "info", "message": "..."}')
    level = _level(doc, errors, default=Level.INFO)
    entry = {"service_name": COGNITO_SERVICE, "level": level.name, "message": doc.get("message")}
    if doc.get("id") is not None:
        try:
            parse_log_id(doc["id"])
        except ValueError as exc:
            errors.append(FieldError("id", str(exc)))
        entry["log_id"] = doc["id"]
    if errors:
        raise ValidationFailed(errors)
    return entry


def cognito_created(entry: NewEntry) -> CognitoCreated:
    return CognitoCreated(format_log_id(entry.log_id), format_timestamp(entry.ts_us))


def cognito_query(params: Iterable[tuple[str, str]]) -> Query:
    """The read of ``GET /compat/cognito/logs``: ``severity`` (info, warning, error), ``limit`` (1-100; over
    100 is a 400, not clamped, as the sample answered) and ``startKey`` (a ``nextToken``)."""
    errors: list[FieldError] = []
    values = parameter_values(params, _COGNITO_PARAMETERS, errors)
    levels = None
    if "severity" in values:
        if values["severity"] in SEVERITIES:
            levels = _levels_shown_as(values["severity"])
        else:
            errors.append(FieldError("severity", _SEVERITY_RULE))
    limit = MAX_COMPAT_LIMIT
    if "limit" in values:
        try:
            limit = parse_whole_number(values["limit"])
        except ValueError:
            limit = 0
        if not 1 <= limit <= MAX_COMPAT_LIMIT:
            errors.append(FieldError("limit", f"must be a whole number from 1 to {MAX_COMPAT_LIMIT}"))
    cursor = None
    if "startKey" in values:
        try:
            cursor = decode_cursor(values["startKey"])
        except ValueError:
            errors.append(FieldError("startKey", "is not a nextToken this service returned"))
    if errors:
        raise ValidationFailed(errors)
    return Query(limit=limit, service_name=COGNITO_SERVICE, levels=levels, cursor=cursor)


def cognito_items(page: Page) -> CognitoItems:
    items = [_cognito_item(entry) for entry in page.logs]
    if page.next_cursor is None:
        return CognitoItems(items=items, hasMore=False)
    return CognitoItems(items=items, hasMore=True, nextToken=page.next_cursor)


def _cognito_item(entry: LogEntry) -> CognitoItem:
    return CognitoItem(entry.log_id, entry.timestamp, severity_of(Level[entry.level]), entry.message)
