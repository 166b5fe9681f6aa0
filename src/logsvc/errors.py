"""The one exception hierarchy of the service.

Each class carries its HTTP status, a stable machine-readable ``code`` and a human title, so that one handler
can turn any of them into an RFC 9457 problem document. Storage adapters translate their backend's
exceptions into these; nothing else reaches a client.
"""

from __future__ import annotations

import msgspec

__all__ = [
    "ConfigError",
    "FieldError",
    "LogServiceError",
    "NotFound",
    "PayloadTooLarge",
    "RequestTimeout",
    "StoreFull",
    "StoreUnavailable",
    "UnsupportedMediaType",
    "ValidationFailed",
]


class FieldError(msgspec.Struct, frozen=True, omit_defaults=True):
    """One rule broken by one field; ``index`` is the entry's position in a batch."""

    field: str
    message: str
    index: int | None = None

    def __str__(self) -> str:
        where = f"[{self.index}]." if self.index is not None else ""
        return (
            f"{where}{self.field}: {self.message}" if self.field else f"{where.rstrip('.')}: {self.message}"
        )


class LogServiceError(Exception):
    """Base of every error the service reports to a client."""

    status: int = 500
    code: str = "internal_error"
    title: str = "Internal server error"

    def __init__(self, detail: str | None = None) -> None:
        self.detail = detail or self.title
        super().__init__(self.detail)

    @property
    def headers(self) -> dict[str, str]:
        return {}


class ValidationFailed(LogServiceError):
    """The request is well-formed HTTP but breaks one or more rules of the data model or the API."""

    status = 400
    code = "validation_error"
    title = "Request validation failed"

    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = errors
        shown = "; ".join(str(e) for e in errors[:5])
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        super().__init__(shown + more)


class NotFound(LogServiceError):
    status = 404
    code = "not_found"
    title = "Not found"


class RequestTimeout(LogServiceError):
    status = 408
    code = "request_timeout"
    title = "Request body not received in time"


class PayloadTooLarge(LogServiceError):
    status = 413
    code = "payload_too_large"
    title = "Request body too large"


class UnsupportedMediaType(LogServiceError):
    status = 415
    code = "unsupported_media_type"
    title = "Unsupported media type"


class StoreUnavailable(LogServiceError):
    """The store cannot take or answer requests right now; clients should retry later."""

    status = 503
    code = "store_unavailable"
    title = "Storage unavailable"
    retry_after_seconds = 1

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_seconds)}


class StoreFull(LogServiceError):
    status = 507
    code = "store_full"
    title = "Storage full"


class ConfigError(Exception):
    """Invalid settings: reported at start-up, never to a client."""
