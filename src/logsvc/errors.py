"""The one exception hierarchy of the service, and the RFC 9457 problem document it is reported as.

Each class carries its HTTP status, a stable machine-readable ``code`` and a human title, so that one handler
can turn any of them into a problem document. Storage adapters translate their backend's exceptions into
these; nothing else reaches a client. The encoding lives here, free of any web framework, so that the HTTP
server and the Lambda handlers answer with the same bytes.
"""

from __future__ import annotations

import msgspec

__all__ = [
    "ACCEPTED_CREDENTIALS",
    "PROBLEM_TYPE",
    "AuthenticationFailed",
    "ConfigError",
    "Conflict",
    "EntriesRefused",
    "FieldError",
    "Forbidden",
    "HeadTimeout",
    "HeadersTooLarge",
    "InvalidSignature",
    "LogServiceError",
    "MethodNotAllowed",
    "MissingAuthenticationToken",
    "MissingCredentials",
    "NotFound",
    "PayloadTooLarge",
    "Problem",
    "ReplayedSignature",
    "RequestTimeout",
    "RetryLater",
    "RouteNotFound",
    "ServerBusy",
    "SignatureExpired",
    "SignatureMismatch",
    "SignatureRejected",
    "StoreFull",
    "StoreUnavailable",
    "TooManyFailedAuthentications",
    "TooManyRequests",
    "TooManyStreams",
    "UnsupportedMediaType",
    "ValidationFailed",
    "encode_problem",
    "problem_of",
]

PROBLEM_TYPE = "application/problem+json"
_PROBLEM_TYPE_BASE = "https://logsvc.dev/problems/"


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


class Problem(msgspec.Struct, frozen=True, omit_defaults=True):
    """An RFC 9457 problem document; ``type`` is the code under the service's problem namespace."""

    type: str
    title: str
    status: int
    detail: str
    code: str
    errors: list[FieldError] = []


def encode_problem(
    status: int, code: str, title: str, detail: str, *, errors: list[FieldError] | None = None
) -> bytes:
    """The JSON body of a problem response."""
    problem = Problem(
        type=_PROBLEM_TYPE_BASE + code,
        title=title,
        status=status,
        detail=detail,
        code=code,
        errors=errors or [],
    )
    return msgspec.json.encode(problem)


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


class EntriesRefused(ValidationFailed):
    """Some entries of a shipper's batch broke the rules and were refused; the others were stored durably
    before this was raised (Loki's push answers so). ``errors`` names the first refused, at most a few."""

    code = "entries_refused"
    title = "Some entries were refused"

    def __init__(self, errors: list[FieldError], *, refused: int, stored: int) -> None:
        self.errors = errors
        shown = "; ".join(str(e) for e in errors[:5])
        more = "; ..." if len(errors) > 5 else ""
        LogServiceError.__init__(
            self, f"{refused} of {refused + stored} entries refused, the others stored: {shown}{more}"
        )


# The credential schemes the server accepts, as every 401 names them: in its detail when none were sent,
# and as challenges in WWW-Authenticate. HTTP Basic (the API key as the password, for log shippers that know
# no other scheme) is named in the detail but not challenged: a Basic challenge makes a browser ask for a
# user name and password, also under the web viewer's own requests.
ACCEPTED_CREDENTIALS = (
    "an AWS Signature V4 (AWS4-HMAC-SHA256, service execute-api), Authorization: Bearer <API key or OIDC "
    "token>, or HTTP Basic with the API key as the password (under /compat/cognito/ also the raw ID token, "
    "without Bearer)"
)
_CHALLENGES = 'Bearer realm="logsvc", AWS4-HMAC-SHA256 realm="logsvc"'


class AuthenticationFailed(LogServiceError):
    """No usable credentials (401). ``code`` tells which rule failed, e.g. ``token_expired``."""

    status = 401
    code = "unauthenticated"
    title = "Authentication required"

    def __init__(self, detail: str | None = None, *, code: str | None = None) -> None:
        if code is not None:
            self.code = code
        super().__init__(detail)

    @property
    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": _CHALLENGES}


class MissingCredentials(AuthenticationFailed):
    """A request without credentials to a route that needs them."""

    code = "missing_authentication_token"

    def __init__(self) -> None:
        super().__init__(f"send credentials: {ACCEPTED_CREDENTIALS}")


