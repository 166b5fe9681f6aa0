"""OTLP/HTTP logs at POST /v1/logs, sent by the OpenTelemetry SDK's own exporter (the stdlib logging bridge)
and by hand in OTLP's JSON mapping, then read back over GET /logs: the same rules as POST /logs."""

from __future__ import annotations

import asyncio
import gzip
import logging
import math
import time
import uuid
import warnings
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource

from logsvc.auth.policy import Principal, Role
from logsvc.domain.entries import Limits, NewEntry
from logsvc.domain.otlp import otlp_entries
from logsvc.errors import Forbidden, PayloadTooLarge, ValidationFailed
from logsvc.service import LogService
from logsvc.storage.open import open_store
from tests.conftest import ServerThread, make_key, make_settings, read_service

PROTOBUF = {"Content-Type": "application/x-protobuf"}
TRACE_ID = 0x5B8EFFF798038103D269B633813FC60C
SPAN_ID = 0xEEE19B7EC3C1B174


def _service() -> str:
    return f"otlp-{uuid.uuid4().hex[:8]}"


def _text(value: str) -> AnyValue:
    return AnyValue(string_value=value)


def _request(service: str | None, *records: LogRecord) -> ExportLogsServiceRequest:
    attributes = [KeyValue(key="service.name", value=_text(service))] if service is not None else []
    resource_logs = ResourceLogs(scope_logs=[ScopeLogs(log_records=records)])
    resource_logs.resource.attributes.extend(attributes)
    return ExportLogsServiceRequest(resource_logs=[resource_logs])


NOW_US = time.time_ns() // 1000


def _entries(request: ExportLogsServiceRequest) -> list[NewEntry]:
    """The entries of a request all of whose records keep the rules."""
    outcomes = otlp_entries(request.SerializeToString(), as_json=False, limits=Limits(), now_us=NOW_US)
    assert all(isinstance(found, NewEntry) for found in outcomes), outcomes
    return [found for found in outcomes if isinstance(found, NewEntry)]


def _record(message: str, severity: int = 9, time_ns: int | None = None) -> LogRecord:
    return LogRecord(time_unix_nano=time_ns or time.time_ns(), severity_number=severity, body=_text(message))


@pytest.fixture
def ingest_key(server: ServerThread) -> str:
    return make_key(server.settings, Role.INGEST).api_key


def _post(server: ServerThread, body: bytes, key: str, **headers: str) -> httpx.Response:
    sent = PROTOBUF | {"Authorization": f"Bearer {key}"} | headers
    return httpx.post(f"{server.url}/v1/logs", content=body, headers=sent, timeout=10)


@pytest.fixture
def otel_logger(server: ServerThread, ingest_key: str) -> Iterator[tuple[logging.Logger, str]]:
    """A stdlib logger whose records the SDK exports to the server, as an instrumented application's are."""
    service = _service()
    exporter = OTLPLogExporter(
        endpoint=f"{server.url}/v1/logs", headers={"Authorization": f"Bearer {ingest_key}"}
    )
    provider = LoggerProvider(resource=Resource.create({"service.name": service, "deployment": "test"}))
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    with warnings.catch_warnings():
        # The SDK's own bridge is deprecated for a separate instrumentation package; it still works.
        warnings.filterwarnings("ignore", "`LoggingHandler` in `opentelemetry-sdk`", DeprecationWarning)
        handler = LoggingHandler(level=logging.DEBUG, logger_provider=provider)
    logger = logging.getLogger(f"app.{service}")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    logger.addHandler(handler)
    yield logger, service
    logger.removeHandler(handler)
    provider.shutdown()


