"""Small ASGI helpers shared by the middlewares."""

from __future__ import annotations

from starlette.types import Message, Scope, Send

__all__ = ["StatusRecorder", "request_headers"]

_HEADERS_KEY = "logsvc.headers"


def request_headers(scope: Scope) -> dict[str, str]:
    """The request's headers by (lower-case) name, as the Lambda shape gives them too; of a repeated
    header the first, as Starlette's ``Headers.get`` answers. Made once per request."""
    headers: dict[str, str] | None = scope.get(_HEADERS_KEY)
    if headers is None:
        headers = {
            name.decode("latin-1"): value.decode("latin-1") for name, value in reversed(scope["headers"])
        }
        scope[_HEADERS_KEY] = headers
    return headers


class StatusRecorder:
    """A ``send`` that passes every message on and remembers the response status (500 until one is sent)."""

    __slots__ = ("_send", "started", "status")

    def __init__(self, send: Send) -> None:
        self._send = send
        self.status = 500
        self.started = False

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.started = True
        await self._send(message)
