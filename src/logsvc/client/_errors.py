"""The SDK's exceptions: one base, ``ClientError``, and a class for each answer a caller treats differently.

Each carries the problem document the service sent (RFC 9457, ``docs/api.md``), or what an intermediary such
as API Gateway sent in its place, so that a caller can read ``code``, ``detail`` and the per-field ``errors``
of a 400 without parsing text.
"""

from __future__ import annotations

import email.utils
import time
from typing import Any

import httpx
import msgspec

__all__ = [
    "AuthError",
    "BadRequest",
    "ClientError",
    "CredentialsUnavailable",
    "NotFound",
    "PayloadTooLarge",
    "PermissionDenied",
    "ServerError",
    "Throttled",
    "Unauthenticated",
    "Unreachable",
    "error_for",
]


class ClientError(Exception):
    """A request that did not succeed.

    ``status`` is the HTTP status (None when no answer came), ``problem`` the decoded error body (an empty
    dict when there was none), ``retry_after`` the seconds the service asked to wait (``Retry-After``).
    """

    def __init__(
        self, status: int | None, problem: dict[str, Any], *, retry_after: float | None = None
    ) -> None:
        self.status = status
        self.problem = problem
        self.retry_after = retry_after
        super().__init__(self._text())

    @property
    def code(self) -> str | None:
        """The service's stable error code, e.g. ``validation_error`` or ``rate_limited``."""
        code = self.problem.get("code")
        return code if isinstance(code, str) else None

    @property
    def detail(self) -> str:
        return str(self.problem.get("detail") or self.problem.get("message") or "")

    @property
    def errors(self) -> list[dict[str, Any]]:
        """One item per rule a 400 names: ``field``, ``message`` and, in a batch, the entry's ``index``."""
        errors = self.problem.get("errors")
        return [e for e in errors if isinstance(e, dict)] if isinstance(errors, list) else []

    @property
    def retryable(self) -> bool:
        """Whether the same request may succeed later: no answer, no credentials yet, 408, 429 or 5xx."""
        return self.status is not None and (self.status in (408, 429) or self.status >= 500)

    def _text(self) -> str:
        title = str(self.problem.get("title") or "error")
        described = [_describe(e) for e in self.errors]
        detail = "; ".join(described) if described else self.detail
        return f"{self.status} {title}" + (f": {detail}" if detail and detail != title else "")


def _describe(error: dict[str, Any]) -> str:
    where = "" if error.get("index") is None else f"[{error['index']}] "
    return f"{where}{error.get('field')}: {error.get('message')}"


class Unreachable(ClientError):
    """No usable answer: the connection failed or timed out, or the answer could not be read. The cause
    (an ``httpx.RequestError``) is ``__cause__``. A request may or may not have been processed."""

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        self.reason = reason
        super().__init__(None, {})

    @property
    def retryable(self) -> bool:
        return True

    def _text(self) -> str:
        return f"cannot reach {self.url}: {self.reason}"


class CredentialsUnavailable(ClientError):
    """The credentials to sign with could not be had (botocore's chain found none, or STS refused the role);
    nothing was sent. Retryable: an instance role or an STS endpoint may answer later."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(None, {})

    @property
    def retryable(self) -> bool:
        return True

    def _text(self) -> str:
        return self.reason


class BadRequest(ClientError):
    """400: the request breaks a rule; ``errors`` names every field (and, in a batch, every entry)."""


class AuthError(ClientError):
    """401 or 403: the credential is missing, wrong, expired, or not allowed to do this."""


class Unauthenticated(AuthError):
    """401: no credential the service accepts."""


class PermissionDenied(AuthError):
    """403: a signature that does not verify, or a credential without the role or the service scope."""


class NotFound(ClientError):
    """404: no such entry (or none this credential may read), or no such route."""


class PayloadTooLarge(ClientError):
    """413: the body is larger than the service takes; send fewer entries at a time."""


class Throttled(ClientError):
    """429: over the credential's rate limit; ``retry_after`` says when to try again."""


class ServerError(ClientError):
    """5xx: the service could not do it now (storage unavailable or full, busy); safe to retry."""


_BY_STATUS: dict[int, type[ClientError]] = {
    400: BadRequest,
    401: Unauthenticated,
    403: PermissionDenied,
    404: NotFound,
    413: PayloadTooLarge,
    429: Throttled,
}


def error_for(response: httpx.Response) -> ClientError:
    """The exception for an answer of 400 or more."""
    status = response.status_code
    problem: dict[str, Any]
    try:
        decoded = msgspec.json.decode(response.content) if response.content else {}
        problem = decoded if isinstance(decoded, dict) else {"detail": str(decoded)[:500]}
    except msgspec.DecodeError:
        problem = {"detail": response.text[:500]}
    kind = _BY_STATUS.get(status, ServerError if status >= 500 else ClientError)
    return kind(status, problem, retry_after=_retry_after(response.headers.get("retry-after")))


def _retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds from now: a number of seconds or an HTTP date (RFC 9110 section 10.2.3)."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
