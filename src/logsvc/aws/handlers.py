"""The two Lambda functions: ``ingest`` (POST /logs) and ``read`` (GET /logs, /logs/recent, /logs/{log_id}):
each serves the endpoints of the route table (``logsvc.endpoints``) that name it.

Each is thin: read the event, map the caller to a Principal, run the endpoint's operation, encode the answer
as the HTTP server does (same bodies, same problem+json errors). The settings, the store and an event loop
are made at the first invocation of a container and kept for its life; tests build a ``LambdaApp`` from
explicit settings instead of the environment.

Handler names for the Lambda configuration: ``logsvc.aws.handlers.ingest`` and ``logsvc.aws.handlers.read``.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import logging
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from logsvc.auth.policy import Principal
from logsvc.auth.refusals import RefusalAudit
from logsvc.aws.events import Request, parse_event
from logsvc.aws.identity import PrincipalMap
from logsvc.content import GZIP_MAGIC, check_size
from logsvc.domain.otlp import PROTOBUF
from logsvc.endpoints import ENDPOINTS
from logsvc.errors import (
    PROBLEM_TYPE,
    AuthenticationFailed,
    ConfigError,
    FieldError,
    Forbidden,
    LogServiceError,
    ValidationFailed,
    encode_problem,
    problem_of,
)
from logsvc.logs import JsonFormatter
from logsvc.root import Root
from logsvc.routing import Answer, Call, Endpoint, LambdaFunction, Services, authorize, match, respond
from logsvc.service import LogService
from logsvc.settings import Settings, load_settings
from logsvc.storage.port import LogStore
from logsvc.store_url import engine_of

__all__ = ["LambdaApp", "configure_logging", "ingest", "read"]

log = logging.getLogger("logsvc.aws")

# Lambda returns at most 6 MB of response document (API Gateway would turn more into a bare 502). A body
# character takes at most 6 bytes in that document (a JSON-escaped control character; UTF-8 takes 4), so a
# body of fewer characters than the second figure cannot reach it. The store keeps pages far below anyway.
MAX_RESPONSE_BYTES = 6 * 1024 * 1024
_SURELY_FITS_CHARS = MAX_RESPONSE_BYTES // 6
# API Gateway knows the caller's address, the events as read here do not carry it.
_SOURCE = "unknown"

Response = dict[str, Any]


def _response(
    status: int, body: bytes, media_type: str, headers: Mapping[str, str] | None = None
) -> Response:
    """A Lambda proxy answer; REST APIs, HTTP APIs and function URLs all read these four keys."""
    # An answer without a body (Loki's 204) has no media type.
    all_headers = ({"content-type": media_type} if media_type else {}) | {
        name.lower(): value for name, value in (headers or {}).items()
    }
    if media_type != PROTOBUF:
        return {"statusCode": status, "headers": all_headers, "body": body.decode(), "isBase64Encoded": False}
    # A binary answer (OTLP's protobuf) goes as base64, which API Gateway decodes for the caller.
    return {
        "statusCode": status,
        "headers": all_headers,
        "body": base64.b64encode(body).decode(),
        "isBase64Encoded": True,
    }


def _answered(answer: Answer) -> Response:
    """The answer as a Lambda response, if it fits in one (only a page of entries could be too big)."""
    response = _response(answer.status, answer.body, answer.media_type, answer.headers)
    if len(response["body"]) > _SURELY_FITS_CHARS:
        size = len(msgspec.json.encode(response))
        if size > MAX_RESPONSE_BYTES:
            advice = "ask for fewer entries and follow next_cursor"
            too_big = f"the page would be {size} bytes, over the {MAX_RESPONSE_BYTES} a Lambda can answer"
            raise ValidationFailed([FieldError("limit", f"{too_big}; {advice}")])
    return response


def _problem(exc: LogServiceError) -> Response:
    return _response(exc.status, problem_of(exc), PROBLEM_TYPE, exc.headers)


def _internal_error() -> Response:
    detail = "the server failed to answer; see its log"
    return _response(
        500, encode_problem(500, "internal_error", "Internal server error", detail), PROBLEM_TYPE
    )


def _encoding_as_received(request: Request) -> Mapping[str, str]:
    """The headers, without a gzip Content-Encoding whose body is no longer gzip: a REST API gunzips request
    bodies before it invokes the integration and may pass the header on (API Gateway developer guide,
    "Call an API method with a compressed payload")."""
    encoding = request.headers.get("content-encoding", "").strip().lower()
    if encoding in ("gzip", "x-gzip") and not request.body.startswith(GZIP_MAGIC):
        return {name: value for name, value in request.headers.items() if name != "content-encoding"}
    return request.headers


class LambdaApp:
    """What one Lambda container keeps between invocations: settings, the caller mapping, an event loop,
    and the service over the store (opened at the first request that needs it). Each function serves the
    endpoints of the route table that name it."""

    def __init__(
        self, settings: Settings, *, store: LogStore | None = None, endpoints: Sequence[Endpoint] = ENDPOINTS
    ) -> None:
        self.settings = settings
        self.principals = PrincipalMap.from_settings(settings)
        self.endpoints = endpoints
        # A Lambda function opens no credential store, so it has no audit trail to record refusals in.
        self.refusals = RefusalAudit(None)
        self._services = Services(settings=settings, log=self.service)
        self._opens_store = store is None
        self._root = Root(settings, store=store)
        self._loop = asyncio.new_event_loop()

    async def service(self) -> LogService:
        """The log service over the store, which opens at the first request that needs it."""
        if self._opens_store:
            check_lambda_store(self.settings)
        return self._root.log_service()

    def ingest(self, event: dict[str, Any], context: Any) -> Response:
        return self.handle(event, context, "ingest")

    def read(self, event: dict[str, Any], context: Any) -> Response:
        return self.handle(event, context, "read")

    def handle(self, event: dict[str, Any], context: Any, function: LambdaFunction) -> Response:
        """One invocation; every failure becomes a problem+json answer, never a stack trace."""
        started = time.perf_counter()
        request: Request | None = None
        principal: Principal | None = None
        try:
            request = parse_event(event)
            served = [endpoint for endpoint in self.endpoints if endpoint.function == function]
            endpoint, params = match(
                served, request.method, request.path, route=request.route, route_params=request.path_params
            )
            principal = self._principal(request, endpoint)
            call = Call(
                principal=principal,
                path_params=params,
                query=request.query,
                headers=_encoding_as_received(request),
                source=_SOURCE,
                body=functools.partial(self._body, request),
                services=self._services,
            )
            response = _answered(self._loop.run_until_complete(respond(endpoint, call, self.refusals)))
        except LogServiceError as exc:
            if exc.status >= 500:
                log.warning("%s: %s", _describe(request, context), exc.detail)
            response = _problem(exc)
        except ConfigError as exc:
            log.error("%s: the function is misconfigured: %s", _describe(request, context), exc)
            response = _internal_error()
        except Exception as exc:
            log.error("%s: unhandled error", _describe(request, context), exc_info=exc)
            response = _internal_error()
        if self.settings.access_log:
            log.info(
                "%s -> %d in %.1f ms as %s",
                _describe(request, context),
                response["statusCode"],
                (time.perf_counter() - started) * 1000,
                principal.id if principal else "-",
            )
        return response

    def _principal(self, request: Request, endpoint: Endpoint) -> Principal:
        """The caller API Gateway authenticated, mapped to a role and held to the endpoint's permission."""
        try:
            principal = self.principals.principal(request.identity)
        except (AuthenticationFailed, Forbidden) as exc:
            if request.identity is not None:  # as on the server, a request without credentials is no refusal
                target = f"{request.method} {request.path}"
                self.refusals.refused(exc, principal=None, target=target, source=_SOURCE)
            raise
        return authorize(endpoint, principal, self.refusals, source=_SOURCE)

    async def _body(self, request: Request) -> bytes:
        check_size(request.body, max_bytes=self.settings.max_body_bytes)
        return request.body

    def close(self) -> None:
        """Finish the store's writes and release it (tests; a Lambda container is simply frozen)."""
        self._loop.run_until_complete(self._root.close())
        self._loop.close()


