"""The HTTP server's routes, derived from the route table (``logsvc.endpoints``).

Each Starlette route turns its request into a ``Call``, lets ``authorize`` enforce the endpoint's permission
and answers with what the endpoint's operation gives. No business rules here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from logsvc.api.body import receive_body
from logsvc.api.security import BODY_KEY, PRINCIPAL_KEY, client_address
from logsvc.auth.policy import Principal
from logsvc.routing import Call, Endpoint, Stream, authorize, browser_redirect, respond
from logsvc.settings import Settings

__all__ = ["starlette_routes"]


def starlette_routes(endpoints: Sequence[Endpoint]) -> list[BaseRoute]:
    return [
        Route(endpoint.path, _endpoint(endpoint), methods=[endpoint.method], name=endpoint.name)
        for endpoint in endpoints
    ]


def _endpoint(endpoint: Endpoint) -> Callable[[Request], Awaitable[Response]]:
    async def serve(request: Request) -> Response:
        redirect = browser_redirect(endpoint, request.headers)
        if redirect is not None:
            return Response(redirect.body, redirect.status, redirect.headers, redirect.media_type)
        source = client_address(request.scope)
        principal: Principal | None = request.scope.get(PRINCIPAL_KEY)
        principal = authorize(endpoint, principal, request.app.state.refusals, source=source)
        call = Call(
            principal=principal,
            path_params=request.path_params,
            query=request.query_params.multi_items(),
            headers=request.headers,
            source=source,
            body=lambda: _sent_body(request),
            services=request.app.state.services,
        )
        answer = await respond(endpoint, call, request.app.state.refusals)
        if answer.stream is not None:
            return _Streamed(answer.stream, answer.status, answer.headers, answer.media_type)
        return Response(answer.body, answer.status, answer.headers, answer.media_type or None)

    return serve


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


async def _sent_body(request: Request) -> bytes:
    """The body as sent: read by the middleware already when a signature covers it, else read here."""
    settings: Settings = request.app.state.settings
    raw: bytes | None = request.scope.get(BODY_KEY)
    if raw is None:
        raw = await receive_body(
            request.receive, request.headers, max_bytes=settings.max_body_bytes, timeout=settings.body_timeout
        )
    return raw
