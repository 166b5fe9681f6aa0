"""The rules of refusal records (auth/audit.py) and the throttle of failed authentication, on their own."""

from __future__ import annotations

import logging

import pytest

from logsvc.auth.audit import (
    MAX_FIELD_CHARS,
    Refusal,
    RefusalBuffer,
    audit_cutoff_us,
    audit_field,
)
from logsvc.auth.ratelimit import FailedAuthThrottle

DAY_US = 86_400_000_000


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("GET /logs", "GET /logs"),
        ("GET /\x1b[31mred\x1b[0m", "GET /\\x1b[31mred\\x1b[0m"),
        ("line\nfake line\r\x00", "line\\x0afake line\\x0d\\x00"),
        ("\\x41", "\\x5cx41"),  # a literal backslash cannot pass for an escape
        ("évidence ✓ 日本", "évidence ✓ 日本"),
        ("user\u202eexe.txt", "user\\u202eexe.txt"),  # right-to-left override
        ("\U000e0001tag", "\\U000e0001tag"),
        ("\x7f\x85", "\\x7f\\x85"),
    ],
)
def test_fields_are_made_printable(text: str, shown: str) -> None:
    assert audit_field(text) == shown
    assert all(char.isprintable() for char in audit_field(text))


def test_a_long_field_is_cut_with_the_count_of_what_was_cut() -> None:
    path = "GET /x" + "A" * 60_000
    shown = audit_field(path)
    assert shown == path[:MAX_FIELD_CHARS] + f"…(+{len(path) - MAX_FIELD_CHARS} chars)"
    assert audit_field("A" * MAX_FIELD_CHARS) == "A" * MAX_FIELD_CHARS


def test_escapes_count_against_the_limit_and_are_never_split() -> None:
    shown = audit_field("\x00" * 1000)
    assert shown == "\\x00" * (MAX_FIELD_CHARS // 4) + f"…(+{1000 - MAX_FIELD_CHARS // 4} chars)"


def test_identical_refusals_are_one_record_with_their_count() -> None:
    now = [5_000]
    buffer = RefusalBuffer("test", clock_us=lambda: now[0])
    assert buffer.add(
        actor="unauthenticated", target="GET /logs", source="10.0.0.1", detail="invalid_api_key"
    )
    for _ in range(999):
        now[0] += 1
        assert not buffer.add(
            actor="unauthenticated", target="GET /logs", source="10.0.0.1", detail="invalid_api_key"
        )
    buffer.add(actor="unauthenticated", target="GET /logs", source="10.0.0.2", detail="invalid_api_key")
    assert buffer.take() == [
        Refusal(5_000, "unauthenticated", "GET /logs", "10.0.0.1", "invalid_api_key", 1000),
        Refusal(5_999, "unauthenticated", "GET /logs", "10.0.0.2", "invalid_api_key", 1),
    ]
    assert buffer.take() == []
    # After a take, the next refusal is the first one waiting again: the store arranges a write.
    assert buffer.add(actor="a", target="t", source="s", detail="d")


def test_refusals_that_differ_only_past_the_limit_are_one_record() -> None:
    buffer = RefusalBuffer("test", clock_us=lambda: 0)
    for number in range(5):
        buffer.add(actor="a", target="GET /" + "A" * 300 + str(number), source="s", detail="d")
    (record,) = buffer.take()
    assert record.count == 5
    assert record.target.endswith("…(+106 chars)")


def test_the_buffer_is_bounded_by_records_and_drops_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    buffer = RefusalBuffer("store X", clock_us=lambda: 0, max_records=100)
    for number in range(130):
        buffer.add(actor="a", target="GET /logs", source=f"10.0.0.{number}", detail="d")
    buffer.add(actor="a", target="GET /logs", source="10.0.0.1", detail="d")  # still counted: already waiting
    with caplog.at_level(logging.WARNING, logger="logsvc.auth.audit"):
        taken = buffer.take()
    assert len(taken) == 100
    assert sum(record.count for record in taken) == 101
    assert "store X: 30 refused-request audit events dropped (more than 100 waiting)" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="logsvc.auth.audit"):
        assert buffer.take() == []
    assert caplog.text == ""


def test_the_buffer_is_bounded_by_bytes(caplog: pytest.LogCaptureFixture) -> None:
    buffer = RefusalBuffer("store X", clock_us=lambda: 0, max_bytes=10_000)
    for number in range(200):
        buffer.add(actor="a", target=f"GET /{number:03d}" + "é" * 500, source="10.0.0.1", detail="d")
    with caplog.at_level(logging.WARNING, logger="logsvc.auth.audit"):
        taken = buffer.take()
    size = sum(len(f"{r.actor}{r.target}{r.source}{r.detail}".encode()) for r in taken)
    assert size <= 10_000
    assert 0 < len(taken) < 200
    assert f"{200 - len(taken)} refused-request audit events dropped (more than 10000 bytes waiting)" in (
        caplog.text
    )


def test_audit_cutoff() -> None:
    assert audit_cutoff_us(100 * DAY_US, 90) == 10 * DAY_US
    assert audit_cutoff_us(100 * DAY_US, 0.5) == 100 * DAY_US - DAY_US // 2
    assert audit_cutoff_us(100 * DAY_US, 0) is None


def test_failed_authentication_is_throttled_per_address() -> None:
    clock = Clock()
    throttle = FailedAuthThrottle(6, clock=clock)
    for _ in range(6):
        assert throttle.delay("203.0.113.9") == 0.0
        throttle.failed("203.0.113.9")
    assert throttle.delay("203.0.113.9") == pytest.approx(10.0)  # 6 a minute: one back every 10 s
    assert throttle.delay("198.51.100.7") == 0.0
    clock.now += 9.0
    assert throttle.delay("203.0.113.9") == pytest.approx(1.0)
    clock.now += 1.0
    assert throttle.delay("203.0.113.9") == 0.0
    throttle.failed("203.0.113.9")
    assert throttle.delay("203.0.113.9") > 0


def test_an_ipv6_slash_64_is_one_address() -> None:
    throttle = FailedAuthThrottle(2, clock=Clock())
    throttle.failed("2001:db8:1:2::1")
    throttle.failed("2001:db8:1:2:ffff::9")
    assert throttle.delay("2001:db8:1:2::abcd") > 0
    assert throttle.delay("2001:db8:1:3::1") == 0.0
    throttle.failed("::ffff:192.0.2.1")
    throttle.failed("192.0.2.1")
    assert throttle.delay("192.0.2.1") > 0


def test_zero_turns_the_throttle_off() -> None:
    throttle = FailedAuthThrottle(0, clock=Clock())
    for _ in range(1000):
        throttle.failed("203.0.113.9")
    assert throttle.delay("203.0.113.9") == 0.0
    assert len(throttle) == 0


def test_the_addresses_remembered_are_bounded() -> None:
    clock = Clock()
    throttle = FailedAuthThrottle(3, clock=clock, max_addresses=1000)
    for number in range(20_000):
        throttle.failed(f"10.{number // 65536}.{number // 256 % 256}.{number % 256}")
        clock.now += 0.001
    assert len(throttle) <= 1000
    # The most recent offenders are the ones remembered.
    throttle.failed("10.0.78.31")
    throttle.failed("10.0.78.31")
    assert throttle.delay("10.0.78.31") > 0
