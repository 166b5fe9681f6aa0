"""``logsvc.aws.body`` restates two rules of ``logsvc.api.body`` without Starlette; both must agree."""

from __future__ import annotations

import gzip

import pytest
from starlette.datastructures import Headers

from logsvc.api import body as server
from logsvc.aws import body as lambda_body
from logsvc.errors import LogServiceError

LIMIT = 4096
PAYLOAD = b'{"message": "hello"}'


def _outcome(call: object) -> object:
    """What a call gives: its value, or the error it raises as (class, detail, field errors)."""
    assert callable(call)
    try:
        return call()
    except LogServiceError as exc:
        return type(exc), exc.detail, getattr(exc, "errors", None)


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON",
        "text/json",
        "application/vnd.api+json",
        "application/x-ndjson",
        "application/ndjson; charset=utf-8",
        "application/jsonl",
        "application/x-jsonlines",
        "text/plain",
        "application/x-www-form-urlencoded",
        "",
    ],
)
def test_media_types(content_type: str | None) -> None:
    headers = {} if content_type is None else {"content-type": content_type}
    assert _outcome(lambda: lambda_body.is_ndjson(headers)) == _outcome(
        lambda: server.is_ndjson(Headers(headers))
    )


@pytest.mark.parametrize(
    ("body", "encoding"),
    [
        (PAYLOAD, None),
        (PAYLOAD, "identity"),
        (gzip.compress(PAYLOAD), "gzip"),
        (gzip.compress(PAYLOAD), "x-gzip"),
        (gzip.compress(PAYLOAD), " GZIP "),
        (gzip.compress(PAYLOAD)[:-8], "gzip"),
        (b"not gzip at all", "gzip"),
        (gzip.compress(b"x" * (LIMIT + 1)), "gzip"),
        (gzip.compress(b"x" * LIMIT), "gzip"),
        (PAYLOAD, "br"),
        (PAYLOAD, "deflate"),
    ],
)
def test_content_encodings(body: bytes, encoding: str | None) -> None:
    headers = {} if encoding is None else {"content-encoding": encoding}
    ours = _outcome(lambda: lambda_body.decode_content(body, headers, max_decompressed_bytes=LIMIT))
    theirs = _outcome(lambda: server.decode_content(body, Headers(headers), max_decompressed_bytes=LIMIT))
    assert ours == theirs
