"""The syslog parser against the RFCs' own examples (RFC 5424 section 6.5, RFC 3164 section 5.4), the
framing of a TCP stream (RFC 6587), and round trips of generated messages through both."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from logsvc.domain.syslog import FACILITIES, SEVERITIES, SyslogRefused, syslog_document
from logsvc.domain.syslog_frames import FramingError, SyslogFramer
from logsvc.domain.timestamps import format_timestamp, parse_timestamp

BOM = b"\xef\xbb\xbf"
NOW_US = parse_timestamp("2026-01-03T12:00:00Z")


def parse(frame: bytes, now_us: int = NOW_US, zone: Any = UTC) -> dict[str, Any]:
    return syslog_document(frame, now_us=now_us, zone=zone)


# ---- RFC 5424 section 6.5 --------------------------------------------------------------------------------


def test_rfc5424_example_1() -> None:
    doc = parse(
        b"<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - "
        + BOM
        + b"'su root' failed for lonvick on /dev/pts/8"
    )
    assert doc == {
        "timestamp": "2003-10-11T22:14:15.003000Z",
        "service_name": "su",
        "level": "FATAL",
        "message": "'su root' failed for lonvick on /dev/pts/8",
        "metadata": {
            "facility": "auth",
            "severity": "crit",
            "format": "rfc5424",
            "hostname": "mymachine.example.com",
            "msgid": "ID47",
        },
    }


def test_rfc5424_example_2() -> None:
    doc = parse(
        b"<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - "
        b"%% It's time to make the do-nothing."
    )
    assert doc["timestamp"] == "2003-08-24T12:14:15.000003Z"
    assert (doc["service_name"], doc["level"]) == ("myproc", "INFO")
    assert doc["message"] == "%% It's time to make the do-nothing."
    assert doc["metadata"] == {
        "facility": "local4",
        "severity": "notice",
        "format": "rfc5424",
        "hostname": "192.0.2.1",
        "procid": "8710",
    }


EXAMPLE_SD = b'[exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"]'


def test_rfc5424_example_3() -> None:
    doc = parse(
        b"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 "
        + EXAMPLE_SD
        + b" "
        + BOM
        + b"An application event log entry..."
    )
    assert doc["service_name"] == "evntslog"
    assert doc["message"] == "An application event log entry..."
    assert doc["metadata"]["structured_data"] == {
        "exampleSDID@32473": {"iut": "3", "eventSource": "Application", "eventID": "1011"}
    }


def test_rfc5424_example_4_without_msg_keeps_the_structured_data_as_message() -> None:
    sd = EXAMPLE_SD + b'[examplePriority@32473 class="high"]'
    doc = parse(b"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 " + sd)
    assert doc["message"] == sd.decode()
    assert doc["metadata"]["structured_data"] == {
        "exampleSDID@32473": {"iut": "3", "eventSource": "Application", "eventID": "1011"},
        "examplePriority@32473": {"class": "high"},
    }


def test_rfc5424_sd_escapes_and_repeats() -> None:
    # Section 6.3.3: \" \\ \] are escapes; any other backslash is kept. Section 7.2.2: "ip" may repeat.
    doc = parse(rb'<13>1 - - app - - [x@1 a="q\"b\\c\]d\e"][origin ip="192.0.2.1" ip="192.0.2.129"] msg')
    assert doc["metadata"]["structured_data"] == {
        "x@1": {"a": 'q"b\\c]d\\e'},
        "origin": {"ip": ["192.0.2.1", "192.0.2.129"]},
    }
    assert "timestamp" not in doc
    assert "hostname" not in doc["metadata"]


def test_rfc5424_a_space_between_elements_ends_the_structured_data() -> None:
    # Section 6.3.5: in '[a] [b]' the second element is part of MSG.
    doc = parse(b'<13>1 - - app - - [a@1 x="1"] [b@1 y="2"]')
    assert doc["metadata"]["structured_data"] == {"a@1": {"x": "1"}}
    assert doc["message"] == '[b@1 y="2"]'


@pytest.mark.parametrize(
    ("frame", "detail"),
    [
        (b"<192>1 - - app - - - m", "out of range"),
        (b"<013>1 - - app - - - m", "PRI"),
        (b"<13 1 - - app - - - m", "PRI"),
        (b"<13>2 - - app - - - m", "version 2"),
        (b"<13>1 - - app - -", "header"),
        (b"<13>1 2003-10-11 22:14:15Z - app - - - m", "TIMESTAMP"),
        (b"<13>1 2003-10-11T22:14:15 - app - - - m", "TIMESTAMP"),
        (b"<13>1 2003-02-30T22:14:15Z - app - - - m", "real date"),
        (b"<13>1 - - app - - [x@1 a=1] m", "="),
        (b'<13>1 - - app - - [x@1 a="1"m', "end with"),
        (b'<13>1 - - app - - [x@1 a="1] m', "escaped"),
        (b'<13>1 - - app - - [x@1 a="1 m', "closing quote"),
        (b"<13>1 - - app - - x m", "STRUCTURED-DATA"),
        (b"<13>1 - - app - - [x@1]m", "followed by a space"),
        (b"<13>1 - - app - - [" + b"n" * 33 + b"] m", "1-32"),
    ],
)
def test_malformed_rfc5424(frame: bytes, detail: str) -> None:
    with pytest.raises(SyslogRefused, match=detail) as refused:
        parse(frame)
    assert refused.value.reason == "malformed"


@pytest.mark.parametrize("app_name", [b"my@app", b"app+1"])
def test_app_names_outside_the_grammar_are_refused_not_rewritten(app_name: bytes) -> None:
    with pytest.raises(SyslogRefused, match="not a service name") as refused:
        parse(b"<13>1 - - " + app_name + b" - - - m")
    assert refused.value.reason == "bad_app_name"


def test_levels_follow_the_severity() -> None:
    levels = [parse(b"<%d>1 - - app - - - m" % severity)["level"] for severity in range(8)]
    assert levels == ["FATAL", "FATAL", "FATAL", "ERROR", "WARN", "INFO", "INFO", "DEBUG"]


def test_invalid_utf8_becomes_replacement_characters() -> None:
    assert parse(b"<13>1 - - app - - - caf\xe9")["message"] == "caf\ufffd"


# ---- RFC 3164 section 5.4 --------------------------------------------------------------------------------


def test_rfc3164_example_1() -> None:
    doc = parse(b"<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8")
    assert doc == {
        # No year: the one nearest the receive time (January 2026), so October is last year's.
        "timestamp": "2025-10-11T22:14:15.000000Z",
        "service_name": "su",
        "level": "FATAL",
        "message": "'su root' failed for lonvick on /dev/pts/8",
        "metadata": {"facility": "auth", "severity": "crit", "format": "rfc3164", "hostname": "mymachine"},
    }


def test_rfc3164_example_2_without_pri_is_user_notice_content() -> None:
    # Section 4.3.3: a relay reads a message without PRI as <13> and the whole of it as CONTENT.
    assert parse(b"Use the BFG!") == {
        "message": "Use the BFG!",
        "level": "INFO",
        "metadata": {"facility": "user", "severity": "notice", "format": "rfc3164"},
    }


def test_rfc3164_example_3() -> None:
    # Section 5.4: "CST" stands where HOSTNAME does, so the relay reads it as the hostname.
    doc = parse(b"<165>Aug 24 05:34:00 CST 1987 mymachine myproc[10]: %% It's time to make the do-nothing.")
    assert doc["timestamp"] == "2025-08-24T05:34:00.000000Z"
    assert doc["metadata"]["hostname"] == "CST"
    assert "service_name" not in doc
    assert doc["message"] == "1987 mymachine myproc[10]: %% It's time to make the do-nothing."


def test_rfc3164_example_4_without_a_valid_timestamp_is_all_content() -> None:
    frame = b"<0>1990 Oct 22 10:52:01 TZ-6 scapegoat.dmz.example.org 10.1.2.3 sched[0]: That's All Folks!"
    doc = parse(frame)
    assert "timestamp" not in doc
    assert "hostname" not in doc["metadata"]
    assert doc["message"] == frame[3:].decode()
    assert (doc["level"], doc["metadata"]["facility"]) == ("FATAL", "kern")


def test_rfc3164_tag_and_pid() -> None:
    doc = parse(b"<30>Jan  2 03:04:05 host postfix/smtpd[812]: connect from x")
    assert (doc["service_name"], doc["metadata"]["procid"]) == ("postfix/smtpd", "812")
    assert doc["timestamp"] == "2026-01-02T03:04:05.000000Z"
    assert doc["message"] == "connect from x"


def test_rfc3164_without_hostname_and_with_an_rfc3339_time() -> None:
    # rsyslog's RSYSLOG_ForwardFormat writes an RFC 3339 time; a local syslog(3) leaves out HOSTNAME.
    doc = parse(b"<13>2026-01-02T03:04:05.123456+01:00 host app: m")
    assert (doc["timestamp"], doc["metadata"]["hostname"]) == ("2026-01-02T02:04:05.123456Z", "host")
    doc = parse(b"<13>Jan  2 03:04:05 app[7]: m")
    assert (doc["service_name"], doc["message"]) == ("app", "m")
    assert "hostname" not in doc["metadata"]


def test_rfc3164_year_nearest_the_receive_time() -> None:
    december = parse_timestamp("2026-12-31T23:59:00Z")
    assert parse(b"<13>Jan  1 00:01:00 h a: m", now_us=december)["timestamp"].startswith("2027-01-01")
    assert parse(b"<13>Dec 31 23:58:00 h a: m", now_us=NOW_US)["timestamp"].startswith("2025-12-31")
    # February 29th exists only in a leap year: the nearest one.
    assert parse(b"<13>Feb 29 12:00:00 h a: m", now_us=parse_timestamp("2028-03-01T00:00:00Z"))[
        "timestamp"
    ].startswith("2028-02-29")


def test_rfc3164_time_is_read_in_the_configured_zone_with_its_daylight_saving() -> None:
    zone = ZoneInfo("America/New_York")
    summer = parse(b"<13>Jul  4 12:00:00 h a: m", now_us=parse_timestamp("2026-07-04T18:00:00Z"), zone=zone)
    winter = parse(b"<13>Jan  4 12:00:00 h a: m", now_us=NOW_US, zone=zone)
    assert (summer["timestamp"], winter["timestamp"]) == (
        "2026-07-04T16:00:00.000000Z",
        "2026-01-04T17:00:00.000000Z",
    )


def test_rfc3164_without_zone_is_the_servers_local_time() -> None:
    local = datetime(2026, 1, 2, 3, 4, 5).astimezone()
    doc = parse(b"<13>Jan  2 03:04:05 h a: m", zone=None)
    assert doc["timestamp"] == format_timestamp(int(local.timestamp()) * 1_000_000)


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (b"<13>Foo  2 03:04:05 h a: m", "malformed"),
        (b"<13>Feb 30 03:04:05 h a: m", "malformed"),
        (b"<13>2026-01-02T03:04:05 h a: m", "malformed"),
        (b"<13>Jan  2 03:04:05 h my@app: m", "bad_app_name"),
        (b"<>m", "malformed"),
    ],
)
def test_refused_rfc3164(frame: bytes, reason: str) -> None:
    with pytest.raises(SyslogRefused) as refused:
        parse(frame)
    assert refused.value.reason == reason


def test_a_first_word_is_a_tag_only_when_it_ends_with_a_colon() -> None:
    assert "service_name" not in parse(b"<13>Jan  2 03:04:05 h http://x is down")
    assert parse(b"<13>Jan  2 03:04:05 h app:")["service_name"] == "app"


# ---- Round trips -----------------------------------------------------------------------------------------

_PRINTABLE = st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=32)
_SD_NAME = _PRINTABLE.filter(lambda s: not set(s) & set('= ]"'))
_SERVICE = st.from_regex(r"[A-Za-z0-9._/-]{1,48}", fullmatch=True)  # APP-NAME: ':' is allowed too


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


@given(
    pri=st.integers(0, 191),
    us=st.integers(0, parse_timestamp("2030-01-01T00:00:00Z")),
    host=_PRINTABLE.filter(lambda s: s != "-"),
    app=_SERVICE.filter(lambda s: s != "-"),  # "-" is the NILVALUE: no APP-NAME
    procid=_PRINTABLE.filter(lambda s: s != "-"),
    msgid=_PRINTABLE.filter(lambda s: s != "-"),
    sd=st.dictionaries(_SD_NAME, st.dictionaries(_SD_NAME, st.text(max_size=20), max_size=3), max_size=3),
    message=st.text(min_size=1, max_size=200).filter(lambda s: s.strip() and s == s.rstrip("\r\n\x00")),
)
def test_rfc5424_round_trip(
    pri: int,
    us: int,
    host: str,
    app: str,
    procid: str,
    msgid: str,
    sd: dict[str, dict[str, str]],
    message: str,
) -> None:
    elements = "".join(
        "[" + sd_id + "".join(f' {k}="{_escape(v)}"' for k, v in params.items()) + "]"
        for sd_id, params in sd.items()
    )
    stamp = format_timestamp(us)
    frame = f"<{pri}>1 {stamp} {host} {app} {procid} {msgid} {elements or '-'} {message}".encode()
    doc = parse(frame)
    assert (doc["timestamp"], doc["service_name"], doc["message"]) == (stamp, app, message)
    assert doc["metadata"]["facility"] == FACILITIES[pri // 8]
    assert doc["metadata"]["severity"] == SEVERITIES[pri % 8]
    assert (doc["metadata"]["hostname"], doc["metadata"]["procid"], doc["metadata"]["msgid"]) == (
        host,
        procid,
        msgid,
    )
    assert doc["metadata"].get("structured_data", {}) == sd


@given(
    pri=st.integers(0, 191),
    moment=st.datetimes(min_value=datetime(2025, 7, 5), max_value=datetime(2026, 7, 2)),
    tag=st.from_regex(r"[A-Za-z0-9._/-]{1,32}", fullmatch=True),
    pid=st.none() | st.integers(0, 2**22),
    message=st.text(min_size=1, max_size=200).filter(lambda s: s.strip() and s == s.rstrip("\r\n\x00")),
)
def test_rfc3164_round_trip(pri: int, moment: datetime, tag: str, pid: int | None, message: str) -> None:
    moment = moment.replace(microsecond=0, tzinfo=UTC)
    stamp = f"{moment:%b} {moment.day:2d} {moment:%H:%M:%S}"
    pid_part = "" if pid is None else f"[{pid}]"
    doc = parse(f"<{pri}>{stamp} host-1 {tag}{pid_part}: {message}".encode())
    assert doc["timestamp"] == format_timestamp(int(moment.timestamp()) * 1_000_000)
    assert (doc["service_name"], doc["message"], doc["metadata"]["hostname"]) == (tag, message, "host-1")
    assert doc["metadata"].get("procid") == (None if pid is None else str(pid))


# ---- Framing ---------------------------------------------------------------------------------------------


def test_both_framings_in_one_stream() -> None:
    framer = SyslogFramer(100)
    assert framer.feed(b"5 <1>a\n<13>hello\r\n\n\x0012 <13>x") == [b"<1>a\n", b"<13>hello"]
    assert framer.feed(b"yzabcdefg") == [b"<13>xyzabcde"]
    assert framer.finish() == b"fg"


@pytest.mark.parametrize(
    ("stream", "reason"),
    [
        (b"101 <13>m", "frame_too_large"),
        (b"<13>" + b"m" * 97 + b"\n", "frame_too_large"),
        (b"<13>" + b"m" * 200, "frame_too_large"),
    ],
)
def test_framing_errors(stream: bytes, reason: str) -> None:
    with pytest.raises(FramingError) as failed:
        SyslogFramer(100).feed(stream)
    assert failed.value.reason == reason


def test_frames_before_a_fault_are_kept() -> None:
    with pytest.raises(FramingError) as failed:
        SyslogFramer(100).feed(b"<13>one\n3 two101 three")
    assert failed.value.frames == [b"<13>one", b"two"]


def test_only_digits_and_a_space_are_an_octet_count() -> None:
    """Anything else that starts with a digit is a line (a PRI-less line as rsyslog forwards it), read in
    any chunks: while only digits have come, the framer waits for the byte that decides."""
    lines = [
        b"2026-11-30T10:00:00Z host sp4: iso no pri",
        b"12x <13>m",
        b"012 <13>m",
        b"12345678901 <13>m",
        b"42",
    ]
    stream = b"<13>before\n" + b"".join(line + b"\n" for line in lines) + b"5 <1>a\n<13>after\n"
    expected = [b"<13>before", *lines, b"<1>a\n", b"<13>after"]
    assert SyslogFramer(100).feed(stream) == expected
    framer = SyslogFramer(100)
    frames = [frame for byte in range(len(stream)) for frame in framer.feed(stream[byte : byte + 1])]
    assert frames == expected
    assert framer.finish() is None


def test_a_last_line_that_starts_with_a_digit_needs_no_lf() -> None:
    framer = SyslogFramer(100)
    assert framer.feed(b"<13>one\n2026-11-30T10:00:00Z host sp4: last") == [b"<13>one"]
    assert framer.finish() == b"2026-11-30T10:00:00Z host sp4: last"


def test_a_frame_at_the_limit_passes() -> None:
    frame = b"<13>" + b"m" * 96
    assert SyslogFramer(100).feed(b"100 " + frame + frame + b"\r\n") == [frame, frame]


@pytest.mark.parametrize("cut", [b"20 <13>abc", b"20"])
def test_a_cut_octet_counted_frame_is_truncated(cut: bytes) -> None:
    framer = SyslogFramer(100)
    assert framer.feed(cut) == []
    with pytest.raises(FramingError) as failed:
        framer.finish()
    assert failed.value.reason == "truncated"


@given(
    messages=st.lists(
        st.tuples(st.booleans(), st.binary(min_size=1, max_size=60).map(lambda b: b"<13>" + b)), max_size=20
    ),
    cuts=st.lists(st.integers(0, 2000), max_size=10),
)
def test_framing_round_trip_in_any_chunks(messages: list[tuple[bool, bytes]], cuts: list[int]) -> None:
    """Messages framed either way (a newline frame cannot hold LF), read in any chunks, come out whole."""
    expected = [m if counted else m.replace(b"\n", b" ").rstrip(b"\r") for counted, m in messages]
    stream = b"".join(
        b"%d %s" % (len(m), m) if counted else m + b"\n"
        for (counted, _), m in zip(messages, expected, strict=True)
    )
    framer = SyslogFramer(100)
    frames: list[bytes] = []
    start = 0
    for cut in [*sorted({min(c, len(stream)) for c in cuts}), len(stream)]:
        frames += framer.feed(stream[start:cut])
        start = cut
    assert framer.finish() is None
    assert frames == expected
