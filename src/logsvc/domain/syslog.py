"""Syslog messages (RFC 5424 and RFC 3164) as our entry documents.

One message becomes one document in the shape ``POST /logs`` takes, so that the same validation decides
what is stored. No maintained Python library parses both formats correctly (the ones on PyPI were last
released years ago and cover one format each), so this is written against the RFCs' grammar and tested with
their own examples. The mapping:

- ``service_name``: APP-NAME (RFC 5424) or TAG (RFC 3164), exactly as sent; a name outside the service-name
  grammar is refused (``bad_app_name``), never rewritten. Absent (``-``, or no ``TAG:``): the default service;
- ``level``: the PRI's severity by ``LEVELS`` (emerg, alert, crit -> FATAL; err -> ERROR; warning -> WARN;
  notice, info -> INFO; debug -> DEBUG);
- ``timestamp``: RFC 5424's TIMESTAMP; RFC 3164's ``Mmm dd hh:mm:ss`` read in the configured zone, in the year
  that puts it nearest the receive time (or an RFC 3339 time in its place, as rsyslog forwards); absent: the
  receive time;
- ``message``: MSG (a UTF-8 BOM removed; bytes that are not UTF-8 become U+FFFD); without MSG, the
  STRUCTURED-DATA as sent;
- ``metadata``: ``facility``, ``severity`` (their RFC 5424 keywords), ``hostname``, ``procid``, ``msgid``,
  ``structured_data`` (``{SD-ID: {PARAM-NAME: value}}``, a list of values when a name repeats), ``format``
  (``rfc5424`` or ``rfc3164``) and ``peer`` (the sender's address), each only when present.

A message that does not follow its format is refused (``malformed``); refusals carry a reason from a small
fixed set, counted by the listener, and a detail for its log.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, tzinfo
from typing import Any, Final

from logsvc.domain.entries import SERVICE_RULE, Level, is_service_name
from logsvc.domain.timestamps import format_timestamp, parse_timestamp

__all__ = [
    "BAD_APP_NAME",
    "FACILITIES",
    "LEVELS",
    "MALFORMED",
    "SEVERITIES",
    "SyslogRefused",
    "syslog_document",
]

MALFORMED: Final = "malformed"
BAD_APP_NAME: Final = "bad_app_name"

# RFC 5424 section 6.2.1, with the keywords syslog implementations use for them.
FACILITIES: Final = (
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv", "ftp",
    "ntp", "audit", "alert", "clock", "local0", "local1", "local2", "local3", "local4", "local5", "local6",
    "local7",
)  # fmt: skip
SEVERITIES: Final = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")
LEVELS: Final = (
    Level.FATAL, Level.FATAL, Level.FATAL, Level.ERROR, Level.WARN, Level.INFO, Level.INFO, Level.DEBUG,
)  # fmt: skip
# What a sender that gives no PRI means (RFC 3164 section 4.3.3): user.notice.
_DEFAULT_PRI = 13
_BOM = b"\xef\xbb\xbf"
_NIL = b"-"

_PRI = re.compile(rb"<(0|[1-9][0-9]{0,2})>")
# HEADER after PRI: VERSION SP TIMESTAMP SP HOSTNAME SP APP-NAME SP PROCID SP MSGID SP (RFC 5424 section 6).
_VERSION = re.compile(rb"([1-9][0-9]{0,2}) ")
_HEADER_5424 = re.compile(rb"1 ([!-~]+) ([!-~]{1,255}) ([!-~]{1,48}) ([!-~]{1,128}) ([!-~]{1,32}) ")
_TIMESTAMP_5424 = re.compile(
    rb"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?(?:Z|[+-][0-9]{2}:[0-9]{2})"
)
_SD_NAME_EXCLUDED = frozenset(b'= ]"')
_MONTHS: Final = {
    name: number
    for number, name in enumerate(
        (b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec"), 1
    )
}
# RFC 3164's TIMESTAMP (section 4.1.2; a day below 10 is padded with a space), or RFC 3339's in its place.
_BSD_TIME = re.compile(rb"([A-Z][a-z]{2}) ([ 1-3][0-9]) ([0-2][0-9]):([0-5][0-9]):([0-5][0-9]) ")
_ISO_TIME = re.compile(rb"([0-9]{4}-[0-9]{2}-[0-9]{2}T[!-~]+) ")
_HOSTNAME = re.compile(rb"([!-~]+) ")
# TAG, an optional [PID], a colon, then a space or the end (what syslog(3) writes: "sshd[812]: ...").
_TAG = re.compile(rb"([^\x00-\x20\[\]:\x7f]{1,48})(?:\[([!-~]{1,128}?)\])?:(?: |\Z)")


class SyslogRefused(ValueError):
    """A message that is not stored: ``reason`` is one of a few fixed words (a metric label), ``detail`` says
    what was wrong."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def syslog_document(
    frame: bytes, *, now_us: int, zone: tzinfo | None, peer: str | None = None
) -> dict[str, Any]:
    """The entry document of one syslog message (one frame of a stream, or one datagram). ``zone`` is the
    time zone of RFC 3164 timestamps, None for the server's local zone; ``now_us`` is the receive time."""
    frame = frame.rstrip(b"\r\n\x00")
    pri = _PRI.match(frame)
    if pri is not None:
        value = int(pri[1])
        if value > 191:
            raise SyslogRefused(MALFORMED, f"PRI <{value}> is out of range (0-191)")
        rest = frame[pri.end() :]
    elif frame.startswith(b"<"):
        raise SyslogRefused(MALFORMED, "a message starting with '<' must start with a PRI such as <13>")
    else:
        value, rest = _DEFAULT_PRI, frame
    version = _VERSION.match(rest) if pri is not None else None
    if version is not None:
        doc, metadata = _rfc5424(rest)
    else:
        doc, metadata = _rfc3164(rest, now_us, zone)
    facility, severity = divmod(value, 8)
    doc["level"] = LEVELS[severity].name
    meta = {"facility": FACILITIES[facility], "severity": SEVERITIES[severity], **metadata}
    if peer is not None:
        meta["peer"] = peer
    doc["metadata"] = meta
    return doc


