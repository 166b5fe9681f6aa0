"""Volume over time: the parameters of ``GET /logs/stats``, the buckets they make, and the answer; and the
services a credential may read (``GET /services``).

A histogram counts the entries a read with the same filters would return, in buckets of ``interval`` laid
at whole multiples of it since the epoch (UTC): the window is widened to whole buckets, ``since`` down and
``until`` up, and the answer says which window it counted. Whole buckets at fixed places are what lets a
store answer from counts kept per minute or hour (decision 24) instead of counting entries. The one
exception is at the end of time: a last bucket that would end past the year 9999 ends at MAX_US.

Answers are bounded whatever the number of services: by service, at most ``series_limit`` keys per bucket
(the services with the most entries in the window, the rest summed under ``OTHER_SERVICES``), and
``GET /services`` is paged by name.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Annotated, Final, Literal

import msgspec

from logsvc.domain.entries import SERVICE_NAME_PATTERN, SERVICE_RULE, Level, is_service_name
from logsvc.domain.parameters import parameter_values
from logsvc.domain.queries import FILTER_PARAMETERS, Query, ReadFilters, parse_query
from logsvc.domain.timestamps import DAY_US, MAX_US, format_timestamp, parse_whole_number
from logsvc.errors import FieldError, ValidationFailed

__all__ = [
    "DEFAULT_WINDOW_US",
    "INTERVAL_PATTERN",
    "MAX_BUCKETS",
    "MAX_COUNTED",
    "MAX_SERIES",
    "MAX_SERIES_CELLS",
    "MAX_SERVICES_PAGE",
    "OTHER_SERVICES",
    "SERVICES_PARAMETERS",
    "STATS_PARAMETERS",
    "Bucket",
    "ServiceCount",
    "ServiceList",
    "ServicePage",
    "ServiceTotal",
    "ServicesParameters",
    "Stats",
    "StatsParameters",
    "StatsQuery",
    "format_interval",
    "parse_services",
    "parse_stats",
    "series_limit",
    "service_list",
    "stats_answer",
]

# A chart has a few hundred bars at most; more would only make answers large and slow.
MAX_BUCKETS: Final = 1000
# Without an interval, the window is cut in about this many buckets, at a round step.
AUTO_BUCKETS: Final = 100
DEFAULT_WINDOW_US: Final = DAY_US
# By service, a bucket holds at most this many keys: a chart legend stays readable, and an answer stays small
# however many services ingest keys create.
MAX_SERIES: Final = 50
# ... and the keys of all buckets together at most this many: 10,000 keys of up to 128-character names are
# under 1.5 MB (a Lambda answer must stay under 6 MB). 1,000 buckets keep 10 keys each.
MAX_SERIES_CELLS: Final = 10_000
# The key of the services summed beyond the limit; parentheses are outside the service-name grammar
# (SERVICE_NAME_PATTERN), so no service can bear it.
OTHER_SERVICES: Final = "(other)"
MAX_SERVICES_PAGE: Final = 1000
# A histogram a store cannot answer from its rollups (full-text q, an interval that is not a whole number of
# minutes, every histogram on DynamoDB) counts entries one by one, and refuses (400) past this many.
MAX_COUNTED: Final = 1_000_000
_UNITS: Final = {"s": 1_000_000, "m": 60_000_000, "h": 3_600_000_000, "d": DAY_US}
# The widest step a window is widened to (the years 1970-9999 in at most AUTO_BUCKETS), so that every
# interval answered may be given back.
_MAX_INTERVAL_DAYS: Final = 50_000
INTERVAL_PATTERN = r"^[1-9][0-9]{0,8}[smhd]$"
_INTERVAL = re.compile(INTERVAL_PATTERN.replace("$", r"\Z"))
_INTERVAL_RULE = (
    "must be a whole number and a unit, s, m, h or d (e.g. 10s, 5m, 1h, 1d), "
    f"from 1s to {_MAX_INTERVAL_DAYS}d"
)
# The steps a window is widened to, in seconds; past a day: 1, 2 and 5 times a power of ten, in days.
_ROUND_SECONDS: Final = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200)

By = Literal["level", "service_name"]
_LEVEL_NAMES: Final = {int(level): level.name for level in Level}


class StatsParameters(ReadFilters, frozen=True):
    """The query-string parameters of ``GET /logs/stats``: the filters of a read, the bucket width and the
    grouping, as documented (OpenAPI); ``parse_stats`` holds the rules."""

    interval: (
        Annotated[
            str,
            msgspec.Meta(
                pattern=INTERVAL_PATTERN,
                description="bucket width: a whole number and s, m, h or d (10s, 5m, 1h, 1d); widened to a "
                f"round step when the window would need more than {MAX_BUCKETS} buckets. Default: a round "
                f"step giving about {AUTO_BUCKETS} buckets",
            ),
        ]
        | msgspec.UnsetType
    ) = msgspec.UNSET
    by: Annotated[By, msgspec.Meta(description="count by level (default) or by service_name")] = "level"


STATS_PARAMETERS = frozenset(StatsParameters.__struct_fields__)


class StatsQuery(msgspec.Struct, frozen=True):
    """A validated histogram: the read's filters, whose ``since_us``/``until_us`` are the counted window
    (whole buckets, but a last one cut at MAX_US), the bucket width and what to count by. ``interval`` is
    the width as answered, ``requested_interval`` the one asked for when it had to be widened."""

    filters: Query
    step_us: int
    by: By
    interval: str
    requested_interval: str | None = None

    @property
    def since_us(self) -> int:
        assert self.filters.since_us is not None
        return self.filters.since_us

    @property
    def until_us(self) -> int:
        assert self.filters.until_us is not None
        return self.filters.until_us

    @property
    def buckets(self) -> int:
        # Rounded up: a last bucket cut at MAX_US is a bucket too.
        return -(-(self.until_us - self.since_us) // self.step_us)

    def bucket_of(self, ts_us: int) -> int:
        """The bucket of an event time in the window. (The stores' SQL writes the same as
        ``(ts - since) / step``: both are non-negative, where SQLite's division is Python's floor.)"""
        return (ts_us - self.since_us) // self.step_us


class Bucket(msgspec.Struct, frozen=True):
    start: str
    counts: dict[str, int]


class Stats(msgspec.Struct, frozen=True, omit_defaults=True):
    """``GET /logs/stats``: entries counted per bucket, oldest bucket first, empty ones included."""

    interval: str
    by: By
    since: str
    until: str
    buckets: list[Bucket]
    requested_interval: (
        Annotated[str, msgspec.Meta(description="the interval asked for, when it was widened")]
        | msgspec.UnsetType
    ) = msgspec.UNSET
    other_services: (
        Annotated[
            int,
            msgspec.Meta(
                description=f"by service_name, when more services than the answer names had entries: how "
                f"many are summed under the key {OTHER_SERVICES!r}"
            ),
        ]
        | msgspec.UnsetType
    ) = msgspec.UNSET


def parse_stats(params: Iterable[tuple[str, str]], *, now_us: int) -> StatsQuery:
    """``GET /logs/stats``'s parameters as a StatsQuery, or ValidationFailed naming every bad parameter.

    The filters are read by ``parse_query`` (the rule of ``GET /logs``); without since, until or hours the
    window is the last 24 hours."""
    errors: list[FieldError] = []
    filters: list[tuple[str, str]] = []
    own: dict[str, str] = {}
    for name, value in params:
        if name in FILTER_PARAMETERS:
            filters.append((name, value))
        elif name not in STATS_PARAMETERS:
            allowed = ", ".join(sorted(STATS_PARAMETERS))
            errors.append(FieldError(name, f"unknown parameter (allowed: {allowed})"))
        elif name in own:
            errors.append(FieldError(name, "given more than once"))
        else:
            own[name] = value
    try:
        query = parse_query(filters, now_us=now_us)
    except ValidationFailed as exc:
        errors += exc.errors
        query = Query()
    by = own.get("by", "level")
    if by not in ("level", "service_name"):
        errors.append(FieldError("by", "must be level or service_name"))
    requested = _interval(own.get("interval"), errors)
    since, until = _window(query, now_us, errors)
    if errors:
        raise ValidationFailed(errors)
    widened_from = None
    if requested is None:
        step = _round_step(since, until, 1, AUTO_BUCKETS)
    elif _count(since, until, requested) > MAX_BUCKETS:
        step = _round_step(since, until, requested, MAX_BUCKETS)
        widened_from = own["interval"]
    else:
        step = requested
    # An answer's since and until are given back as parameters, so they must be times RFC 3339 can write:
    # a last bucket that would end past the year 9999 is cut there. It loses nothing, no entry being that
    # far ahead (2 hours at most). ``since`` is 1970 or later (_window), so ``start`` needs no such bound.
    start, end = since // step * step, min(-(-until // step) * step, MAX_US)
    return StatsQuery(
        filters=msgspec.structs.replace(query, since_us=start, until_us=end),
        step_us=step,
        by="level" if by == "level" else "service_name",
        interval=own["interval"] if requested is not None and widened_from is None else format_interval(step),
        requested_interval=widened_from,
    )


def _interval(raw: str | None, errors: list[FieldError]) -> int | None:
    if raw is None:
        return None
    if _INTERVAL.fullmatch(raw) is None:
        errors.append(FieldError("interval", _INTERVAL_RULE))
        return None
    step = parse_whole_number(raw[:-1]) * _UNITS[raw[-1]]
    if step > _MAX_INTERVAL_DAYS * DAY_US:
        errors.append(FieldError("interval", _INTERVAL_RULE))
        return None
    return step


def _window(query: Query, now_us: int, errors: list[FieldError]) -> tuple[int, int]:
    until = query.until_us if query.until_us is not None else now_us
    since = query.since_us if query.since_us is not None else until - DEFAULT_WINDOW_US
    if since >= until and query.until_us is None:  # (parse_query already refused since >= until)
        errors.append(FieldError("since", "must be earlier than until, which is now when not given"))
    # No entry is older than 1970 (they are refused): a window reaching further back starts there, which
    # keeps the first bucket within the times RFC 3339 can write (parse_stats bounds the last one).
    return max(since, 0), max(until, 1)


def _count(since: int, until: int, step: int) -> int:
    return -(-until // step) - since // step


def _round_steps() -> Iterator[int]:
    for seconds in _ROUND_SECONDS:
        yield seconds * 1_000_000
    days = 1
    while True:
        for times in (1, 2, 5):
            yield times * days * DAY_US
        days *= 10


def _round_step(since: int, until: int, at_least: int, buckets: int) -> int:
    """The smallest round step, no finer than ``at_least``, cutting the window in at most ``buckets``."""
    for step in _round_steps():
        if step >= at_least and _count(since, until, step) <= buckets:
            return step
    raise AssertionError("unreachable: the steps grow without bound")


def format_interval(step_us: int) -> str:
    """A width in its largest whole unit: 120 s is 2m, 86,400 s is 1d."""
    for unit in ("d", "h", "m", "s"):
        if step_us % _UNITS[unit] == 0:
            return f"{step_us // _UNITS[unit]}{unit}"
    raise ValueError(f"{step_us} µs is not a whole number of seconds")


def series_limit(buckets: int) -> int:
    """How many keys each bucket of an answer by service may hold: MAX_SERIES, fewer when the buckets are so
    many that the answer would pass MAX_SERIES_CELLS (10 at 1,000 buckets)."""
    return max(2, min(MAX_SERIES, MAX_SERIES_CELLS // max(buckets, 1)))


def stats_answer(query: StatsQuery, counted: Iterable[tuple[int, int | str, int]]) -> Stats:
    """The answer from a store's ``(bucket, key, count)`` rows (a key may come in several rows of a bucket):
    every bucket of the window, oldest first; by level the keys are level names.

    By service, when more services have entries in the window than ``series_limit`` allows, the
    ``series_limit - 1`` with the most (ties by name) keep their names and the others are summed under
    OTHER_SERVICES, so every entry counted is still in its bucket."""
    rows = [
        (bucket, _LEVEL_NAMES[key] if isinstance(key, int) else key, count) for bucket, key, count in counted
    ]
    other_services: int | msgspec.UnsetType = msgspec.UNSET
    if query.by == "service_name":
        totals: dict[str, int] = {}
        for _, name, count in rows:
            totals[name] = totals.get(name, 0) + count
        limit = series_limit(query.buckets)
        if len(totals) > limit:
            ranked = sorted(totals, key=lambda name: (-totals[name], name))
            named = set(ranked[: limit - 1])
            other_services = len(ranked) - len(named)
            rows = [
                (bucket, name if name in named else OTHER_SERVICES, count) for bucket, name, count in rows
            ]
    buckets: list[dict[str, int]] = [{} for _ in range(query.buckets)]
    for bucket, name, count in rows:
        counts = buckets[bucket]
        counts[name] = counts.get(name, 0) + count
    since, step = query.since_us, query.step_us
    return Stats(
        interval=query.interval,
        by=query.by,
        since=format_timestamp(since),
        until=format_timestamp(query.until_us),
        buckets=[
            Bucket(start=format_timestamp(since + index * step), counts=counts)
            for index, counts in enumerate(buckets)
        ],
        requested_interval=msgspec.UNSET if query.requested_interval is None else query.requested_interval,
        other_services=other_services,
    )


class ServiceTotal(msgspec.Struct, frozen=True):
    """What a store knows of one service: its entries and the event time of the newest."""

    service_name: str
    count: int
    newest_us: int | None


class ServiceCount(msgspec.Struct, frozen=True):
    service_name: str
    count: int
    newest: str | None


class ServiceList(msgspec.Struct, frozen=True, omit_defaults=True):
    """``GET /services``: a page of the services a credential may read, by name."""

    services: list[ServiceCount]
    next_after: (
        Annotated[
            str,
            msgspec.Meta(description="when more services follow: this page's last name, to pass as after"),
        ]
        | msgspec.UnsetType
    ) = msgspec.UNSET


class ServicesParameters(msgspec.Struct, frozen=True):
    """The query-string parameters of ``GET /services``, as documented (OpenAPI); ``parse_services`` holds
    the rules."""

    limit: Annotated[
        int,
        msgspec.Meta(ge=1, le=MAX_SERVICES_PAGE, description=f"services in the page, 1-{MAX_SERVICES_PAGE}"),
    ] = MAX_SERVICES_PAGE
    after: (
        Annotated[
            str,
            msgspec.Meta(
                pattern=SERVICE_NAME_PATTERN,
                description="only the services whose names sort after this one (a page's next_after)",
            ),
        ]
        | msgspec.UnsetType
    ) = msgspec.UNSET


SERVICES_PARAMETERS = frozenset(ServicesParameters.__struct_fields__)
_LIMIT_RULE = f"must be a whole number from 1 to {MAX_SERVICES_PAGE}"


class ServicePage(msgspec.Struct, frozen=True):
    """A validated page of ``GET /services``: up to ``limit`` services whose names sort after ``after``."""

    limit: int = MAX_SERVICES_PAGE
    after: str | None = None


def parse_services(params: Iterable[tuple[str, str]]) -> ServicePage:
    """``GET /services``'s parameters as a ServicePage, or ValidationFailed naming every bad parameter."""
    errors: list[FieldError] = []
    values = parameter_values(params, SERVICES_PARAMETERS, errors)
    limit = MAX_SERVICES_PAGE
    if "limit" in values:
        try:
            limit = parse_whole_number(values["limit"])
        except ValueError:
            limit = 0
        if not 1 <= limit <= MAX_SERVICES_PAGE:
            errors.append(FieldError("limit", _LIMIT_RULE))
    after = values.get("after")
    if after is not None and not is_service_name(after):
        errors.append(FieldError("after", SERVICE_RULE))
    if errors:
        raise ValidationFailed(errors)
    return ServicePage(limit=limit, after=after)


def service_list(totals: Iterable[ServiceTotal], page: ServicePage) -> ServiceList:
    """The answer of ``GET /services``: the first ``page.limit`` services by name after ``page.after``, and
    ``next_after`` when the store found more (the service asks it for one more than the page holds)."""
    found = sorted(
        (total for total in totals if page.after is None or total.service_name > page.after),
        key=lambda total: total.service_name,
    )
    shown = found[: page.limit]
    return ServiceList(
        services=[
            ServiceCount(
                service_name=total.service_name,
                count=total.count,
                newest=None if total.newest_us is None else format_timestamp(total.newest_us),
            )
            for total in shown
        ],
        next_after=shown[-1].service_name if len(found) > page.limit else msgspec.UNSET,
    )