def check_lambda_store(settings: Settings) -> None:
    """A Lambda has no disk to keep SQLite on: the store must be DynamoDB."""
    if engine_of(settings.store) != "dynamodb":
        raise ConfigError(
            f"the Lambda handlers need a DynamoDB store: set LOGSVC_STORE=dynamodb://TABLE?region=REGION "
            f"(got {settings.store or 'the default SQLite store'})"
        )


def _describe(request: Request | None, context: Any) -> str:
    request_id = getattr(context, "aws_request_id", "") or (request.request_id if request else "")
    where = f"{request.method} {request.path}" if request else "(unreadable event)"
    return f"{where} [{request_id or 'no request id'}]"


def configure_logging(level: str) -> None:
    """JSON lines on stdout (CloudWatch Logs keeps one event per line) for the ``logsvc`` loggers."""
    logger = logging.getLogger("logsvc")
    if not any(getattr(handler, "logsvc_json", False) for handler in logger.handlers):
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(JsonFormatter())
        handler.logsvc_json = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    logger.setLevel(level.upper())
    logger.propagate = False  # the runtime's root handler would print every line a second time


@functools.cache
def _container() -> LambdaApp:
    """The container's app, from the LOGSVC_* environment; a failure is not cached, the next call retries."""
    settings = load_settings()
    configure_logging(settings.log_level)
    return LambdaApp(settings)


def _app_or_failure(context: Any) -> LambdaApp | Response:
    try:
        return _container()
    except ConfigError as exc:
        configure_logging("info")
        log.error("%s: the function is misconfigured: %s", _describe(None, context), exc)
        return _internal_error()


def ingest(event: dict[str, Any], context: Any) -> Response:
    """Lambda entry point of the ingest function."""
    app = _app_or_failure(context)
    return app.ingest(event, context) if isinstance(app, LambdaApp) else app


def read(event: dict[str, Any], context: Any) -> Response:
    """Lambda entry point of the read function."""
    app = _app_or_failure(context)
    return app.read(event, context) if isinstance(app, LambdaApp) else app