def test_the_sdk_logging_bridge_stores_each_record_with_its_context(
    server: ServerThread, otel_logger: tuple[logging.Logger, str]
) -> None:
    logger, service = otel_logger
    before_us = time.time_ns() // 1000
    span = trace.NonRecordingSpan(
        trace.SpanContext(TRACE_ID, SPAN_ID, is_remote=False, trace_flags=trace.TraceFlags(1))
    )
    with trace.use_span(span):
        logger.warning("payment declined", extra={"order_id": 42, "amount": 9.5, "retry": True})
    logger.debug("cache miss")
    logger.error("gave up")

    stored = read_service(server, service)
    assert [(e["level"], e["message"]) for e in stored] == [
        ("ERROR", "gave up"),
        ("DEBUG", "cache miss"),
        ("WARN", "payment declined"),
    ]
    warning = stored[2]
    assert warning["service_name"] == service
    metadata = warning["metadata"]
    assert metadata["trace_id"] == f"{TRACE_ID:032x}"
    assert metadata["span_id"] == f"{SPAN_ID:016x}"
    assert {"order_id": 42, "amount": 9.5, "retry": True}.items() <= metadata["attributes"].items()
    assert metadata["resource"]["deployment"] == "test"
    assert "service.name" not in metadata["resource"]
    assert metadata["scope"]["name"] == f"app.{service}"
    assert "trace_id" not in stored[1]["metadata"]
    stamped = _us(warning["timestamp"])
    assert before_us - 1_000_000 <= stamped <= time.time_ns() // 1000


def _us(timestamp: str) -> int:
    return int(datetime.fromisoformat(timestamp).timestamp() * 1_000_000)


def test_otlp_json_is_read_by_its_own_mapping(server: ServerThread, ingest_key: str) -> None:
    service = _service()
    body = {
        "resourceLogs": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
                "scopeLogs": [
                    {
                        "scope": {"name": "billing", "version": "2.1"},
                        "logRecords": [
                            {
                                "timeUnixNano": "1700000000123456789",
                                "severityNumber": 17,
                                "body": {"stringValue": "charge failed"},
                                "traceId": f"{TRACE_ID:032x}",
                                "spanId": f"{SPAN_ID:016x}",
                                "attributes": [
                                    {"key": "attempt", "value": {"intValue": "3"}},
                                    {
                                        "key": "tags",
                                        "value": {"arrayValue": {"values": [{"stringValue": "a"}]}},
                                    },
                                ],
                                "someFutureField": True,
                            },
                            {
                                "observedTimeUnixNano": 1700000001000000000,
                                "severityText": "warning",
                                "body": {
                                    "kvlistValue": {"values": [{"key": "k", "value": {"boolValue": True}}]}
                                },
                            },
                        ],
                    }
                ],
            }
        ]
    }
    answer = httpx.post(
        f"{server.url}/v1/logs",
        json=body,
        headers={"Authorization": f"Bearer {ingest_key}"},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/json"
    assert answer.json() == {}

    second, first = read_service(server, service)
    assert (first["level"], first["message"], first["timestamp"]) == (
        "ERROR",
        "charge failed",
        "2023-11-14T22:13:20.123456Z",
    )
    assert first["metadata"] == {
        "attributes": {"attempt": 3, "tags": ["a"]},
        "scope": {"name": "billing", "version": "2.1"},
        "trace_id": f"{TRACE_ID:032x}",
        "span_id": f"{SPAN_ID:016x}",
    }
    assert (second["level"], second["message"], second["timestamp"]) == (
        "WARN",
        '{"k": true}',
        "2023-11-14T22:13:21.000000Z",
    )


def test_doubles_that_are_not_finite_are_stored_as_otlp_json_writes_them(
    server: ServerThread, ingest_key: str
) -> None:
    """JSON has no NaN or infinities: they are kept as OTLP/JSON's strings, not as null (no value)."""
    written = {"nan": "NaN", "inf": "Infinity", "minus": "-Infinity", "half": 0.5}
    service = _service()
    record = _record("protobuf")
    for key, number in (("nan", math.nan), ("inf", math.inf), ("minus", -math.inf), ("half", 0.5)):
        record.attributes.add(key=key, value=AnyValue(double_value=number))
    listed = record.attributes.add(key="list").value.array_value.values
    listed.extend([AnyValue(double_value=math.nan), AnyValue(double_value=-math.inf)])
    answer = _post(server, _request(service, record).SerializeToString(), ingest_key)
    assert answer.status_code == 200, answer.text
    (stored,) = read_service(server, service)
    assert stored["metadata"]["attributes"] == written | {"list": ["NaN", "-Infinity"]}

    service = _service()
    body = {
        "resourceLogs": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
                "scopeLogs": [
                    {
                        "logRecords": [
                            {
                                "timeUnixNano": str(time.time_ns()),
                                "body": {"stringValue": "json"},
                                "attributes": [
                                    {"key": key, "value": {"doubleValue": value}}
                                    for key, value in written.items()
                                ],
                            }
                        ]
                    }
                ],
            }
        ]
    }
    answer = httpx.post(
        f"{server.url}/v1/logs", json=body, headers={"Authorization": f"Bearer {ingest_key}"}, timeout=10
    )
    assert answer.status_code == 200, answer.text
    (stored,) = read_service(server, service)
    assert stored["metadata"]["attributes"] == written


