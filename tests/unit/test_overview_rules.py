"""The rules of GET /logs/stats and of an entry's context, without a store: windows cut in whole buckets,
widening to round steps, defaults, and the byte bound of a context answer."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logsvc.domain.context import fit_context, parse_context, size_of
from logsvc.domain.entries import LogEntry
from logsvc.domain.queries import MAX_PAGE_BYTES
from logsvc.domain.stats import MAX_BUCKETS, format_interval, parse_stats, stats_answer
from logsvc.domain.timestamps import DAY_US, format_timestamp, parse_timestamp
from logsvc.errors import ValidationFailed

NOW = parse_timestamp("2026-11-30T10:17:42.123456Z")
MINUTE = 60_000_000


def test_the_window_is_cut_in_whole_buckets_counted_from_the_epoch() -> None:
    query = parse_stats([("hours", "1"), ("interval", "5m")], now_us=NOW)
    assert query.since_us == parse_timestamp("2026-11-30T09:15:00Z")  # 09:17:42 down to 09:15
    assert query.until_us == parse_timestamp("2026-11-30T10:20:00Z")  # 10:17:42 up to 10:20
    assert (query.buckets, query.interval, query.requested_interval) == (13, "5m", None)
    assert query.bucket_of(parse_timestamp("2026-11-30T09:19:59.999999Z")) == 0
    assert query.bucket_of(parse_timestamp("2026-11-30T09:20:00Z")) == 1
    days = parse_stats([("since", "2026-11-01T12:00:00Z"), ("interval", "1d")], now_us=NOW)
    assert (days.since_us % DAY_US, days.until_us % DAY_US, days.buckets) == (0, 0, 30)


def test_the_default_window_is_the_last_day_in_about_a_hundred_buckets() -> None:
    query = parse_stats([], now_us=NOW)
    assert (query.interval, query.by, query.buckets) == ("15m", "level", 97)
    assert query.until_us - query.since_us == DAY_US + 15 * MINUTE
    until_only = parse_stats([("until", "2026-11-02T00:00:00Z")], now_us=NOW)
    assert until_only.since_us == parse_timestamp("2026-11-01T00:00:00Z")


@pytest.mark.parametrize(
    ("params", "interval", "requested"),
    [
        ({"hours": "24", "interval": "10s"}, "2m", "10s"),
        ({"hours": "24", "interval": "1m"}, "2m", "1m"),
        ({"hours": "24", "interval": "7m"}, "7m", None),
        ({"hours": "168", "interval": "7m"}, "15m", "7m"),
        ({"hours": "876000", "interval": "1h"}, "50d", "1h"),
        ({"hours": "1", "interval": "60s"}, "60s", None),
        ({"hours": "1", "interval": "90d"}, "90d", None),
    ],
)
def test_too_many_buckets_widen_the_interval_to_a_round_step(
    params: dict[str, str], interval: str, requested: str | None
) -> None:
    query = parse_stats(list(params.items()), now_us=NOW)
    assert (query.interval, query.requested_interval) == (interval, requested)
    assert query.buckets <= MAX_BUCKETS


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    since=st.integers(0, NOW),
    length=st.integers(1, 200 * 365 * DAY_US),
    number=st.integers(1, 5000),
    unit=st.sampled_from("smhd"),
)
def test_every_window_fits_in_at_most_a_thousand_whole_buckets(
    since: int, length: int, number: int, unit: str
) -> None:
    window = [("since", format_timestamp(since)), ("until", format_timestamp(since + length))]
    query = parse_stats([*window, ("interval", f"{number}{unit}")], now_us=NOW)
    assert 1 <= query.buckets <= MAX_BUCKETS
    assert query.since_us % query.step_us == 0
    assert (query.until_us - query.since_us) % query.step_us == 0
    answer = stats_answer(query, [])
    assert len(answer.buckets) == query.buckets
    assert all(bucket.counts == {} for bucket in answer.buckets)


def test_format_interval_uses_the_largest_whole_unit() -> None:
    assert [format_interval(us) for us in (1_000_000, 90_000_000, 120_000_000, 7_200_000_000, DAY_US)] == [
        "1s",
        "90s",
        "2m",
        "2h",
        "1d",
    ]


def test_the_answer_names_levels_and_says_what_was_widened() -> None:
    query = parse_stats([("hours", "24"), ("interval", "10s")], now_us=NOW)
    answer = stats_answer(query, [(0, 17, 2), (0, 17, 1), (3, 9, 4)])
    assert answer.buckets[0].counts == {"ERROR": 3}
    assert answer.buckets[3].counts == {"INFO": 4}
    encoded = msgspec.json.decode(msgspec.json.encode(answer))
    assert (encoded["interval"], encoded["requested_interval"]) == ("2m", "10s")
    as_asked = parse_stats([("hours", "1"), ("interval", "1m")], now_us=NOW)
    assert "requested_interval" not in msgspec.json.decode(msgspec.json.encode(stats_answer(as_asked, [])))


def entry(message: str, metadata: bytes | None = None) -> LogEntry:
    return LogEntry(
        log_id="0",
        service_name="s",
        timestamp="t",
        level="INFO",
        log_type="application",
        message=message,
        metadata=msgspec.Raw(metadata) if metadata is not None else None,
        received_at="t",
    )


def test_a_context_takes_turns_and_stops_past_the_page_bound() -> None:
    big = "x" * (MAX_PAGE_BYTES // 4 - 100)
    older = [entry(f"{big}b{i}") for i in range(10)]
    newer = [entry(f"{big}a{i}") for i in range(10)]
    context = fit_context(entry("middle", b'{"k":1}'), older, newer)
    # Taken b0 a0 b1 a1 b2: four fit, the fifth passes the bound, and nothing is taken after it.
    assert [e.message[-2:] for e in context.before] == ["b2", "b1", "b0"]
    assert [e.message[-2:] for e in context.after] == ["a0", "a1"]
    assert size_of(entry("é", b"{}")) == 4
    small = fit_context(entry("m"), [entry("b0"), entry("b1")], [entry("a0")])
    assert ([e.message for e in small.before], [e.message for e in small.after]) == (["b1", "b0"], ["a0"])


def test_context_parameters() -> None:
    assert (parse_context([]).before, parse_context([]).after) == (10, 10)
    asked = parse_context([("before", "0"), ("after", "100"), ("service_name", "api")])
    assert (asked.before, asked.after, asked.service_name) == (0, 100, "api")
    with pytest.raises(ValidationFailed) as refused:
        parse_context([("before", "101"), ("after", "+1"), ("service_name", "a b"), ("limit", "1")])
    assert [error.field for error in refused.value.errors] == ["limit", "before", "after", "service_name"]
