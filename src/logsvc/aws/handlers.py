"""The two Lambda functions: ``ingest`` (POST /logs) and ``read`` (GET /logs, /logs/recent, /logs/{log_id}).

Each is thin: read the event, map the caller to a Principal, call ``LogService``, encode the answer as the
HTTP server does (same bodies, same problem+json errors). The settings, the store and an event loop are made
at the first invocation of a container and kept for its life; tests build a ``LambdaApp`` from explicit
settings instead of the environment.

Handler names for the Lambda configuration: ``logsvc.aws.handlers.ingest`` and ``logsvc.aws.handlers.read``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import msgspec

from logsvc.auth.policy import Permission, Principal
from logsvc.aws.events import Request, parse_event
from logsvc.aws.identity import PrincipalMap
from logsvc.content import GZIP_MAGIC, check_size
from logsvc.domain.retention import retention_rules
from logsvc.errors import (
    PROBLEM_TYPE,
    ConfigError,
    FieldError,
    LogServiceError,
    MethodNotAllowed,
    RouteNotFound,
    ValidationFailed,
    encode_problem,
    problem_of,
)
from logsvc.logs import JsonFormatter
from logsvc.service import Created, LogService
from logsvc.settings import Settings, load_settings
from logsvc.storage.open import open_store
from logsvc.storage.port import LogStore

__all__ = ["INGEST_ROUTES", "READ_ROUTES", "LambdaApp", "configure_logging", "ingest", "read"]

log = logging.getLogger("logsvc.aws")

# Lambda returns at most 6 MB of response document (API Gateway would turn more into a bare 502). A body
# character takes at most 6 bytes in that document (a JSON-escaped control character; UTF-8 takes 4), so a
# body of fewer characters than the second figure cannot reach it. The store keeps pages far below anyway.
MAX_RESPONSE_BYTES = 6 * 1024 * 1024
_SURELY_FITS_CHARS = MAX_RESPONSE_BYTES // 6

Response = dict[str, Any]
Operation = Callable[["LambdaApp", Request, Principal, dict[str, str]], Awaitable[Response]]


@dataclass(frozen=True, slots=True)
class Route:
    template: str
    method: str
    permission: Permission
    operation: Operation


@functools.cache
def _template_pattern(template: str) -> re.Pattern[str]:
    """``/logs/{log_id}`` as a regular expression with one named group per path parameter."""
    return re.compile(re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template)))


def _json(content: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return _response(status, msgspec.json.encode(content), "application/json", headers)


def _response(status: int, body: bytes, media_type: str, headers: dict[str, str] | None = None) -> Response:
    """A Lambda proxy answer; REST APIs, HTTP APIs and function URLs all read these four keys."""
    all_headers = {"content-type": media_type} | {
        name.lower(): value for name, value in (headers or {}).items()
    }
    return {"statusCode": status, "headers": all_headers, "body": body.decode(), "isBase64Encoded": False}


def _problem(exc: LogServiceError) -> Response:
    return _response(exc.status, problem_of(exc), PROBLEM_TYPE, exc.headers)


def _internal_error() -> Response:
    detail = "the server failed to answer; see its log"
    return _response(
        500, encode_problem(500, "internal_error", "Internal server error", detail), PROBLEM_TYPE
    )


async def _ingest(app: LambdaApp, request: Request, principal: Principal, params: dict[str, str]) -> Response:
    check_size(request.body, max_bytes=app.settings.max_body_bytes)
    service = await app.service()
    result = await service.ingest(request.body, _encoding_as_received(request), principal=principal)
    location = {"location": f"/logs/{result.log_id}"} if isinstance(result, Created) else None
    return _json(result, 201, location)


def _encoding_as_received(request: Request) -> Mapping[str, str]:
    """The headers, without a gzip Content-Encoding whose body is no longer gzip: a REST API gunzips request
    bodies before it invokes the integration and may pass the header on (API Gateway developer guide,
    "Call an API method with a compressed payload")."""
    encoding = request.headers.get("content-encoding", "").strip().lower()
    if encoding in ("gzip", "x-gzip") and not request.body.startswith(GZIP_MAGIC):
        return {name: value for name, value in request.headers.items() if name != "content-encoding"}
    return request.headers


async def _recent(app: LambdaApp, request: Request, principal: Principal, params: dict[str, str]) -> Response:
    response = _json(await (await app.service()).recent(request.query, principal=principal))
    if len(response["body"]) > _SURELY_FITS_CHARS:
        size = len(msgspec.json.encode(response))
        if size > MAX_RESPONSE_BYTES:
            advice = "ask for fewer entries and follow next_cursor"
            too_big = f"the page would be {size} bytes, over the {MAX_RESPONSE_BYTES} a Lambda can answer"
            raise ValidationFailed([FieldError("limit", f"{too_big}; {advice}")])
    return response


async def _get(app: LambdaApp, request: Request, principal: Principal, params: dict[str, str]) -> Response:
    return _json(await (await app.service()).get(params["log_id"], principal=principal))


INGEST_ROUTES = (Route("/logs", "POST", Permission.INGEST, _ingest),)
READ_ROUTES = (
    Route("/logs", "GET", Permission.READ, _recent),
    Route("/logs/recent", "GET", Permission.READ, _recent),
    Route("/logs/{log_id}", "GET", Permission.READ, _get),
)


def match_route(request: Request, routes: tuple[Route, ...]) -> tuple[Route, dict[str, str]]:
    """The route of this function for the request, with its path parameters; 404 or 405 as the server.

    API Gateway names the route it matched (and decodes its parameters); a function URL or a catch-all route
    does not, and then the path is matched against each route's template.
    """
    by_template = request.route in {route.template for route in routes}
    path = request.path.rstrip("/") or "/"
    allowed: list[str] = []
    for route in routes:
        pattern = _template_pattern(route.template)
        if by_template:
            if route.template != request.route:
                continue
            params = dict(request.path_params)
        else:
            found = pattern.fullmatch(path)
            if found is None:
                continue
            params = {name: unquote(value) for name, value in found.groupdict().items()}
        if not params.keys() >= pattern.groupindex.keys():
            continue  # a route template without its parameter: nothing to answer with
        if route.method == request.method:
            return route, params
        allowed.append(route.method)
    where = f"{request.method} {request.path}"
    if allowed:
        raise MethodNotAllowed(f"{where}: Method Not Allowed", allow=sorted(set(allowed)))
    raise RouteNotFound(f"{where}: Not Found")


class LambdaApp:
    """What one Lambda container keeps between invocations: settings, the caller mapping, an event loop,
    and the service over the store (opened at the first request that needs it)."""

    def __init__(self, settings: Settings, *, store: LogStore | None = None) -> None:
        self.settings = settings
        self.principals = PrincipalMap.from_settings(settings)
        self._store = store
        self._service: LogService | None = None
        self._loop = asyncio.new_event_loop()

    async def service(self) -> LogService:
        if self._service is None:
            if self._store is None:
                self._store = open_lambda_store(self.settings)
            self._service = LogService(self._store, self.settings.limits)
        return self._service

    def ingest(self, event: dict[str, Any], context: Any) -> Response:
        return self.handle(event, context, INGEST_ROUTES)

    def read(self, event: dict[str, Any], context: Any) -> Response:
        return self.handle(event, context, READ_ROUTES)

    def handle(self, event: dict[str, Any], context: Any, routes: tuple[Route, ...]) -> Response:
        """One invocation; every failure becomes a problem+json answer, never a stack trace."""
        started = time.perf_counter()
        request: Request | None = None
        principal: Principal | None = None
        try:
            request = parse_event(event)
            route, params = match_route(request, routes)
            principal = self.principals.principal(request.identity)
            principal.require(route.permission)
            response = self._loop.run_until_complete(route.operation(self, request, principal, params))
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

    def close(self) -> None:
        """Finish the store's writes and release it (tests; a Lambda container is simply frozen)."""
        if self._store is not None:
            self._loop.run_until_complete(self._store.close())
        self._loop.close()


def open_lambda_store(settings: Settings) -> LogStore:
    """The DynamoDB store of the settings; a Lambda has no disk to keep SQLite on."""
    if not settings.store.startswith("dynamodb://"):
        raise ConfigError(
            f"the Lambda handlers need a DynamoDB store: set LOGSVC_STORE=dynamodb://TABLE?region=REGION "
            f"(got {settings.store or 'the default SQLite store'})"
        )
    rules = retention_rules(settings.retention_days, settings.retention_by_service)
    return open_store(settings.store, retention=rules)


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
