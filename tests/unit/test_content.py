"""Media types and content encodings of request bodies, as the server and the Lambda handlers read them."""

from __future__ import annotations

import gzip

import pytest

from logsvc.content import accepts_html, check_size, decode_content, is_ndjson
from logsvc.errors import PayloadTooLarge, UnsupportedMediaType, ValidationFailed

LIMIT = 4096
PAYLOAD = b'{"message": "hello"}'


@pytest.mark.parametrize(
    ("content_type", "ndjson"),
    [
        (None, False),
        ("", False),
        ("application/json", False),
        ("application/json; charset=utf-8", False),
        ("Application/JSON", False),
        ("text/json", False),
        ("application/vnd.api+json", False),
        ("application/x-ndjson", True),
        ("application/ndjson; charset=utf-8", True),
        ("application/jsonl", True),
        ("application/x-jsonlines", True),
    ],
)
def test_json_and_ndjson_media_types(content_type: str | None, ndjson: bool) -> None:
    headers = {} if content_type is None else {"content-type": content_type}
    assert is_ndjson(headers) is ndjson


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
def test_other_media_types_are_415_naming_the_type(content_type: str) -> None:
    with pytest.raises(UnsupportedMediaType, match=f"Content-Type '{content_type}' is not accepted"):
        is_ndjson({"content-type": content_type})


@pytest.mark.parametrize("encoding", [None, "identity", "gzip", "x-gzip", " GZIP "])
def test_identity_and_gzip_give_the_payload(encoding: str | None) -> None:
    body = gzip.compress(PAYLOAD) if encoding and "gzip" in encoding.lower() else PAYLOAD
    headers = {} if encoding is None else {"content-encoding": encoding}
    assert decode_content(body, headers, max_decompressed_bytes=LIMIT) == PAYLOAD


def test_gzip_up_to_the_limit_inflates_and_past_it_is_413() -> None:
    headers = {"content-encoding": "gzip"}
    assert len(decode_content(gzip.compress(b"x" * LIMIT), headers, max_decompressed_bytes=LIMIT)) == LIMIT
    with pytest.raises(PayloadTooLarge, match=f"inflates to more than the limit of {LIMIT} bytes"):
        decode_content(gzip.compress(b"x" * (LIMIT + 1)), headers, max_decompressed_bytes=LIMIT)


def test_every_gzip_member_is_inflated_as_gunzip_reads_them() -> None:
    members = gzip.compress(b"[1,") + gzip.compress(b"2,") + gzip.compress(b"3]") + b"\0" * 8
    assert decode_content(members, {"content-encoding": "gzip"}, max_decompressed_bytes=LIMIT) == b"[1,2,3]"
    assert gzip.decompress(members) == b"[1,2,3]"  # the reference


def test_the_limit_counts_every_gzip_member() -> None:
    half = gzip.compress(b"x" * (LIMIT // 2))
    headers = {"content-encoding": "gzip"}
    assert len(decode_content(half + half, headers, max_decompressed_bytes=LIMIT)) == LIMIT
    with pytest.raises(PayloadTooLarge, match=f"inflates to more than the limit of {LIMIT} bytes"):
        decode_content(half + half + gzip.compress(b"x"), headers, max_decompressed_bytes=LIMIT)


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"not gzip at all", "is not valid gzip data"),
        (gzip.compress(PAYLOAD, mtime=0)[:-8], "is truncated gzip data"),
        (gzip.compress(PAYLOAD, mtime=0) + b"GARBAGE", "has bytes after its gzip data"),
        (gzip.compress(PAYLOAD, mtime=0) * 2 + b"\0\1", "has bytes after its gzip data"),
        (gzip.compress(PAYLOAD, mtime=0) + gzip.compress(PAYLOAD, mtime=0)[:-8], "is truncated gzip data"),
    ],
    ids=["not gzip", "truncated", "garbage after", "garbage after padding", "second member truncated"],
)
def test_broken_gzip_is_400_naming_the_body(body: bytes, problem: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        decode_content(body, {"content-encoding": "gzip"}, max_decompressed_bytes=LIMIT)
    assert [(e.field, e.message) for e in caught.value.errors] == [("body", problem)]


@pytest.mark.parametrize("encoding", ["br", "deflate"])
def test_other_encodings_are_415(encoding: str) -> None:
    with pytest.raises(UnsupportedMediaType, match=f"Content-Encoding '{encoding}' is not accepted"):
        decode_content(PAYLOAD, {"content-encoding": encoding}, max_decompressed_bytes=LIMIT)


def test_size_as_sent() -> None:
    check_size(b"x" * LIMIT, max_bytes=LIMIT)
    with pytest.raises(PayloadTooLarge, match=f"the body is {LIMIT + 1} bytes; the limit is {LIMIT}"):
        check_size(b"x" * (LIMIT + 1), max_bytes=LIMIT)


@pytest.mark.parametrize(
    ("accept", "html"),
    [
        # What browsers send when they navigate (Chromium, Firefox, Safari).
        (
            "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,"
            "*/*;q=0.8,application/signed-exchange;v=b3;q=0.7",
            True,
        ),
        ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", True),
        ("TEXT/HTML", True),
        ("application/json, text/html;level=1;q=0.5", True),
        # What curl, the shippers and Elasticsearch's clients send.
        (None, False),
        ("", False),
        ("*/*", False),
        ("application/json", False),
        ("application/vnd.elasticsearch+json; compatible-with=8", False),
        ("text/*", False),
        ("text/html;q=0", False),
        ("text/html; q=0.000", False),
        ("text/html;q=oops", False),
        ("text/htmlx", False),
    ],
)
def test_only_a_client_asking_for_html_by_name_accepts_it(accept: str | None, html: bool) -> None:
    assert accepts_html({} if accept is None else {"accept": accept}) is html
