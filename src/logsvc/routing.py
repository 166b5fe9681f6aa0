"""What a route is, whichever shape serves it: the HTTP server (Starlette), the Lambda functions, OpenAPI.

A route is declared once (``logsvc.endpoints``) as an ``Endpoint``: path, method, name, the permission it
needs, the Lambda function that serves it (if any), its OpenAPI description and its operation. The operation
sees a ``Call`` (the parsed request and the services) and gives an ``Answer`` (status, bytes, headers); each
shape only turns its own request into a ``Call`` and the ``Answer`` into its own response. The permission is
enforced here, by ``authorize``, for both shapes. Nothing here imports Starlette: the Lambda zip has none.
"""

from __future__ import annotations

import functools
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol
from urllib.parse import unquote

import msgspec

from logsvc.auth.policy import Permission, Principal
from logsvc.auth.refusals import RefusalAudit
from logsvc.content import accepts_html
from logsvc.errors import ConfigError, Forbidden, MethodNotAllowed, MissingCredentials, RouteNotFound
from logsvc.service import AdminService, LogService
from logsvc.settings import Settings
from logsvc.tail import TailHub

__all__ = [
    "Answer",
    "Call",
    "Endpoint",
    "LambdaFunction",
    "Operation",
    "Services",
    "Stream",
    "authorize",
    "browser_redirect",
    "json_answer",
    "json_response",
    "match",
    "path_parameters",
    "respond",
    "schema_ref",
]

LambdaFunction = Literal["ingest", "read"]
SCHEMA_REF = "#/components/schemas/{name}"
# Who a public route sees when the caller sent no credentials.
_NOBODY = Principal(id="nobody", roles=frozenset())


class Stream(Protocol):
    """A body sent as it is made (a shape that can stream sends its chunks as they come); ``close`` ends
    it, also when the client went away before it began."""

    def __aiter__(self) -> AsyncIterator[bytes]: ...

    def close(self) -> None: ...


@dataclass(slots=True)
class Answer:
    """An operation's answer: ``body``, or ``stream`` for one sent as it is made."""

    status: int
    body: bytes
    media_type: str
    headers: dict[str, str] = field(default_factory=dict)
    stream: Stream | None = None


def json_answer(content: Any, status: int = 200, headers: dict[str, str] | None = None) -> Answer:
    return Answer(status, msgspec.json.encode(content), "application/json", headers or {})


def schema_ref(name: str) -> dict[str, str]:
    """An OpenAPI reference to one of the msgspec types in the document's components."""
    return {"$ref": SCHEMA_REF.format(name=name)}


