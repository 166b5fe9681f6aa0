"""Small ASGI helpers shared by the middlewares."""

from __future__ import annotations

from starlette.types import Message, Send

__all__ = ["StatusRecorder"]


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
