"""The HTTP server's routes, derived from the route table (``logsvc.endpoints``).

Each endpoint is served by one ASGI app (``EndpointApp``): it turns the request into a ``Call``, lets
``authorize`` enforce the endpoint's permission and answers with what the endpoint's operation gives. No
business rules here.

``EndpointRouter`` dispatches a request straight to that app from a table made once of the routes (a dict
for fixed paths, the templates in declaration order), and answers the errors of the operations itself; only
what it cannot serve exactly as Starlette's router would (HEAD, a path no endpoint serves, a wrong method, a
root path) goes to the Starlette app behind it. Starlette's stack of exception wrappers and route matching
was a fifth of the time of a small request (decision 26).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Awaitable, Sequence
from typing import Any, TypeVar
from urllib.parse import parse_qsl

from starlette.responses import StreamingResponse
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from logsvc.api._asgi import PARTS_KEY, STATUS_KEY, Parts, recording, request_headers
from logsvc.api.body import receive_body
from logsvc.api.problems import error_response, is_expected
from logsvc.api.security import BODY_KEY, PRINCIPAL_KEY, client_address
from logsvc.auth.policy import Principal
from logsvc.connection import BODY_ARRIVED
from logsvc.routing import Answer, Call, Endpoint, Stream, authorize, browser_redirect, respond

__all__ = ["EndpointApp", "EndpointRouter", "starlette_routes"]

_V = TypeVar("_V")


def starlette_routes(endpoints: Sequence[Endpoint]) -> list[BaseRoute]:
    """One route per path, serving each of its methods: Starlette answers a wrong method from the first
    route whose path matches, so a route per endpoint would list only that endpoint's method in ``Allow``."""
    by_path: dict[str, dict[str, EndpointApp]] = {}
    for endpoint in endpoints:
        by_path.setdefault(endpoint.path, {})[endpoint.method] = EndpointApp(endpoint)
    return [Route(path, _ByMethod(apps), methods=list(apps)) for path, apps in by_path.items()]


class _ByMethod:
    """The endpoints of one path, by method; HEAD is GET's (Starlette's Route allows it with GET)."""

    __slots__ = ("apps",)

    def __init__(self, apps: dict[str, EndpointApp]) -> None:
        self.apps = apps

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        method = scope["method"]
        return self.apps[method if method in self.apps else "GET"](scope, receive, send)


class EndpointApp:
    """One endpoint as an ASGI app; its path parameters are in the scope (``path_params``)."""

    __slots__ = ("endpoint",)

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            answer = await self._answer(scope, receive)
        except Exception as exc:
            response = error_response(exc, scope["method"], scope["path"])
            scope[STATUS_KEY] = response.status_code
            await response(scope, receive, send)
            if not is_expected(exc):
                raise  # as Starlette's error middleware does, so that the server logs it too
            return
        if answer.stream is not None:
            streamed = _Streamed(answer.stream, answer.status, answer.headers, answer.media_type)
            await streamed(scope, receive, recording(scope, send))
            return
        scope[STATUS_KEY] = answer.status
        await send({"type": "http.response.start", "status": answer.status, "headers": _raw_headers(answer)})
        await send({"type": "http.response.body", "body": answer.body})

    def _answer(self, scope: Scope, receive: Receive) -> Awaitable[Answer]:
        """The endpoint's answer, to await; not a coroutine itself (a coroutine's frame a request, and
        nothing to wait for before the operation's): what it refuses is raised when called."""
        endpoint = self.endpoint
        parts: Parts = scope[PARTS_KEY]
        headers = request_headers(scope)
        redirect = browser_redirect(endpoint, headers)
        if redirect is not None:
            return _ready(redirect)
        source = client_address(scope)
        principal: Principal | None = scope.get(PRINCIPAL_KEY)
        principal = authorize(endpoint, principal, parts.refusals, source=source)
        settings = parts.settings
        query: bytes = scope["query_string"]

        def body() -> Awaitable[bytes]:
            """The body as sent: read by the middleware already when a signature covers it, else here."""
            raw: bytes | None = scope.get(BODY_KEY)
            if raw is not None:
                return _ready(raw)
            return receive_body(
                receive,
                headers,
                max_bytes=settings.max_body_bytes,
                timeout=settings.body_timeout,
                arrived=BODY_ARRIVED in scope,
            )

        call = Call(
            principal=principal,
            path_params=scope["path_params"],
            query=parse_qsl(query.decode("latin-1"), keep_blank_values=True) if query else (),
            headers=headers,
            source=source,
            body=body,
            services=parts.services,
        )
        return respond(endpoint, call, parts.refusals)