class SignatureRejected(LogServiceError):
    """An AWS Signature V4 request refused (403, as API Gateway answers); subclasses say why."""

    status = 403
    code = "invalid_signature"
    title = "Request signature rejected"


class MissingAuthenticationToken(SignatureRejected):
    code = "missing_authentication_token"
    title = "Missing Authentication Token"


class InvalidSignature(SignatureRejected):
    code = "invalid_signature"
    title = "The request signature does not match"


class SignatureMismatch(InvalidSignature):
    """The signature does not verify: the secret is wrong, or no usable credential has the access key id.
    Both get this one answer, so that refusals do not tell which key ids exist."""

    def __init__(self) -> None:
        super().__init__(
            "The request signature we calculated does not match the signature you provided. "
            "Check your AWS Access Key ID, Secret Access Key and signing method."
        )


class SignatureExpired(SignatureRejected):
    code = "signature_expired"
    title = "Signature expired or not yet valid"


class ReplayedSignature(SignatureRejected):
    code = "replayed_signature"
    title = "Signature already used"


class Forbidden(LogServiceError):
    """Authenticated, but this credential may not do this."""

    status = 403
    code = "forbidden"
    title = "Forbidden"


class RetryLater(LogServiceError):
    """A refusal that a client should retry: it says when, in ``Retry-After`` (seconds)."""

    def __init__(self, detail: str | None = None, *, retry_after_seconds: int = 1) -> None:
        self.retry_after_seconds = retry_after_seconds
        super().__init__(detail)

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_seconds)}


class TooManyRequests(RetryLater):
    status = 429
    code = "rate_limited"
    title = "Too many requests"


class TooManyStreams(TooManyRequests):
    """Over a limit of concurrent tail streams (per credential, or of the process)."""

    code = "too_many_streams"


class TooManyFailedAuthentications(TooManyRequests):
    """A client address over its limit of failed authentications: refused before its credentials are
    checked."""

    code = "too_many_failed_authentications"


class NotFound(LogServiceError):
    status = 404
    code = "not_found"
    title = "Not found"


class RouteNotFound(LogServiceError):
    """No route has the path (titled as Starlette's router titles it, so both shapes answer alike)."""

    status = 404
    code = "not_found"
    title = "Not Found"


class Conflict(LogServiceError):
    """The request is valid but the state of what it names forbids it (e.g. revoking the last admin key)."""

    status = 409
    code = "conflict"
    title = "Conflict"


class MethodNotAllowed(LogServiceError):
    status = 405
    code = "method_not_allowed"
    title = "Method Not Allowed"

    def __init__(self, detail: str, *, allow: list[str]) -> None:
        self.allow = allow
        super().__init__(detail)

    @property
    def headers(self) -> dict[str, str]:
        return {"allow": ", ".join(self.allow)}


class RequestTimeout(LogServiceError):
    status = 408
    code = "request_timeout"
    title = "Request body not received in time"


class HeadTimeout(RequestTimeout):
    """The request head (request line and headers) was not complete in time; the connection is closed."""

    title = "Request head not received in time"


class PayloadTooLarge(LogServiceError):
    status = 413
    code = "payload_too_large"
    title = "Request body too large"


class HeadersTooLarge(LogServiceError):
    status = 431
    code = "headers_too_large"
    title = "Request header fields too large"


class UnsupportedMediaType(LogServiceError):
    status = 415
    code = "unsupported_media_type"
    title = "Unsupported media type"


class StoreUnavailable(RetryLater):
    """The store cannot take or answer requests right now; clients should retry later."""

    status = 503
    code = "store_unavailable"
    title = "Storage unavailable"


class ServerBusy(RetryLater):
    """Every slot for decoding large request bodies stayed taken; clients should retry shortly."""

    status = 503
    code = "server_busy"
    title = "Server busy"


class StoreFull(LogServiceError):
    status = 507
    code = "store_full"
    title = "Storage full"


def problem_of(exc: LogServiceError) -> bytes:
    """The JSON body reporting ``exc``: its status, code, title, detail and, for a 400, every field error."""
    errors: list[FieldError] | None = getattr(exc, "errors", None)
    return encode_problem(exc.status, exc.code, exc.title, exc.detail, errors=errors)


class ConfigError(Exception):
    """Invalid settings: reported at start-up, never to a client."""
