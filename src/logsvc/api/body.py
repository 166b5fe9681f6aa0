"""Reading a request body within limits: the size as sent, the size after gunzip, and the media type."""

from __future__ import annotations

import asyncio
import zlib

from starlette.datastructures import Headers
from starlette.requests import ClientDisconnect
from starlette.types import Receive

from logsvc.errors import FieldError, PayloadTooLarge, RequestTimeout, UnsupportedMediaType, ValidationFailed

__all__ = ["decode_content", "is_ndjson", "receive_body"]

_JSON_TYPES = frozenset({"application/json", "text/json", ""})
_NDJSON_TYPES = frozenset(
    {"application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonlines"}
)


def is_ndjson(headers: Headers) -> bool:
    """Whether the body is newline-delimited JSON; 415 for anything that is neither JSON nor NDJSON."""
    media_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type in _NDJSON_TYPES:
        return True
    if media_type in _JSON_TYPES or media_type.endswith("+json"):
        return False
    raise UnsupportedMediaType(
        f"Content-Type {media_type!r} is not accepted; send application/json or application/x-ndjson"
    )


async def receive_body(receive: Receive, headers: Headers, *, max_bytes: int, timeout: float) -> bytes:
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


def decode_content(body: bytes, headers: Headers, *, max_decompressed_bytes: int) -> bytes:
    """The body gunzipped if so encoded; 413 if it inflates past the limit."""
    encoding = headers.get("content-encoding", "identity").strip().lower()
    if encoding in ("gzip", "x-gzip"):
        return _gunzip(body, max_decompressed_bytes)
    if encoding != "identity":
        raise UnsupportedMediaType(f"Content-Encoding {encoding!r} is not accepted; send gzip or identity")
    return body


def _gunzip(body: bytes, limit: int) -> bytes:
    inflater = zlib.decompressobj(wbits=zlib.MAX_WBITS | 16)
    try:
        # Inflating at most limit + 1 bytes bounds the memory a gzip bomb can take.
        data = inflater.decompress(body, limit + 1)
    except zlib.error:
        raise ValidationFailed([FieldError("body", "is not valid gzip data")]) from None
    if len(data) > limit:
        raise PayloadTooLarge(f"the body inflates to more than the limit of {limit} bytes")
    if not inflater.eof:
        raise ValidationFailed([FieldError("body", "is truncated gzip data")])
    return data