def _rfc5424(rest: bytes) -> tuple[dict[str, Any], dict[str, Any]]:
    header = _HEADER_5424.match(rest)
    if header is None:
        if not rest.startswith(b"1 "):
            raise SyslogRefused(MALFORMED, f"syslog version {rest.split(b' ', 1)[0].decode()} is not 1")
        raise SyslogRefused(
            MALFORMED,
            "an RFC 5424 header is VERSION TIMESTAMP HOSTNAME APP-NAME PROCID MSGID, each printable ASCII "
            "or '-', separated by single spaces",
        )
    timestamp, hostname, app_name, procid, msgid = header.groups()
    doc: dict[str, Any] = {}
    if timestamp != _NIL:
        if _TIMESTAMP_5424.fullmatch(timestamp) is None:
            raise SyslogRefused(MALFORMED, f"TIMESTAMP {timestamp.decode()!r} is not RFC 5424's (RFC 3339)")
        try:
            doc["timestamp"] = format_timestamp(parse_timestamp(timestamp.decode()))
        except ValueError as exc:
            raise SyslogRefused(MALFORMED, f"TIMESTAMP {timestamp.decode()!r}: {exc}") from None
    if app_name != _NIL:
        doc["service_name"] = _service_name(app_name.decode(), "APP-NAME")
    metadata: dict[str, Any] = {"format": "rfc5424"}
    for name, field in (("hostname", hostname), ("procid", procid), ("msgid", msgid)):
        if field != _NIL:
            metadata[name] = field.decode()
    structured, position = _structured_data(rest, header.end())
    message = ""
    if position < len(rest):
        if rest[position] != 0x20:
            raise SyslogRefused(MALFORMED, "STRUCTURED-DATA must be followed by a space and MSG, or end")
        message = _text(rest[position + 1 :].removeprefix(_BOM))
    if structured is not None:
        metadata["structured_data"] = structured
        if not message.strip():
            # MSG is optional (RFC 5424 section 6.5, example 4): the structured data is then the message.
            message = _text(rest[header.end() : position])
    doc["message"] = message
    return doc, metadata


def _structured_data(rest: bytes, position: int) -> tuple[dict[str, Any] | None, int]:
    """STRUCTURED-DATA from ``position``: None for NILVALUE, and the position after it."""
    if rest.startswith(_NIL, position):
        return None, position + 1
    if not rest.startswith(b"[", position):
        raise SyslogRefused(MALFORMED, "STRUCTURED-DATA must be '-' or start with '['")
    elements: dict[str, Any] = {}
    while rest.startswith(b"[", position):
        sd_id, position = _sd_name(rest, position + 1, "SD-ID")
        params = elements.setdefault(sd_id, {})  # a repeated SD-ID is not allowed; its params are kept
        while rest.startswith(b" ", position):
            name, position = _sd_name(rest, position + 1, "PARAM-NAME")
            if not rest.startswith(b'="', position):
                raise SyslogRefused(MALFORMED, f'SD-PARAM {name} must be followed by ="value"')
            value, position = _param_value(rest, position + 2)
            if name in params:
                previous = params[name]
                params[name] = [*previous, value] if isinstance(previous, list) else [previous, value]
            else:
                params[name] = value
        if not rest.startswith(b"]", position):
            raise SyslogRefused(MALFORMED, f"SD-ELEMENT {sd_id} must end with ']'")
        position += 1
    return elements, position


