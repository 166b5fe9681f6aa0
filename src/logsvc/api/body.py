"""Reading a request body within its size limit and time (media type and encoding: ``logsvc.content``)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping

from starlette.requests import ClientDisconnect
from starlette.types import Receive

from logsvc.errors import FieldError, PayloadTooLarge, RequestTimeout, ValidationFailed

__all__ = ["receive_body"]


def receive_body(
    receive: Receive,
    headers: Mapping[str, str],
    *,
    max_bytes: int,
    timeout: float,
    arrived: bool = False,
) -> Awaitable[bytes]:
    """The body as sent, to await; 413 as soon as it passes the limit (before reading the rest; a declared
    length over it is refused when called), 408 if too slow. ``arrived``: the connection has the whole
    body already (``BODY_ARRIVED``), so no read can wait and no timer is set, which a small request, whose
    body comes with its head, is spared (and the frame of a coroutine around the read)."""
    length = headers.get("content-length")
    if length is not None:
        if not length.isdigit():
            raise ValidationFailed([FieldError("Content-Length", "must be a whole number")])
        if int(length) > max_bytes:
            raise PayloadTooLarge(f"the body is {length} bytes; the limit is {max_bytes}")
    if arrived:
        return _read(receive, max_bytes)
    return _read_in_time(receive, max_bytes, timeout)


async def _read_in_time(receive: Receive, max_bytes: int, timeout: float) -> bytes:
    try:
        async with asyncio.timeout(timeout):
            return await _read(receive, max_bytes)
    except TimeoutError:
        raise RequestTimeout(f"the body did not arrive within {timeout:g} seconds") from None


async def _read(receive: Receive, max_bytes: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect
        chunk: bytes = message.get("body", b"")
        more = message.get("more_body", False)
        size += len(chunk)
        if size > max_bytes:
            raise PayloadTooLarge(f"the body is over the limit of {max_bytes} bytes")
        chunks.append(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)
