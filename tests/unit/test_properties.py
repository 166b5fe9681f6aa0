"""Property-based checks of validation and timestamp parsing.

Nothing valid is rejected, nothing invalid passes, and what is stored reads back exactly.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logsvc.domain.entries import Level, Limits
from logsvc.domain.timestamps import format_timestamp, parse_timestamp
from logsvc.domain.validation import validate_entries
from logsvc.errors import ValidationFailed

NOW = 1_750_000_000_000_000
LIMITS = Limits()
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

service_names = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:/-", min_size=1, max_size=128
)
level_names = st.sampled_from(
    ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL", "warning", "err", "critical", "information"]
).flatmap(lambda name: st.sampled_from([name, name.lower(), name.upper(), name.capitalize()]))
messages = st.text(min_size=1, max_size=300).filter(lambda m: m.strip())
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
keys = st.text(max_size=20)


def json_values(depth: int) -> st.SearchStrategy[Any]:
    if depth == 0:
        return json_scalars
    inner = json_values(depth - 1)
    return json_scalars | st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=3)


metadata_objects = st.dictionaries(keys, json_values(6), max_size=5)
moments = st.datetimes(
    min_value=datetime(1970, 1, 1), max_value=datetime(2025, 6, 15), timezones=st.just(UTC)
)
offsets = st.integers(min_value=-23 * 60 - 59, max_value=23 * 60 + 59).map(
    lambda m: timezone(timedelta(minutes=m))
)


def rfc3339(moment: datetime, offset: timezone, digits: int) -> str:
    local = moment.astimezone(offset)
    text = local.strftime("%Y-%m-%dT%H:%M:%S")
    if digits:
        text += "." + f"{local.microsecond:06d}"[:digits].ljust(digits, "0")
    minutes = int(local.utcoffset().total_seconds() // 60)  # type: ignore[union-attr]
    sign = "+" if minutes >= 0 else "-"
    return text + (f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}" if minutes else "Z")


@given(moment=moments, offset=offsets)
def test_rfc3339_with_any_offset_is_the_same_instant(moment: datetime, offset: timezone) -> None:
    us = (moment - EPOCH) // timedelta(microseconds=1)
    assert parse_timestamp(rfc3339(moment, offset, 6)) == us
    assert parse_timestamp(format_timestamp(us)) == us


@given(moment=moments, digits=st.integers(min_value=0, max_value=9))
def test_fraction_digits_truncate_to_microseconds(moment: datetime, digits: int) -> None:
    us = (moment - EPOCH) // timedelta(microseconds=1)
    kept = 10 ** (6 - min(digits, 6))
    assert parse_timestamp(rfc3339(moment, UTC, digits)) == us // kept * kept


@given(seconds=st.integers(min_value=0, max_value=NOW // 1_000_000))
def test_epoch_units_agree(seconds: int) -> None:
    expected = seconds * 1_000_000
    # Magnitude decides the unit, so finer units are unambiguous only from 1973-03-03 (10^8 s) on.
    if seconds >= 100_000_000:
        assert parse_timestamp(seconds * 1000) == expected
        assert parse_timestamp(seconds * 1_000_000) == expected
        assert parse_timestamp(seconds * 1_000_000_000) == expected
    assert parse_timestamp(seconds) == expected


@st.composite
def valid_entries(draw: st.DrawFn) -> dict[str, Any]:
    entry: dict[str, Any] = {"message": draw(messages)}
    if draw(st.booleans()):
        entry["service_name"] = draw(service_names)
    if draw(st.booleans()):
        entry["severity" if draw(st.booleans()) else "level"] = draw(level_names)
    if draw(st.booleans()):
        entry["log_type"] = draw(st.text(min_size=1, max_size=64).filter(str.isprintable))
    if draw(st.booleans()):
        entry["metadata"] = draw(metadata_objects)
    if draw(st.booleans()):
        moment = draw(moments)
        entry["timestamp"] = (
            rfc3339(moment, draw(offsets), draw(st.integers(0, 9)))
            if draw(st.booleans())
            else (moment - EPOCH).total_seconds()
        )
    return entry


@settings(max_examples=300)
@given(entry=valid_entries())
def test_nothing_valid_is_rejected_and_content_is_preserved(entry: dict[str, Any]) -> None:
    (stored,) = validate_entries([json.loads(json.dumps(entry))], now_us=NOW, limits=LIMITS, batch=False)
    assert stored.message == entry["message"]
    assert stored.service_name == entry.get("service_name", "default")
    if "metadata" in entry:
        assert json.loads(stored.metadata or "null") == entry["metadata"]
    level = entry.get("level", entry.get("severity", "INFO")).upper()
    aliases = {"WARNING": "WARN", "ERR": "ERROR", "CRITICAL": "FATAL", "INFORMATION": "INFO"}
    assert stored.level == Level[aliases.get(level, level)]


invalid_changes = st.sampled_from(
    [
        ("message", ""),
        ("message", "   "),
        ("message", 12),
        ("service_name", "has space"),
        ("service_name", ""),
        ("level", "LOUD"),
        ("level", 3),
        ("log_type", ""),
        ("timestamp", "2024-05-01T12:00:00"),
        ("timestamp", -5),
        ("timestamp", "9999-01-01T00:00:00Z"),
        ("metadata", [1, 2]),
        ("log_id", "123"),
        ("unexpected", 1),
    ]
)


@settings(max_examples=300)
@given(entry=valid_entries(), change=invalid_changes)
def test_nothing_invalid_passes_and_the_field_is_named(
    entry: dict[str, Any], change: tuple[str, Any]
) -> None:
    field, value = change
    if field == "level":
        entry.pop("severity", None)
    entry[field] = value
    with pytest.raises(ValidationFailed) as caught:
        validate_entries([entry], now_us=NOW, limits=LIMITS, batch=False)
    assert field in {e.field for e in caught.value.errors}