async def _ready(value: _V) -> _V:
    return value


def _raw_headers(answer: Answer) -> list[tuple[bytes, bytes]]:
    """The answer's headers as Starlette's ``Response`` makes them (names in lower case, Content-Length
    unless the status has no body, the media type as Content-Type), without making a Response."""
    raw = []
    has_length = has_type = False
    for name, value in answer.headers.items():
        lower = _header_name(name)
        if lower == b"content-length":
            has_length = True
        elif lower == b"content-type":
            has_type = True
        raw.append((lower, value.encode("latin-1")))
    status = answer.status
    if not has_length and not (status < 200 or status in (204, 304)):
        raw.append((b"content-length", b"%d" % len(answer.body)))
    if answer.media_type and not has_type:
        raw.append((b"content-type", _content_type(answer.media_type)))
    return raw


@functools.lru_cache(maxsize=64)
def _header_name(name: str) -> bytes:
    """A header's name as sent (the operations name few), encoded once each."""
    return name.lower().encode("latin-1")


@functools.lru_cache(maxsize=64)
def _content_type(media_type: str) -> bytes:
    """A media type as its header value (``charset=utf-8`` added to a text/* one), encoded once each."""
    if media_type.startswith("text/") and "charset=" not in media_type.lower():
        media_type += "; charset=utf-8"
    return media_type.encode("latin-1")


class _Streamed(StreamingResponse):
    """A streamed answer, closed however the response ends: done, the client gone, or cancelled."""

    def __init__(self, stream: Stream, status: int, headers: dict[str, str], media_type: str) -> None:
        super().__init__(stream, status, headers, media_type)
        self._stream = stream

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._stream.close()


_Match = tuple[re.Pattern[str], EndpointApp, Route]


class EndpointRouter:
    """Dispatches each request to its endpoint's app as Starlette's router would, without its wrappers;
    ``fallback`` (the Starlette app of the same routes) answers everything else."""

    def __init__(self, endpoints: Sequence[Endpoint], routes: Sequence[BaseRoute], fallback: ASGIApp) -> None:
        self._fallback = fallback
        self._fixed: dict[tuple[str, str], tuple[EndpointApp, Route]] = {}
        self._templates: dict[str, list[_Match]] = {}
        earlier: list[tuple[str, re.Pattern[str]]] = []
        by_path = {route.path: route for route in routes if isinstance(route, Route)}
        for endpoint in endpoints:
            route = by_path.get(endpoint.path)
            if route is None or not isinstance(route.app, _ByMethod):
                raise TypeError(f"{endpoint.target} is not an endpoint's route")
            method = endpoint.method
            app = route.app.apps[method]
            if route.param_convertors:
                self._templates.setdefault(method, []).append((route.path_regex, app, route))
            elif not any(m == method and pattern.match(route.path) for m, pattern in earlier):
                # A fixed path that an earlier template of the same method also matches is that
                # template's (Starlette takes the first match): it is left to the ordered scan.
                self._fixed.setdefault((method, route.path), (app, route))
            earlier.append((method, route.path_regex))

    def _find(self, method: str, path: str) -> tuple[EndpointApp, Route, dict[str, Any]] | None:
        fixed = self._fixed.get((method, path))
        if fixed is not None:
            return fixed[0], fixed[1], {}
        for pattern, app, route in self._templates.get(method, ()):
            found = pattern.match(path)
            if found is not None:
                return app, route, found.groupdict()
        return None

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        """The app's coroutine to await (this frame is not one: the router only picks it)."""
        found = None
        if scope["type"] == "http" and not scope.get("root_path"):
            found = self._find(scope["method"], scope["path"])
        if found is None:
            return self._fallback(scope, receive, recording(scope, send))
        app, route, params = found
        scope["route"] = route
        scope["path_params"] = params
        return app(scope, receive, send)
