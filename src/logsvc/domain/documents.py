"""A request body as the list of entry documents it holds: JSON (one entry, an array, or ``{"logs": [...]}``)
or NDJSON, decoded untyped so that validation can name every bad entry and field at once (a typed decoder
stops at the first error), and refused before decoding when it would cost more than a batch may."""

from __future__ import annotations

import itertools
import re
from typing import Any

import msgspec

from logsvc.domain.entries import VALUES_PER_ENTRY, Limits
from logsvc.errors import FieldError, PayloadTooLarge, ValidationFailed

__all__ = ["check_json_values", "decode_documents", "ndjson_lines"]

# A string, or an unclosed one running to the end: without that alternative an unclosed string makes the
# engine retry from every quote, quadratic in the body (a 9 MB body of `"\",` would take hours).
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\Z)', re.DOTALL)
# A non-blank NDJSON line, from its first non-blank byte (bytes.splitlines breaks at \r and \n alone).
_NDJSON_LINE = re.compile(rb"\S[^\r\n]*")


def decode_documents(
    body: bytes, *, ndjson: bool, limits: Limits, logs_wrapper: bool = True
) -> tuple[list[Any], bool]:
    """The entries of a request body and whether it was a single object (rather than a batch).

    Without ``logs_wrapper`` (a mapped body) an object is one document even with a ``logs`` field: a
    collector's record may well have one.

    A body holding more entries or JSON values than a batch may is refused before it is decoded, at the
    cost of a few scans of its bytes: decoding first would build every object of a gzip bomb.
    """
    if ndjson:
        docs = _decode_lines(body, limits)
        if not docs:
            raise ValidationFailed([FieldError("body", "contains no entries")])
        return docs, False
    _check_values(body, limits, documents=1)
    doc = _decode_json(body, "is")
    if logs_wrapper and isinstance(doc, dict) and "logs" in doc:
        if len(doc) != 1:
            extra = ", ".join(sorted(k for k in doc if k != "logs"))
            raise ValidationFailed(
                [FieldError("body", f'a {{"logs": [...]}} batch has no other fields; got {extra}')]
            )
        doc = doc["logs"]
        if not isinstance(doc, list):
            raise ValidationFailed([FieldError("logs", "must be an array of entries")])
    if isinstance(doc, list):
        if not doc:
            raise ValidationFailed([FieldError("body", "contains no entries")])
        return doc, False
    if isinstance(doc, dict):
        return [doc], True
    raise ValidationFailed(
        [FieldError("body", 'must be an entry object, an array of entries or {"logs": [...]}')]
    )


def ndjson_lines(body: bytes, *, max_lines: int) -> list[re.Match[bytes]] | None:
    """The non-blank lines of an NDJSON body, or None when it has more than ``max_lines``: found without
    decoding any, and without scanning past the first line too many."""
    lines = list(itertools.islice(_NDJSON_LINE.finditer(body), max_lines + 1))
    return None if len(lines) > max_lines else lines


def _decode_lines(body: bytes, limits: Limits) -> list[Any]:
    lines = ndjson_lines(body, max_lines=limits.max_batch_entries)
    if lines is None:
        raise ValidationFailed(
            [FieldError("body", f"a batch holds at most {limits.max_batch_entries} entries; got more")]
        )
    _check_values(body, limits, documents=len(lines))
    docs = []
    for line in lines:
        try:
            docs.append(msgspec.json.decode(line.group()))
        except (msgspec.DecodeError, RecursionError) as exc:
            # Numbered only now: counting the lines before each one would scan the body once per line.
            raise _invalid_json(f"line {_line_number(body, line.start())} is", exc) from None
    return docs


def _line_number(body: bytes, offset: int) -> int:
    """The line, counted from 1 as bytes.splitlines counts them (\r\n, \r or \n ends one), of an offset."""
    crlf = body.count(b"\r\n", 0, offset)
    return 1 + body.count(b"\n", 0, offset) + body.count(b"\r", 0, offset) - crlf


def check_json_values(body: bytes, limits: Limits, *, documents: int = 1) -> None:
    """413 for a JSON body (of ``documents`` documents) of more values than limits.max_body_values, before
    decoding it."""
    _check_values(body, limits, documents=documents)


def _check_values(body: bytes, limits: Limits, *, documents: int) -> None:
    """413 for a body of more JSON values than limits.max_body_values, counted without decoding it."""
    budget = limits.max_body_values - documents
    # Commas and brackets inside strings are not structure; without the strings the count is exact.
    if _values_at_most(body) <= budget or _values_at_most(_JSON_STRING.sub(b"", body)) <= budget:
        return
    raise PayloadTooLarge(
        f"the body holds more than {limits.max_body_values} JSON values; a batch holds at most "
        f"{limits.max_batch_entries} entries of about {VALUES_PER_ENTRY} values each: send smaller batches"
    )


def _values_at_most(data: bytes) -> int:
    # Each value but the first of an array or object follows a comma: with one first value per document,
    # this bounds the values (and, as many, the object keys) that decoding builds.
    return data.count(b",") + data.count(b"[") + data.count(b"{")


def _decode_json(data: bytes, subject: str) -> Any:
    try:
        return msgspec.json.decode(data)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise _invalid_json(subject, exc) from None


def _invalid_json(subject: str, exc: Exception) -> ValidationFailed:
    problem = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
    return ValidationFailed([FieldError("body", f"{subject} not valid JSON: {problem}")])
