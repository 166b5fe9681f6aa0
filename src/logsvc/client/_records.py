"""Log records (``logging``) and events (structlog) as entries, and any Python value as JSON.

This runs on the application's thread, in every logging call, so it does the least it can: values are
made JSON-safe here (they may change or die once the call returns), the JSON itself is encoded later by the
sending thread.
"""

from __future__ import annotations

import datetime
import enum
import logging
import sys
import time
import traceback
from collections.abc import Mapping
from types import TracebackType
from typing import Any

import uuid_utils

from logsvc.domain.entries import level_named

__all__ = ["event_entry", "json_safe", "level_of_number", "record_entry"]

# The service's limits on metadata (docs/api.md): deeper values are sent as their text, longer keys cut.
_MAX_DEPTH = 8
_MAX_KEY_CHARS = 128

# Attributes every LogRecord has; the rest of its __dict__ came from ``extra=``.
_RECORD_ATTRIBUTES = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}
# Keys of a structlog event that become fields of the entry, not metadata. ``timestamp`` is left out: the
# entry's own time is taken when the event reaches the processor, as exact and already in UTC.
_EVENT_FIELDS = frozenset({"event", "level", "timestamp", "exc_info", "exception", "stack", "stack_info"})
_EVENT_INTERNALS = frozenset({"_record", "_from_structlog"})


def _text(value: object) -> str:
    try:
        return str(value)
    except Exception:  # an object whose __str__ fails must not lose the log record
        return f"<{type(value).__name__} that cannot be shown>"


def json_safe(value: Any, depth: int = 1) -> Any:
    """``value`` as JSON-encodable Python: containers copied (to ``_MAX_DEPTH``, deeper ones as text), times
    in ISO 8601, enums as their value, bytes and anything else as text. Integers of any size stay numbers,
    as the service keeps them."""
    kind = type(value)
    if kind is str or kind is int or kind is bool or kind is float or value is None:
        return value
    if isinstance(value, enum.Enum):
        return json_safe(value.value, depth)
    if depth < _MAX_DEPTH:
        if isinstance(value, Mapping):
            return {_text(key)[:_MAX_KEY_CHARS]: json_safe(item, depth + 1) for key, item in value.items()}
        if isinstance(value, list | tuple | set | frozenset):
            return [json_safe(item, depth + 1) for item in value]
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    # Subclasses of the plain types, as their plain value.
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    return _text(value)


def level_of_number(number: int) -> str:
    """The entry level of a ``logging`` level number; custom levels go to the standard one below them."""
    if number >= logging.CRITICAL:
        return "FATAL"
    if number >= logging.ERROR:
        return "ERROR"
    if number >= logging.WARNING:
        return "WARN"
    if number >= logging.INFO:
        return "INFO"
    if number >= logging.DEBUG:
        return "DEBUG"
    return "TRACE"


def _formatted(exc_info: tuple[type[BaseException], BaseException, TracebackType | None]) -> str:
    return "".join(traceback.format_exception(*exc_info)).rstrip("\n")


_STANDARD_LEVELS = {n: level_of_number(n) for n in (0, 5, 10, 20, 30, 40, 50)}


def record_entry(
    record: logging.LogRecord,
    base: dict[str, Any],
    defaults: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The entry for a ``logging`` record: ``base`` holds the fields every entry of the handler shares.
    Written for speed: it runs on the application's thread in every logging call."""
    metadata = {
        "logger": record.name,
        "module": record.module,
        "function": record.funcName,
        "line": record.lineno,
        "thread": record.threadName,
        "process": record.process,
    }
    # A set difference in C: most records have no extra= fields, and then this is all it costs.
    extras = record.__dict__.keys() - _RECORD_ATTRIBUTES
    if extras or defaults:
        fields = record.__dict__
        own = metadata
        metadata = dict(defaults) if defaults else {}
        for key in extras:
            metadata[key] = json_safe(fields[key], 2)
        metadata.update(own)
    if record.exc_info and record.exc_info[0] is not None:
        # Cached on the record as logging's own Formatter does, so other handlers format it once.
        if not record.exc_text:
            record.exc_text = _formatted(record.exc_info)
        metadata["exception"] = record.exc_text
    elif record.exc_text:
        metadata["exception"] = record.exc_text
    if record.stack_info:
        metadata["stack"] = record.stack_info
    level = _STANDARD_LEVELS.get(record.levelno) or level_of_number(record.levelno)
    return {
        **base,
        "log_id": str(uuid_utils.uuid7()),
        "timestamp": int(record.created * 1_000_000),
        "level": level,
        "message": record.getMessage(),
        "metadata": metadata,
    }


def _event_exception(event: Mapping[str, Any]) -> Any:
    if "exception" in event:  # already rendered by structlog's format_exc_info or dict_tracebacks
        return json_safe(event["exception"], 2)
    exc_info = event.get("exc_info")
    if not exc_info:
        return None
    if isinstance(exc_info, BaseException):
        return _formatted((type(exc_info), exc_info, exc_info.__traceback__))
    if isinstance(exc_info, tuple):
        return _formatted(exc_info) if exc_info[0] is not None else None
    current = sys.exc_info()
    return _formatted(current) if current[0] is not None else None


def event_entry(
    event: Mapping[str, Any],
    method_name: str,
    base: dict[str, Any],
    defaults: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The entry for a structlog event dict (as the processors before this one left it)."""
    metadata = dict(defaults) if defaults else {}
    for key, value in event.items():
        if key not in _EVENT_FIELDS and key not in _EVENT_INTERNALS:
            metadata[key] = json_safe(value, 2)
    exception = _event_exception(event)
    if exception is not None:
        metadata["exception"] = exception
    stack = event.get("stack") or event.get("stack_info")
    if isinstance(stack, str):
        metadata["stack"] = stack
    name = event.get("level")
    level = level_named(name if isinstance(name, str) else method_name)
    entry = dict(base)
    entry["log_id"] = str(uuid_utils.uuid7())
    entry["timestamp"] = time.time_ns() // 1000
    # structlog's "exception" method logs at error; "msg" and unknown names at info.
    entry["level"] = level.name if level is not None else ("ERROR" if method_name == "exception" else "INFO")
    entry["message"] = _text(event.get("event", ""))
    entry["metadata"] = metadata
    return entry