def json_response(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


@dataclass(frozen=True, slots=True, kw_only=True)
class Services:
    """What operations may use. The Lambda functions have only the log service (and open it lazily), and
    no tail hub: they cannot stream."""

    settings: Settings
    log: Callable[[], Awaitable[LogService]]
    tail: TailHub | None = None
    admin: AdminService | None = None
    metrics: Callable[[], tuple[bytes, str]] | None = None
    openapi: bytes = b""
    # Whether a principal authenticated earlier may still act (a revoked or expired key may not).
    still_usable: Callable[[Principal], bool] = lambda principal: True

    def admin_service(self) -> AdminService:
        if self.admin is None:
            raise ConfigError("this shape of the service has no credential administration")
        return self.admin

    def exposition(self) -> tuple[bytes, str]:
        """The metrics and their media type."""
        if self.metrics is None:
            raise ConfigError("this shape of the service keeps no metrics")
        return self.metrics()


@dataclass(slots=True, kw_only=True)
class Call:
    """One request as an operation sees it; ``body`` reads it as sent, within the size limits. Not frozen
    (one is made per request, and a frozen dataclass sets each field through ``object.__setattr__``);
    operations only read it."""

    principal: Principal
    path_params: Mapping[str, str]
    query: Sequence[tuple[str, str]]
    headers: Mapping[str, str]
    source: str
    body: Callable[[], Awaitable[bytes]]
    services: Services


Operation = Callable[[Call], Awaitable[Answer]]


@dataclass(frozen=True, slots=True, kw_only=True)
class Endpoint:
    """One route, declared once. ``function`` names the Lambda function that serves it. The OpenAPI fields
    describe it: ``query`` is the Struct of its query parameters, ``answers`` its successful responses,
    ``problems`` the statuses of its own failures. The 401/403/429/431 every route can answer, the path
    parameters and the ``security`` of public routes are derived (``logsvc.api.openapi``)."""

    path: str
    method: str
    name: str
    permission: Permission
    operation: Operation
    function: LambdaFunction | None = None
    summary: str = ""
    query: type[msgspec.Struct] | None = None
    path_schemas: Mapping[str, dict[str, Any]] = field(default_factory=dict)
    request_body: dict[str, Any] | None = None
    answers: Mapping[str, dict[str, Any]] = field(default_factory=dict)
    problems: tuple[int, ...] = ()
    # Where a browser that navigates here is sent (303), before any credential is asked for: the page for
    # people at an address made for programs. Only the HTTP server has pages; behind API Gateway a browser
    # never reaches a function (IAM authorization refuses it first).
    browsers: str | None = None

    @property
    def target(self) -> str:
        return f"{self.method} {self.path}"


def browser_redirect(endpoint: Endpoint, headers: Mapping[str, str]) -> Answer | None:
    """The 303 to ``endpoint.browsers`` for a request that asks for HTML by name (a browser navigating);
    None for any other, which the endpoint answers as declared."""
    if endpoint.browsers is None or not accepts_html(headers):
        return None
    return Answer(303, b"", "text/plain", {"Location": endpoint.browsers})


def authorize(
    endpoint: Endpoint, principal: Principal | None, refusals: RefusalAudit, *, source: str
) -> Principal:
    """The caller, if the endpoint's permission admits it; 401 without credentials, 403 (audited) without
    the permission. Who the caller is was established before (middleware, or the Lambda's identity)."""
    if endpoint.permission is Permission.PUBLIC:
        return principal or _NOBODY
    if principal is None:
        raise MissingCredentials()
    try:
        principal.require(endpoint.permission)
    except Forbidden as exc:
        refusals.refused(exc, principal=principal, target=endpoint.target, source=source)
        raise
    return principal


async def respond(endpoint: Endpoint, call: Call, refusals: RefusalAudit) -> Answer:
    """The endpoint's answer to ``call``. A 403 from the operation itself (a service outside the caller's
    scope) is audited as the permission guard's are."""
    try:
        answer = await endpoint.operation(call)
    except Forbidden as exc:
        refusals.refused(exc, principal=call.principal, target=endpoint.target, source=call.source)
        raise
    if endpoint.permission is Permission.ADMIN:
        # New secrets, the credential list, the audit trail: no cache on the way may keep them.
        answer.headers["Cache-Control"] = "no-store"
    return answer


@functools.cache
def _template_pattern(template: str) -> re.Pattern[str]:
    """``/logs/{log_id}`` as a regular expression with one named group per path parameter."""
    return re.compile(re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template)))


def path_parameters(template: str) -> list[str]:
    return list(_template_pattern(template).groupindex)


def match(
    endpoints: Sequence[Endpoint],
    method: str,
    path: str,
    *,
    route: str | None = None,
    route_params: Mapping[str, str] | None = None,
) -> tuple[Endpoint, dict[str, str]]:
    """The endpoint for a request, with its path parameters; 404 or 405 as the server answers them.

    ``route`` is the template a router already matched (API Gateway names it and decodes its parameters,
    ``route_params``); without one (a function URL, a catch-all route) the path is matched against each
    endpoint's template.
    """
    by_template = route in {endpoint.path for endpoint in endpoints}
    stripped = path.rstrip("/") or "/"
    allowed: list[str] = []
    for endpoint in endpoints:
        pattern = _template_pattern(endpoint.path)
        if by_template:
            if endpoint.path != route:
                continue
            params = dict(route_params or {})
        else:
            found = pattern.fullmatch(stripped)
            if found is None:
                continue
            params = {name: unquote(value) for name, value in found.groupdict().items()}
        if not params.keys() >= pattern.groupindex.keys():
            continue  # a route template without its parameter: nothing to answer with
        if endpoint.method == method:
            return endpoint, params
        allowed.append(endpoint.method)
    where = f"{method} {path}"
    if allowed:
        raise MethodNotAllowed(f"{where}: Method Not Allowed", allow=sorted(set(allowed)))
    raise RouteNotFound(f"{where}: Not Found")