def test_gzip_and_a_retried_request_stores_each_record_once(server: ServerThread, ingest_key: str) -> None:
    service = _service()
    body = gzip.compress(
        _request(service, _record("one"), _record("one"), _record("two")).SerializeToString()
    )
    for _ in range(2):
        answer = _post(server, body, ingest_key, **{"Content-Encoding": "gzip"})
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"] == "application/x-protobuf"
        assert not ExportLogsServiceResponse.FromString(answer.content).HasField("partial_success")
    # Two equal records of one request are two entries; the retry of the request adds none.
    assert sorted(e["message"] for e in read_service(server, service)) == ["one", "one", "two"]


def test_invalid_records_are_rejected_as_partial_success_and_the_others_stored(
    server: ServerThread, ingest_key: str
) -> None:
    service = _service()
    request = _request(service, _record("kept"), LogRecord(severity_number=13), _record("x" * 300_000))
    request.resource_logs.append(_request("not a service!", _record("refused")).resource_logs[0])
    answer = _post(server, request.SerializeToString(), ingest_key)
    assert answer.status_code == 200, answer.text
    partial = ExportLogsServiceResponse.FromString(answer.content).partial_success
    assert partial.rejected_log_records == 3
    assert "record 1: message is required" in partial.error_message
    assert "record 2: message must be at most" in partial.error_message
    assert "record 3: service_name must be" in partial.error_message
    assert [e["message"] for e in read_service(server, service)] == ["kept"]


def test_refusals_of_the_whole_request(server: ServerThread, ingest_key: str) -> None:
    assert _post(server, b"\xff\xff not protobuf", ingest_key).status_code == 400
    bad_json = httpx.post(
        f"{server.url}/v1/logs",
        content=b'{"resourceLogs": [{"scopeLogs": [{"logRecords": [{"traceId": "zz"}]}]}]}',
        headers={"Authorization": f"Bearer {ingest_key}", "Content-Type": "application/json"},
        timeout=10,
    )
    assert bad_json.status_code == 400, bad_json.text
    body = _request(_service(), _record("x")).SerializeToString()
    unauthenticated = httpx.post(f"{server.url}/v1/logs", content=body, headers=PROTOBUF, timeout=10)
    assert unauthenticated.status_code == 401
    assert _post(server, body, ingest_key, **{"Content-Type": "text/plain"}).status_code == 415

    scoped = make_key(server.settings, Role.INGEST, services=("checkout*",)).api_key
    mine, theirs = _request("checkout-api", _record("mine")), _request("payments", _record("theirs"))
    assert _post(server, mine.SerializeToString(), scoped).status_code == 200
    mine.resource_logs.extend(theirs.resource_logs)
    refused = _post(server, mine.SerializeToString(), scoped)
    assert refused.status_code == 403
    assert "payments" in refused.json()["detail"]
    assert read_service(server, "payments") == []


