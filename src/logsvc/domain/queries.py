"""What a read is: the query-string parameters it takes, the Query they make, and the Page it returns."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Annotated

import msgspec

from logsvc.domain.cursors import decode_cursor
from logsvc.domain.entries import (
    LEVEL_ALIAS,
    LEVEL_ALIAS_RULE,
    LEVEL_RULE,
    MAX_LOG_TYPE_CHARS,
    SERVICE_NAME_PATTERN,
    SERVICE_RULE,
    Level,
    LogEntry,
    is_service_name,
    level_named,
)
from logsvc.domain.parameters import parameter_values
from logsvc.domain.timestamps import parse_number, parse_timestamp_text, parse_whole_number
from logsvc.errors import FieldError, ValidationFailed
from logsvc.scopes import covers

__all__ = [
    "DEFAULT_LIMIT",
    "FILTER_PARAMETERS",
    "MAX_HOURS",
    "MAX_LIMIT",
    "MAX_PAGE_BYTES",
    "MAX_QUERY_CHARS",
    "QUERY_PARAMETERS",
    "Page",
    "Query",
    "ReadFilters",
    "ReadParameters",
    "admits",
    "encoded_page",
    "parse_query",
]

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_QUERY_CHARS = 1024
MAX_HOURS = 24 * 366 * 100
# A page stops growing once its entries pass this many bytes (message and metadata), and always holds at
# least one: a Lambda answer must stay under 6 MB, and a read's memory is bounded by this rather than by
# limit x the largest entry (1000 x 256 KiB). The next page starts after the last entry given.
MAX_PAGE_BYTES = 3 * 1024 * 1024

_LEVEL = msgspec.Meta(extra_json_schema={"enum": [level.name for level in Level]})
_TIME_FORMS = "an RFC 3339 date-time, or epoch seconds/ms/µs/ns (magnitude decides)"


class ReadFilters(msgspec.Struct, frozen=True):
    """The filters and time window of a read, as documented (OpenAPI); ``parse_query`` holds the rules. Every
    route that reads entries by filter takes these (``GET /logs``, ``GET /logs/stats``)."""

    service_name: Annotated[
        str, msgspec.Meta(pattern=SERVICE_NAME_PATTERN, description="only this service")
    ] | (msgspec.UnsetType) = msgspec.UNSET
    level: Annotated[str, _LEVEL, msgspec.Meta(description="only this level")] | msgspec.UnsetType = (
        msgspec.UNSET
    )
    severity: Annotated[str, _LEVEL, msgspec.Meta(description="alias of level, for older clients")] | (
        msgspec.UnsetType
    ) = msgspec.UNSET
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


class ReadParameters(ReadFilters, frozen=True):
    """The query-string parameters of a read: the filters, and the page's size and position."""

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
FILTER_PARAMETERS = frozenset(ReadFilters.__struct_fields__)


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


class _EncodedPage(msgspec.Struct, frozen=True, gc=False):
    """A Page whose entries are JSON already (``logs`` is their array): it encodes to the bytes its Page
    would. A store that keeps its entries encoded answers a read with it, without building them again."""

    count: int
    logs: msgspec.Raw
    next_cursor: str | None


_ENCODER = msgspec.json.Encoder()


def encoded_page(entries: list[bytes], next_cursor: str | None) -> bytes:
    """The JSON of the Page of these entries, each the JSON of a LogEntry, and ``next_cursor``."""
    logs = msgspec.Raw(b"[" + b",".join(entries) + b"]")
    return _ENCODER.encode(_EncodedPage(len(entries), logs, next_cursor))


def parse_query(params: Iterable[tuple[str, str]], *, now_us: int) -> Query:
    """A read's query-string parameters as a Query, or ValidationFailed naming every bad parameter."""
    errors: list[FieldError] = []
    values = parameter_values(params, QUERY_PARAMETERS, errors)
    limit = _limit(values, errors)
    service = values.get("service_name")
    if service is not None and not is_service_name(service):
        errors.append(FieldError("service_name", SERVICE_RULE))
    levels = _levels(values, errors)
    log_type = values.get("log_type")
    if log_type is not None and not 1 <= len(log_type) <= MAX_LOG_TYPE_CHARS:
        errors.append(FieldError("log_type", f"must be 1-{MAX_LOG_TYPE_CHARS} characters"))
    since, until = _time_range(values, now_us, errors)
    terms = _terms(values, errors)
    cursor = _cursor(values, errors)
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


