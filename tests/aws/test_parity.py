"""The Lambda handlers answer as the HTTP server does: the same request gets the same bytes back.

The server runs on SQLite (tests/conftest.py's ``client``), the handlers on DynamoDB in moto's server mode (a
stand-in for DynamoDB, not AWS itself); a client cannot tell them apart except by URL.
"""

from __future__ import annotations

import gzip
import json
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from logsvc.aws.handlers import LambdaApp
from tests.aws.helpers import (
    ADMIN_USER,
    FORMATS,
    ingest_event,
    read_event,
    set_method,
    set_path,
)

_WHEN = (datetime.now(UTC) - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%S.123456Z")


def _entry(**fields: object) -> dict[str, object]:
    return {"service_name": "parity", "message": "same", "timestamp": _WHEN, **fields}


INGEST_CASES = [
    pytest.param(b'[{"message": ""}, {"mesage": "x", "level": "LOUD"}]', {}, id="invalid-batch"),
    pytest.param(b'{"message": "x",', {}, id="malformed-json"),
    pytest.param(b"[]", {}, id="empty-batch"),
    pytest.param(b"message=x", {"Content-Type": "text/plain"}, id="media-type"),
    pytest.param(gzip.compress(b'{"message": "x"}')[:-5], {"Content-Encoding": "gzip"}, id="truncated-gzip"),
    pytest.param(b'{"message": "x"}', {"Content-Encoding": "br"}, id="encoding"),
    pytest.param(
        b'{"message": "x"}\n{"message": 5}\n', {"Content-Type": "application/x-ndjson"}, id="ndjson"
    ),
]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(("body", "headers"), INGEST_CASES)
def test_ingest_errors_are_the_same_bytes(
    client: httpx.Client, lambda_app: LambdaApp, fmt: str, body: bytes, headers: dict[str, str]
) -> None:
    served = client.post("/logs", content=body, headers=headers)
    answered = lambda_app.ingest(ingest_event(fmt, body, caller=ADMIN_USER, headers=headers), None)
    assert answered["statusCode"] == served.status_code
    assert answered["headers"]["content-type"] == served.headers["content-type"]
    assert answered["body"].encode() == served.content


@pytest.mark.parametrize("fmt", FORMATS)
def test_created_answers_are_the_same_bytes(client: httpx.Client, lambda_app: LambdaApp, fmt: str) -> None:
    one = json.dumps(_entry(log_id=str(uuid.uuid4()))).encode()
    served = client.post("/logs", content=one)
    answered = lambda_app.ingest(ingest_event(fmt, one, caller=ADMIN_USER), None)
    assert (answered["statusCode"], answered["body"].encode()) == (201, served.content)
    assert answered["headers"]["location"] == served.headers["location"]

    batch = json.dumps([_entry(log_id=str(uuid.uuid4())) for _ in range(3)]).encode()
    served = client.post("/logs", content=batch)
    answered = lambda_app.ingest(ingest_event(fmt, batch, caller=ADMIN_USER), None)
    assert (answered["statusCode"], answered["body"].encode()) == (201, served.content)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    ("path", "query"),
    [
        ("/logs/recent", "limit=0&colour=red"),
        ("/logs", "since=yesterday&level=LOUD"),
        ("/logs/recent", "limit=1&limit=2"),
        ("/logs/recent", "cursor=forged"),
        ("/logs/5b0c3a53-3c2e-4b8f-9f0e-6a1d2c7e4f90", ""),  # fixed: each xdist worker collects the same ids
        ("/logs/not-a-uuid", ""),
    ],
)
def test_read_errors_are_the_same_bytes(
    client: httpx.Client, lambda_app: LambdaApp, fmt: str, path: str, query: str
) -> None:
    served = client.get(f"{path}?{query}")
    answered = lambda_app.read(read_event(fmt, path, query, caller=ADMIN_USER), None)
    assert answered["statusCode"] == served.status_code
    assert answered["body"].encode() == served.content


@pytest.mark.parametrize("fmt", FORMATS)
def test_routing_errors_are_the_same_bytes(client: httpx.Client, lambda_app: LambdaApp, fmt: str) -> None:
    served = client.delete("/logs/recent")
    event = set_method(read_event(fmt, "/logs/recent", caller=ADMIN_USER), "DELETE")
    assert lambda_app.read(event, None)["body"].encode() == served.content

    served = client.get("/nowhere")
    event = read_event(fmt, "/logs/recent", caller=ADMIN_USER)
    set_path(event, "/nowhere", "/nowhere", None)
    answered = lambda_app.read(event, None)
    assert (answered["statusCode"], answered["body"].encode()) == (404, served.content)


@pytest.mark.parametrize("fmt", FORMATS)
def test_entries_and_pages_have_the_same_shape(client: httpx.Client, lambda_app: LambdaApp, fmt: str) -> None:
    log_id = str(uuid.uuid4())
    entry = json.dumps(_entry(log_id=log_id, level="error", metadata={"n": 1.5, "tags": ["a"]})).encode()
    client.post("/logs", content=entry)
    lambda_app.ingest(ingest_event(fmt, entry, caller=ADMIN_USER), None)

    served = client.get(f"/logs/{log_id}").json()
    answered = json.loads(
        lambda_app.read(read_event(fmt, f"/logs/{log_id}", caller=ADMIN_USER), None)["body"]
    )
    assert list(answered) == list(served)
    del answered["received_at"], served["received_at"]
    assert answered == served

    served_page = client.get("/logs/recent?service_name=parity&limit=1").json()
    page = json.loads(
        lambda_app.read(
            read_event(fmt, "/logs/recent", "service_name=parity&limit=1", caller=ADMIN_USER), None
        )["body"]
    )
    assert list(page) == list(served_page) == ["count", "logs", "next_cursor"]
    assert list(page["logs"][0]) == list(served_page["logs"][0])