def test_more_records_than_a_batch_may_hold_is_a_413(tmp_path: Path) -> None:
    running = ServerThread(make_settings(tmp_path / "data", max_batch_entries=2)).start()
    try:
        key = make_key(running.settings, Role.INGEST).api_key
        service = _service()
        body = _request(service, *(_record(f"r{i}") for i in range(3))).SerializeToString()
        assert _post(running, body, key).status_code == 413
        # 32 MB of empty records (a 30 KB gzip) would parse into 2 GB of messages: counted on the wire first.
        wire = _field(1, _field(2, _field(2, b"") * 16_000_000))
        refused = _post(running, gzip.compress(wire), key, **{"Content-Encoding": "gzip"})
        assert refused.status_code == 413, refused.text
        assert "at most 2 log records" in refused.json()["detail"]
        assert (
            _post(running, _request(service, _record("a"), _record("b")).SerializeToString(), key).status_code
            == 200
        )
    finally:
        running.stop()


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field, as the wire has it."""
    head, length = bytearray([number << 3 | 2]), len(payload)
    while length > 0x7F:
        head.append(length & 0x7F | 0x80)
        length >>= 7
    return bytes([*head, length]) + payload


def test_the_mapping_of_severity_and_defaults() -> None:
    records = [
        LogRecord(severity_number=n, body=_text(str(n)))
        for n in (0, 1, 4, 5, 8, 9, 12, 13, 16, 17, 20, 21, 24, 25)
    ]
    records.append(LogRecord(severity_text="FATAL", body=_text("text")))
    entries = _entries(_request(None, *records))
    assert [e.level.name for e in entries] == [
        "INFO",
        "TRACE",
        "TRACE",
        "DEBUG",
        "DEBUG",
        "INFO",
        "INFO",
        "WARN",
        "WARN",
        "ERROR",
        "ERROR",
        "FATAL",
        "FATAL",
        "INFO",
        "FATAL",
    ]
    # No service: the default one; no time: the receive time, and an id of its own (not made of its content).
    assert all(e.service_name == "default" and e.ts_us == NOW_US for e in entries)
    assert not {e.log_id for e in entries} & {e.log_id for e in _entries(_request(None, *records))}


def test_the_service_rules_directly(tmp_path: Path) -> None:
    """The use case, without HTTP: the scope rule refuses the whole request, the batch limit is a 413."""
    store = open_store(f"sqlite:///{tmp_path}/direct.db")
    service = LogService(store, Limits(max_batch_entries=2))
    scoped = Principal(id="w", roles=frozenset({Role.INGEST}), services=("a*",))
    headers = {"content-type": "application/x-protobuf"}

    async def run() -> None:
        try:
            ok = await service.ingest_otlp(
                _request("ab", _record("m")).SerializeToString(), headers, principal=scoped
            )
            assert (len(ok.entries), ok.rejected) == (1, 0)
            with pytest.raises(Forbidden):
                await service.ingest_otlp(
                    _request("b", _record("m")).SerializeToString(), headers, principal=scoped
                )
            too_many = _request("ab", _record("1"), _record("2"), _record("3")).SerializeToString()
            with pytest.raises(PayloadTooLarge):
                await service.ingest_otlp(too_many, headers, principal=scoped)
            with pytest.raises(ValidationFailed):
                await service.ingest_otlp(b"\x0a\xff", headers, principal=scoped)
            # So is protobuf of tiny fields: one record of 40,000 empty attributes.
            attributes = _field(1, _field(2, _field(2, _field(6, b"") * 40_000)))
            with pytest.raises(PayloadTooLarge, match="protobuf fields"):
                await service.ingest_otlp(attributes, headers, principal=scoped)
            # OTLP JSON of tiny values is refused before it is decoded, as on POST /logs.
            tiny = b'{"resourceLogs": [' + b",".join([b"{}"] * 40_000) + b"]}"
            with pytest.raises(PayloadTooLarge, match="JSON values"):
                await service.ingest_otlp(tiny, {"content-type": "application/json"}, principal=scoped)
        finally:
            await store.close()

    asyncio.run(run())


def test_a_body_that_is_not_a_string_is_its_json() -> None:
    kvlist = AnyValue()
    kvlist.kvlist_value.values.add(key="n", value=AnyValue(int_value=7))
    array = AnyValue()
    array.array_value.values.extend([AnyValue(double_value=1.5), AnyValue(string_value="é")])
    bodies = [
        kvlist,
        array,
        AnyValue(int_value=3),
        AnyValue(bool_value=False),
        AnyValue(bytes_value=b"\x00\x01"),
    ]
    request = _request(None, *(LogRecord(body=b) for b in bodies))
    assert [e.message for e in _entries(request)] == ['{"n": 7}', '[1.5, "é"]', "3", "false", '"AAE="']