def admits(query: Query, *, service: str, level: int, log_type: str, ts_us: int) -> bool:
    """Whether an entry passes a query's filters, all but its search terms (whose rule is the store's own:
    a full-text index, or words in the message) and its page position. Stores that filter in memory and
    the tail (``logsvc.tail``) apply this; the SQLite store's SQL states the same conditions."""
    return (
        (query.service_name is None or service == query.service_name)
        and (query.levels is None or level in query.levels)
        and (query.log_type is None or log_type == query.log_type)
        and (query.since_us is None or ts_us >= query.since_us)
        and (query.until_us is None or ts_us < query.until_us)
        and covers(query.service_patterns, service)
    )


def _limit(values: dict[str, str], errors: list[FieldError]) -> int:
    if "limit" not in values:
        return DEFAULT_LIMIT
    try:
        limit = min(parse_whole_number(values["limit"]), MAX_LIMIT)
    except ValueError:
        errors.append(FieldError("limit", f"must be a whole number from 1 to {MAX_LIMIT}"))
        return DEFAULT_LIMIT
    if limit < 1:
        errors.append(FieldError("limit", f"must be a whole number from 1 to {MAX_LIMIT}"))
    return limit


def _levels(values: dict[str, str], errors: list[FieldError]) -> set[Level] | None:
    """The levels ``level`` (or its alias ``severity``, as ingest takes it too) and ``min_level`` leave;
    None when they filter nothing."""
    levels: set[Level] | None = None
    name = "level"
    if LEVEL_ALIAS in values:
        if "level" in values:
            errors.append(FieldError(LEVEL_ALIAS, LEVEL_ALIAS_RULE))
        name = LEVEL_ALIAS
    if name in values:
        exact = level_named(values[name])
        if exact is None:
            errors.append(FieldError(name, LEVEL_RULE))
        else:
            levels = {exact}
    if "min_level" in values:
        floor = level_named(values["min_level"])
        if floor is None:
            errors.append(FieldError("min_level", LEVEL_RULE))
        elif floor != Level.TRACE or levels is not None:
            at_least = {level for level in Level if level >= floor}
            levels = at_least if levels is None else levels & at_least
    return levels


def _time_range(
    values: dict[str, str], now_us: int, errors: list[FieldError]
) -> tuple[int | None, int | None]:
    """``since`` (or ``hours`` before now) and ``until``."""
    since = _time_param("since", values, errors)
    until = _time_param("until", values, errors)
    if "hours" in values:
        if since is not None:
            errors.append(FieldError("hours", "use either hours or since, not both"))
        try:
            hours = parse_number(values["hours"])
            if not 0 < hours <= MAX_HOURS:
                raise ValueError
        except ValueError:
            errors.append(FieldError("hours", "must be a positive number of hours"))
        else:
            since = now_us - round(hours * 3600 * 1_000_000)
    if since is not None and until is not None and until <= since:
        errors.append(FieldError("until", "must be later than since"))
    return since, until


def _time_param(name: str, values: dict[str, str], errors: list[FieldError]) -> int | None:
    raw = values.get(name)
    if raw is None:
        return None
    try:
        return parse_timestamp_text(raw)
    except ValueError as exc:
        errors.append(FieldError(name, str(exc)))
        return None


def _terms(values: dict[str, str], errors: list[FieldError]) -> tuple[str, ...]:
    if "q" not in values:
        return ()
    q = values["q"]
    terms = _search_terms(q)
    if len(q) > MAX_QUERY_CHARS:
        errors.append(FieldError("q", f"must be at most {MAX_QUERY_CHARS} characters"))
    elif "\x00" in q:
        # SQLite's full-text query syntax ends a string at NUL; no message holds one to be found.
        errors.append(FieldError("q", "must not contain NUL characters"))
    elif not terms:
        errors.append(FieldError("q", "must contain at least one word"))
    return terms


def _cursor(values: dict[str, str], errors: list[FieldError]) -> tuple[int, int | str] | None:
    if "cursor" not in values:
        return None
    try:
        return decode_cursor(values["cursor"])
    except ValueError:
        errors.append(
            FieldError("cursor", "is not a cursor this service returned (use next_cursor as given)")
        )
        return None


_TERM = re.compile(r'"([^"]*)"|(\S+)')


def _search_terms(q: str) -> tuple[str, ...]:
    """Words and "quoted phrases"; every one must occur. Nothing in q is search syntax but the quotes."""
    terms = (phrase or word for phrase, word in _TERM.findall(q))
    return tuple(t for t in (term.strip() for term in terms) if any(c.isalnum() for c in t))
