"""The service's own logs: one JSON object per line on stderr, for every logger including uvicorn's."""

from __future__ import annotations

import logging
from typing import Any

import msgspec

from logsvc.domain.timestamps import format_timestamp

__all__ = ["JsonFormatter", "log_config"]


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": format_timestamp(int(record.created * 1_000_000)),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return msgspec.json.encode(line).decode()


def log_config(level: str) -> dict[str, Any]:
    """A logging.config.dictConfig dictionary (uvicorn applies it in every worker process)."""
    level = level.upper()
    handler = {"handlers": ["stderr"], "level": level, "propagate": False}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {
            "stderr": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
        },
        "loggers": {
            "logsvc": handler,
            "uvicorn": handler,
            "uvicorn.error": handler,
            "uvicorn.access": handler,
        },
    }
