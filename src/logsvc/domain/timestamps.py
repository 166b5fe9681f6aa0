"""Times: RFC 3339 and epoch numbers in, integer microseconds since the epoch (UTC) inside, RFC 3339 out."""

from __future__ import annotations

import math
import re
import time
from datetime import UTC, datetime, timedelta

__all__ = [
    "DAY_US",
    "MAX_US",
    "format_timestamp",
    "ns_to_us",
    "parse_number",
    "parse_timestamp",
    "parse_timestamp_text",
    "parse_whole_number",
    "timestamp_in_range",
]

DAY_US = 86_400_000_000
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
MAX_US = (datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC) - _EPOCH) // _MICROSECOND
_WHOLE_NUMBER = re.compile(r"[0-9]+")
# From this magnitude on, an epoch number is nanoseconds (_epoch_number_to_us).
_NS_BY_MAGNITUDE = 10**17
_NUMBER = re.compile(r"-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")


# Entries come in bursts within the same seconds: each second is formatted once. A plain dict, emptied when
# full, is looked up three times faster than an lru_cache, and a page of 100 entries formats 200 times.
_PREFIXES: dict[int, str] = {}
_MAX_PREFIXES = 65_536


def format_timestamp(us: int) -> str:
    """Microseconds since the epoch as RFC 3339 UTC with exactly six fractional digits."""
    seconds, micros = divmod(us, 1_000_000)
    prefix = _PREFIXES.get(seconds)
    if prefix is None:
        prefix = _second_prefix(seconds)
    return prefix + str(micros + 1_000_000)[1:] + "Z"


def _second_prefix(seconds: int) -> str:
    t = time.gmtime(seconds)
    prefix = f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}."
    if len(_PREFIXES) >= _MAX_PREFIXES:
        _PREFIXES.clear()
    _PREFIXES[seconds] = prefix
    return prefix


def ns_to_us(ns: int) -> int:
    """A time in epoch nanoseconds (a shipper's) as microseconds; ValueError for a time no RFC 3339 date can
    write, as ``parse_timestamp`` refuses it."""
    return timestamp_in_range(ns // 1000)


def timestamp_in_range(us: int) -> int:
    """``us`` when it is a time of the years 0001-9999; ValueError otherwise."""
    if not _MIN_US <= us <= MAX_US:
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
    elif magnitude < _NS_BY_MAGNITUDE:
        return int(value)
    else:
        return int(value) // 1_000
    return round(value * scale)


def parse_timestamp_text(text: str) -> int:
    """``parse_timestamp`` of a text such as a query parameter, where an epoch number is written as digits."""
    value: str | float = text
    if _WHOLE_NUMBER.fullmatch(text):
        value = int(text)
    elif _NUMBER.fullmatch(text):
        value = float(text)
    return parse_timestamp(value)


def parse_number(text: str) -> float:
    """A decimal number such as 1.5, -2 or 1e3; ValueError for anything else float() would take."""
    if _NUMBER.fullmatch(text) is None:
        raise ValueError(f"{text!r} is not a number")
    return float(text)