def _sd_name(rest: bytes, position: int, what: str) -> tuple[str, int]:
    end = position
    while end < len(rest) and end - position < 33 and 33 <= rest[end] <= 126:
        if rest[end] in _SD_NAME_EXCLUDED:
            break
        end += 1
    if not 1 <= end - position <= 32:
        raise SyslogRefused(MALFORMED, f'{what} must be 1-32 printable ASCII characters but = ] " and space')
    return rest[position:end].decode(), end


def _param_value(rest: bytes, position: int) -> tuple[str, int]:
    """PARAM-VALUE from ``position`` to its closing quote: \\" \\\\ and \\] are escapes; any other backslash
    is itself (RFC 5424 section 6.3.3)."""
    out = bytearray()
    index = position
    while index < len(rest):
        byte = rest[index]
        if byte == 0x5C and index + 1 < len(rest) and rest[index + 1] in b'"\\]':
            out.append(rest[index + 1])
            index += 2
            continue
        if byte == 0x22:
            return _text(bytes(out)), index + 1
        if byte == 0x5D:
            raise SyslogRefused(MALFORMED, "a ']' inside PARAM-VALUE must be escaped as \\]")
        out.append(byte)
        index += 1
    raise SyslogRefused(MALFORMED, "PARAM-VALUE has no closing quote")


def _rfc3164(rest: bytes, now_us: int, zone: tzinfo | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """RFC 3164 as relays read it (section 4.3): an unrecognised HEADER means the whole rest is CONTENT."""
    doc: dict[str, Any] = {}
    metadata: dict[str, Any] = {"format": "rfc3164"}
    bsd = _BSD_TIME.match(rest)
    iso = None if bsd is not None else _ISO_TIME.match(rest)
    if bsd is not None:
        doc["timestamp"] = format_timestamp(_bsd_time_us(bsd, now_us, zone))
        rest = rest[bsd.end() :]
    elif iso is not None:
        try:
            doc["timestamp"] = format_timestamp(parse_timestamp(iso[1].decode()))
        except ValueError as exc:
            raise SyslogRefused(MALFORMED, f"TIMESTAMP {iso[1].decode()!r}: {exc}") from None
        rest = rest[iso.end() :]
    if bsd is not None or iso is not None:
        # HOSTNAME follows the TIMESTAMP; a sender that left it out (a local syslog(3)) puts TAG there.
        host = _HOSTNAME.match(rest)
        if host is not None and not host[1].endswith(b":") and b"[" not in host[1]:
            metadata["hostname"] = host[1].decode()
            rest = rest[host.end() :]
    tag = _TAG.match(rest)
    if tag is not None:
        doc["service_name"] = _service_name(_text(tag[1]), "TAG")
        if tag[2] is not None:
            metadata["procid"] = tag[2].decode()
        rest = rest[tag.end() :]
    doc["message"] = _text(rest)
    return doc, metadata


def _bsd_time_us(match: re.Match[bytes], now_us: int, zone: tzinfo | None) -> int:
    """``Mmm dd hh:mm:ss`` has no year and no zone: read in ``zone`` (None: the server's), in the year
    (this one, the last or the next) that puts it nearest ``now_us``, so that a December line read in
    January is last year's."""
    month_name, day, hour, minute, second = match.groups()
    month = _MONTHS.get(month_name)
    if month is None:
        raise SyslogRefused(MALFORMED, f"TIMESTAMP month {month_name.decode()!r} is not Jan-Dec")
    now = datetime.fromtimestamp(now_us / 1_000_000, zone or UTC)
    if zone is None:
        now = now.astimezone()
    best: int | None = None
    for year in (now.year - 1, now.year, now.year + 1):
        try:
            moment = datetime(year, month, int(day), int(hour), int(minute), int(second), tzinfo=zone)
        except ValueError:
            continue
        # A naive time is local: astimezone() reads it through the C library's zone, DST included.
        us = int((moment if zone is not None else moment.astimezone()).timestamp()) * 1_000_000
        if best is None or abs(us - now_us) < abs(best - now_us):
            best = us
    if best is None:
        text = match[0].decode().strip()
        raise SyslogRefused(MALFORMED, f"TIMESTAMP {text!r} is not a date of any year near now")
    return best


def _service_name(name: str, field: str) -> str:
    if not is_service_name(name):
        raise SyslogRefused(BAD_APP_NAME, f"{field} {name!r} is not a service name: it {SERVICE_RULE}")
    return name


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")
