"""A request body's media type and content encoding, for the server and the Lambda handlers alike (no
Starlette here: the Lambda package does not carry it). Header names are looked up in lower case."""

from __future__ import annotations

import zlib
from collections.abc import Mapping

from logsvc.errors import FieldError, PayloadTooLarge, UnsupportedMediaType, ValidationFailed

__all__ = [
    "GZIP_MAGIC",
    "accepts_html",
    "check_json",
    "check_size",
    "decode_content",
    "decode_snappy_body",
    "is_encoded",
    "is_loki_json",
    "is_ndjson",
    "is_otlp_json",
]

GZIP_MAGIC = b"\x1f\x8b"

_JSON_TYPES = frozenset({"application/json", "text/json", ""})
_NDJSON_TYPES = frozenset(
    {"application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonlines"}
)


def is_ndjson(headers: Mapping[str, str]) -> bool:
    """Whether the body is newline-delimited JSON; 415 for anything that is neither JSON nor NDJSON."""
    media_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type in _NDJSON_TYPES:
        return True
    if media_type in _JSON_TYPES or media_type.endswith("+json"):
        return False
    raise UnsupportedMediaType(
        f"Content-Type {media_type!r} is not accepted; send application/json or application/x-ndjson"
    )


def check_json(headers: Mapping[str, str]) -> None:
    """415 unless the body is JSON (or says nothing of its type), for a route that takes nothing else."""
    media_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type not in _JSON_TYPES and not media_type.endswith("+json"):
        raise UnsupportedMediaType(f"Content-Type {media_type!r} is not accepted; send application/json")


def is_otlp_json(headers: Mapping[str, str]) -> bool:
    """Whether an OTLP body is in OTLP's JSON mapping rather than protobuf; 415 for anything else."""
    media_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type in ("application/x-protobuf", "application/protobuf"):
        return False
    if media_type == "application/json":
        return True
    raise UnsupportedMediaType(
        f"Content-Type {media_type!r} is not accepted; send application/x-protobuf or application/json"
    )


def is_loki_json(headers: Mapping[str, str]) -> bool:
    """Whether a Loki push is JSON rather than snappy-compressed protobuf, which Loki takes by default (also
    without a Content-Type); 415 for anything else."""
    media_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type in ("application/x-protobuf", ""):
        return False
    if media_type == "application/json":
        return True
    raise UnsupportedMediaType(
        f"Content-Type {media_type!r} is not accepted; "
        "send application/x-protobuf (snappy-compressed) or application/json"
    )


def accepts_html(headers: Mapping[str, str]) -> bool:
    """Whether the client asks for HTML by name (a browser navigating), not merely ``*/*`` as curl and the
    shippers do: ``text/html`` in its Accept header with a quality above 0."""
    for media_range in headers.get("accept", "").split(","):
        media_type, *params = (part.strip().lower() for part in media_range.split(";"))
        if media_type != "text/html":
            continue
        quality = next((value for name, _, value in (p.partition("=") for p in params) if name == "q"), "1")
        try:
            return float(quality) > 0
        except ValueError:
            return False
    return False


def check_size(body: bytes, *, max_bytes: int) -> None:
    """413 for a body over the limit as sent (API Gateway and function URLs also have limits of their own)."""
    if len(body) > max_bytes:
        raise PayloadTooLarge(f"the body is {len(body)} bytes; the limit is {max_bytes}")


def is_encoded(headers: Mapping[str, str]) -> bool:
    """Whether the body has a Content-Encoding other than identity (what it inflates to is not known yet)."""
    return headers.get("content-encoding", "identity").strip().lower() not in ("identity", "")


def decode_content(body: bytes, headers: Mapping[str, str], *, max_decompressed_bytes: int) -> bytes:
    """The body gunzipped if so encoded; 413 if it inflates past the limit."""
    encoding = headers.get("content-encoding", "identity").strip().lower()
    if encoding in ("gzip", "x-gzip"):
        return _gunzip(body, max_decompressed_bytes)
    if encoding != "identity":
        raise UnsupportedMediaType(f"Content-Encoding {encoding!r} is not accepted; send gzip or identity")
    return body


def decode_snappy_body(body: bytes, headers: Mapping[str, str], *, max_decompressed_bytes: int) -> bytes:
    """A body compressed with snappy's block format (Loki's protobuf push, as Promtail, Alloy and the Docker
    driver send it), after any Content-Encoding; ``Content-Encoding: snappy`` only says so again. 413 when
    snappy's header announces more than the limit, before anything is inflated; 400 for what is not snappy."""
    if headers.get("content-encoding", "").strip().lower() != "snappy":
        body = decode_content(body, headers, max_decompressed_bytes=max_decompressed_bytes)
    from cramjam import DecompressionError, snappy  # noqa: PLC0415 (only Loki's pushes need it)

    try:
        # The block format starts with the inflated length: what a snappy bomb would take is known first.
        length = snappy.decompress_raw_len(body)
        if length > max_decompressed_bytes:
            raise PayloadTooLarge(
                f"the body inflates to {length} bytes, more than the limit of {max_decompressed_bytes}"
            )
        inflated = bytearray(length)
        snappy.decompress_raw_into(body, inflated)
    except DecompressionError as exc:
        raise ValidationFailed([FieldError("body", f"is not snappy-compressed data: {exc}")]) from None
    return bytes(inflated)


def _gunzip(body: bytes, limit: int) -> bytes:
    """Every member of the gzip data, as gunzip reads it (RFC 1952 allows several, one after the other; a
    sender may append to a file or compress in parts): reading only the first would acknowledge entries it
    never stored. Zero bytes after the last member are padding, as gunzip takes them; anything else is 400."""
    members: list[bytes] = []
    size = 0
    rest = body
    while True:
        inflater = zlib.decompressobj(wbits=zlib.MAX_WBITS | 16)
        try:
            # Inflating at most what is left of the limit, plus one byte, bounds what a gzip bomb can take.
            data = inflater.decompress(rest, limit - size + 1)
        except zlib.error:
            problem = "is not valid gzip data" if not members else "has bytes after its gzip data"
            raise ValidationFailed([FieldError("body", problem)]) from None
        size += len(data)
        if size > limit:
            raise PayloadTooLarge(f"the body inflates to more than the limit of {limit} bytes")
        if not inflater.eof:
            raise ValidationFailed([FieldError("body", "is truncated gzip data")])
        members.append(data)
        rest = inflater.unused_data
        if not rest.strip(b"\0"):
            return members[0] if len(members) == 1 else b"".join(members)
