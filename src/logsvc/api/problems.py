"""The one place that turns exceptions into RFC 9457 problem+json responses (the document itself is encoded
by ``logsvc.errors``, which the Lambda handlers share)."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from logsvc.errors import (
    PROBLEM_TYPE,
    FieldError,
    LogServiceError,
    MethodNotAllowed,
    Problem,
    RouteNotFound,
    encode_problem,
)

__all__ = ["PROBLEM_TYPE", "Problem", "error_response", "handle_error", "is_expected", "problem_response"]

log = logging.getLogger("logsvc.api")

_HTTP_CODES = {404: RouteNotFound.code, 405: MethodNotAllowed.code}


def problem_response(
    status: int,
    code: str,
    title: str,
    detail: str,
    *,
    errors: list[FieldError] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    body = encode_problem(status, code, title, detail, errors=errors)
    return Response(body, status_code=status, media_type=PROBLEM_TYPE, headers=headers)


async def handle_error(request: Request, exc: Exception) -> Response:
    """Starlette's exception handler: ``error_response``."""
    return error_response(exc, request.method, request.url.path)


def is_expected(exc: Exception) -> bool:
    """Whether ``exc`` is one the service answers by design (any other is a 500 the server also logs)."""
    return isinstance(exc, LogServiceError | HTTPException | ClientDisconnect)


def error_response(exc: Exception, method: str, path: str) -> Response:
    """Every exception, by class; internal detail of an unexpected error is logged, never sent."""
    if isinstance(exc, LogServiceError):
        if exc.status >= 500:
            log.warning("%s %s: %s", method, path, exc.detail)
        return problem_response(
            exc.status,
            exc.code,
            exc.title,
            exc.detail,
            errors=getattr(exc, "errors", None),
            headers=exc.headers,
        )
    if isinstance(exc, HTTPException):
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        detail = f"{method} {path}: {exc.detail}"
        return problem_response(exc.status_code, code, str(exc.detail), detail, headers=exc.headers)
    if isinstance(exc, ClientDisconnect):
        # Nobody is left to read this answer; it exists only for the access log and metrics.
        return problem_response(400, "client_disconnected", "Client disconnected", "the client went away")
    log.error("unhandled error on %s %s", method, path, exc_info=exc)
    return problem_response(
        500, "internal_error", "Internal server error", "the server failed to answer; see its log"
    )
