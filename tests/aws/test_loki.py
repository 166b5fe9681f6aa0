"""The ingest function serves Loki's push: API Gateway passes the snappy-compressed protobuf body
base64-encoded (the REST API lists application/x-protobuf as binary), as it does OTLP's, and a JSON push as
text; the answer is Loki's 204 without a body."""

from __future__ import annotations

import time
import uuid
from typing import Any

import msgspec
import pytest

from logsvc.aws.handlers import LambdaApp
from tests.aws.helpers import CHECKOUT_WRITER, FORMATS, body_of, ingest_event, read_event, set_path, with_body
from tests.loki_push import push_body

PUSH = "/loki/api/v1/push"


def _loki_event(
    fmt: str, body: bytes, *, caller: str | None = None, as_json: bool = False, **headers: str
) -> dict[str, Any]:
    event = ingest_event(fmt, b"", caller=caller) if caller else ingest_event(fmt, b"")
    media_type = "application/json" if as_json else "application/x-protobuf"
    event = with_body(event, body, base64_encoded=not as_json, headers={"Content-Type": media_type} | headers)
    set_path(event, PUSH, PUSH, None)
    return event


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_protobuf_push_in_base64_and_a_json_push_are_stored(lambda_app: LambdaApp, fmt: str) -> None:
    service = f"loki-{uuid.uuid4().hex[:8]}"
    ns = time.time_ns()
    protobuf = push_body([(f'{{app="{service}", env="prod"}}', [(ns, "level=warn disk 91% full")])])
    as_json = msgspec.json.encode(
        {
            "streams": [
                {"stream": {"app": service}, "values": [[str(ns + 1_000_000), "rotated", {"file": "a.log"}]]}
            ]
        }
    )
    for body, json_body in ((protobuf, False), (as_json, True), (protobuf, False)):
        response = lambda_app.ingest(_loki_event(fmt, body, as_json=json_body), None)
        assert response["statusCode"] == 204, response
        assert response["body"] == ""
        assert "content-type" not in response["headers"]

    page = lambda_app.read(read_event(fmt, "/logs/recent", f"service_name={service}"), None)
    logs = body_of(page)["logs"]
    # The protobuf push sent twice is one entry (its id comes from the entry).
    assert [(e["level"], e["message"], e["metadata"]) for e in logs] == [
        ("INFO", "rotated", {"structured_metadata": {"file": "a.log"}}),
        ("WARN", "level=warn disk 91% full", {"labels": {"env": "prod"}}),
    ]


@pytest.mark.parametrize("fmt", FORMATS)
def test_refusals_are_answered_as_on_the_server(lambda_app: LambdaApp, fmt: str) -> None:
    ns = time.time_ns()
    mixed = push_body([('{app="checkout-api"}', [(ns, "mine")]), ('{app="payments"}', [(ns, "theirs")])])
    response = lambda_app.ingest(_loki_event(fmt, mixed, caller=CHECKOUT_WRITER), None)
    assert response["statusCode"] == 403, response
    assert "payments" in body_of(response)["detail"]

    partly = push_body([('{app="checkout-api"}', [(ns, "kept"), (ns, " ")])])
    response = lambda_app.ingest(_loki_event(fmt, partly, caller=CHECKOUT_WRITER), None)
    assert response["statusCode"] == 400, response
    assert body_of(response)["errors"] == [
        {"field": "streams[0].entries[1]", "message": "message must not be blank"}
    ]
    bomb = bytes([0x80, 0x80, 0x80, 0x80, 0x04]) + b"\x00" * 10
    assert lambda_app.ingest(_loki_event(fmt, bomb), None)["statusCode"] == 413
