"""The ingest function serves OTLP/HTTP logs: API Gateway passes the protobuf body base64-encoded (the REST
API lists application/x-protobuf as binary) and takes the protobuf answer so."""

from __future__ import annotations

import base64
import gzip
import time
import uuid
from typing import Any

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs

from logsvc.aws.handlers import LambdaApp
from tests.aws.helpers import CHECKOUT_WRITER, FORMATS, body_of, ingest_event, read_event, set_path, with_body


def _otlp_event(fmt: str, body: bytes, caller: str | None = None, **headers: str) -> dict[str, Any]:
    event = ingest_event(fmt, b"", caller=caller) if caller else ingest_event(fmt, b"")
    event = with_body(
        event, body, base64_encoded=True, headers={"Content-Type": "application/x-protobuf"} | headers
    )
    set_path(event, "/v1/logs", "/v1/logs", None)
    return event


def _request(service: str, *messages: str) -> bytes:
    resource_logs = ResourceLogs(
        scope_logs=[
            ScopeLogs(
                log_records=[
                    LogRecord(
                        time_unix_nano=time.time_ns(), severity_number=13, body=AnyValue(string_value=m)
                    )
                    for m in messages
                ]
            )
        ]
    )
    resource_logs.resource.attributes.append(
        KeyValue(key="service.name", value=AnyValue(string_value=service))
    )
    return ExportLogsServiceRequest(resource_logs=[resource_logs]).SerializeToString()


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_protobuf_request_in_base64_is_stored_and_answered_in_protobuf(
    lambda_app: LambdaApp, fmt: str
) -> None:
    service = f"otlp-{uuid.uuid4().hex[:8]}"
    valid = _request(service, "disk 91% full")
    invalid = _request("not a service!", "refused")
    for body in (valid + invalid, gzip.compress(valid)):
        headers = {"Content-Encoding": "gzip"} if body[:2] == b"\x1f\x8b" else {}
        response = lambda_app.ingest(_otlp_event(fmt, body, **headers), None)
        assert response["statusCode"] == 200, response
        assert response["headers"]["content-type"] == "application/x-protobuf"
        assert response["isBase64Encoded"] is True
        answer = ExportLogsServiceResponse.FromString(base64.b64decode(response["body"]))
        assert answer.partial_success.rejected_log_records == (1 if body.startswith(valid) else 0)

    page = lambda_app.read(read_event(fmt, "/logs/recent", f"service_name={service}"), None)
    logs = body_of(page)["logs"]
    # The gzipped retry of the same record is the same entry (its id comes from the record).
    assert [(e["level"], e["message"]) for e in logs] == [("WARN", "disk 91% full")]


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_scoped_writer_is_refused_a_request_writing_another_service(
    lambda_app: LambdaApp, fmt: str
) -> None:
    body = _request("checkout-api", "mine") + _request("payments", "theirs")
    response = lambda_app.ingest(_otlp_event(fmt, body, caller=CHECKOUT_WRITER), None)
    assert response["statusCode"] == 403, response
    assert "payments" in body_of(response)["detail"]
