"""Reading a request body within its size limit and time (media type and encoding: ``logsvc.content``)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from starlette.requests import ClientDisconnect
from starlette.types import Receive

from logsvc.errors import FieldError, PayloadTooLarge, RequestTimeout, ValidationFailed

__all__ = ["receive_body"]


async def receive_body(
    receive: Receive, headers: Mapping[str, str], *, max_bytes: int, timeout: float
) -> bytes:
    """The body as sent; 413 as soon as it passes the limit (before reading the rest), 408 if too slow."""
    length = headers.get("content-length")
    if length is not None:
        if not length.isdigit():
            raise ValidationFailed([FieldError("Content-Length", "must be a whole number")])
        if int(length) > max_bytes:
            raise PayloadTooLarge(f"the body is {length} bytes; the limit is {max_bytes}")
    chunks: list[bytes] = []
    size = 0
    more = True
    try:
        async with asyncio.timeout(timeout):
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
    except TimeoutError:
        raise RequestTimeout(f"the body did not arrive within {timeout:g} seconds") from None
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)
