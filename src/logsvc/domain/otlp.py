"""OTLP logs (OpenTelemetry's protocol) as our entry documents, and the answer OTLP expects.

An ``ExportLogsServiceRequest`` (protobuf, or OTLP's JSON mapping) becomes one entry document per log record,
in the shape ``POST /logs`` takes, so that the same validation decides what is stored. The mapping:

- ``service_name``: the resource attribute ``service.name`` (absent: the default service);
- ``level``: ``severityNumber`` by OpenTelemetry's ranges (our levels are their first numbers), else
  ``severityText`` when it names a level, else INFO;
- ``message``: a string body as is; any other body as JSON;
- ``timestamp``: ``timeUnixNano``, else ``observedTimeUnixNano``, else the receive time;
- ``metadata``: ``{"attributes", "resource", "scope": {"name", "version"}, "trace_id", "span_id"}``, each
  only when present; attribute values keep their JSON types;
- ``log_id``: a UUIDv7 of the record's time and a hash of the record, its resource, its scope and its place
  in the request, so that an exporter retrying a request stores nothing twice. A record with neither time
  gets a new id each time (its time is the receive time, which a retry changes anyway).

The protobuf modules are imported when the first such request comes, not with this module: the Lambda
handlers import it, and a cold start serving only ``POST /logs`` need not load them.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
from collections.abc import Iterator
from typing import Any

import msgspec

from logsvc.domain.documents import check_json_values
from logsvc.domain.entries import VALUES_PER_ENTRY, Level, Limits, level_named
from logsvc.domain.timestamps import format_timestamp
from logsvc.errors import FieldError, PayloadTooLarge, ValidationFailed

__all__ = ["PROTOBUF", "otlp_documents", "otlp_response"]

PROTOBUF = "application/x-protobuf"
_HIGHEST_SEVERITY = 24
# In OTLP's JSON mapping ids are hex, where protobuf's own JSON mapping (json_format) expects base64.
_HEX_IDS = ("traceId", "spanId")


def otlp_documents(body: bytes, *, as_json: bool, limits: Limits) -> list[dict[str, Any]]:
    """One entry document per log record of the request; ValidationFailed for a body that is not one,
    PayloadTooLarge for more records than a batch holds (counted before any document is made). A JSON body
    has passed the value count of POST /logs; a protobuf one is counted here, on the wire."""
    if as_json:
        check_json_values(body, limits)
    else:
        _check_wire(body, limits)
    request = _parse(body, as_json)
    if as_json:
        _check_records(
            sum(len(s.log_records) for r in request.resource_logs for s in r.scope_logs),
            limits.max_batch_entries,
        )
    _check_expansion(request, limits)
    docs: list[dict[str, Any]] = []
    for resource_logs in request.resource_logs:
        resource = _attributes(resource_logs.resource.attributes)
        service = resource.pop("service.name", None)
        resource_digest = _digest(resource_logs.resource)
        for scope_logs in resource_logs.scope_logs:
            scope = {
                k: v for k, v in (("name", scope_logs.scope.name), ("version", scope_logs.scope.version)) if v
            }
            scope_digest = _digest(scope_logs.scope)
            for record in scope_logs.log_records:
                doc = _document(record, resource, scope)
                if service is not None:
                    doc["service_name"] = service
                time_ns = record.time_unix_nano or record.observed_time_unix_nano
                if time_ns:
                    # As RFC 3339 text: an epoch number is read by its magnitude, which a time near 1970
                    # in nanoseconds would defeat.
                    doc["timestamp"] = format_timestamp(time_ns // 1000)
                    digest = hashlib.blake2b(resource_digest + scope_digest, digest_size=10)
                    digest.update(record.SerializeToString(deterministic=True))
                    digest.update(len(docs).to_bytes(8))
                    doc["log_id"] = _uuid7(time_ns // 1_000_000, digest.digest())
                docs.append(doc)
    return docs


def _digest(message: Any) -> bytes:
    return hashlib.blake2b(message.SerializeToString(deterministic=True), digest_size=16).digest()


def _check_expansion(request: Any, limits: Limits) -> None:
    """PayloadTooLarge when the records, each with a copy of its resource and scope attributes (as their
    entries keep them), would come to more than a body may inflate to: one large resource shared by many
    records is small on the wire and in the value count, and large once stored with each of them."""
    total = 0
    for resource_logs in request.resource_logs:
        shared = resource_logs.resource.ByteSize()
        for scope_logs in resource_logs.scope_logs:
            total += scope_logs.ByteSize() + len(scope_logs.log_records) * shared
            if total > limits.max_decompressed_bytes:
                raise PayloadTooLarge(
                    "the log records with their resource and scope attributes come to more than "
                    f"{limits.max_decompressed_bytes} bytes: send smaller batches or fewer resource fields"
                )


def otlp_response(rejected: int, error_message: str, *, as_json: bool) -> bytes:
    """An ``ExportLogsServiceResponse``: ``partialSuccess`` only when records were rejected."""
    if as_json:
        partial = {"rejectedLogRecords": rejected, "errorMessage": error_message} if rejected else None
        return msgspec.json.encode({"partialSuccess": partial} if partial else {})
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (  # noqa: PLC0415 (see above)
        ExportLogsServiceResponse,
    )

    response = ExportLogsServiceResponse()
    if rejected:
        response.partial_success.rejected_log_records = rejected
        response.partial_success.error_message = error_message
    return bytes(response.SerializeToString())


def _parse(body: bytes, as_json: bool) -> Any:
    from google.protobuf import json_format  # noqa: PLC0415 (see the module's docstring)
    from google.protobuf.message import DecodeError  # noqa: PLC0415
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (  # noqa: PLC0415
        ExportLogsServiceRequest,
    )

    request = ExportLogsServiceRequest()
    try:
        if as_json:
            doc = json.loads(body)
            if not isinstance(doc, dict):
                raise TypeError("the body must be a JSON object")
            for record in _json_records(doc):
                for name in _HEX_IDS:
                    if record.get(name):
                        record[name] = base64.b64encode(bytes.fromhex(record[name])).decode()
            # OTLP/JSON receivers must ignore fields they do not know (newer versions of the protocol).
            json_format.ParseDict(doc, request, ignore_unknown_fields=True)
        else:
            request.ParseFromString(body)
    except (
        ValueError,
        TypeError,
        AttributeError,
        RecursionError,
        DecodeError,
        json_format.ParseError,
    ) as exc:
        kind = "OTLP JSON" if as_json else "an OTLP protobuf"
        raise ValidationFailed(
            [FieldError("body", f"is not {kind} ExportLogsServiceRequest: {exc}")]
        ) from None
    return request


def _check_records(records: int, max_records: int) -> None:
    if records > max_records:
        raise PayloadTooLarge(f"a request holds at most {max_records} log records; send smaller batches")


_LOG_RECORD = "opentelemetry.proto.logs.v1.LogRecord"


@functools.cache
def _message_fields() -> tuple[str, dict[str, dict[int, str]]]:
    """The request's message type, and for each message type its message fields (number -> type), read
    from the protobuf descriptors of the installed package, so that every nested field is counted."""
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (  # noqa: PLC0415
        ExportLogsServiceRequest,
    )

    table: dict[str, dict[int, str]] = {}
    todo = [ExportLogsServiceRequest.DESCRIPTOR]
    while todo:
        descriptor = todo.pop()
        if descriptor.full_name in table:
            continue
        nested = [field for field in descriptor.fields if field.message_type is not None]
        table[descriptor.full_name] = {field.number: field.message_type.full_name for field in nested}
        todo += [field.message_type for field in nested]
    return ExportLogsServiceRequest.DESCRIPTOR.full_name, table


def _check_wire(body: bytes, limits: Limits) -> None:
    """PayloadTooLarge for a protobuf request of more records than a batch holds, or of more fields than
    a body may hold values (as POST /logs counts JSON values), found on the wire before anything is parsed:
    32 MiB of empty records or attributes parses into 2 GB of messages."""
    records = fields = 0
    root, message_fields = _message_fields()
    stack = [(0, len(body), root)]
    try:
        while stack:
            start, end, message = stack.pop()
            children = message_fields[message]
            for number, field_start, field_end in _fields(body, start, end):
                fields += 1
                if fields > limits.max_body_values:
                    raise PayloadTooLarge(
                        f"the body holds more than {limits.max_body_values} protobuf fields; a batch holds "
                        f"at most {limits.max_batch_entries} records of about {VALUES_PER_ENTRY} each: "
                        "send smaller batches"
                    )
                child = children.get(number)
                if child is not None and field_end is not None:
                    records += child == _LOG_RECORD
                    _check_records(records, limits.max_batch_entries)
                    stack.append((field_start, field_end, child))
    except IndexError:
        raise ValidationFailed([FieldError("body", "is not an OTLP protobuf message")]) from None


def _fields(data: bytes, start: int, end: int) -> Iterator[tuple[int, int, int | None]]:
    """The fields of the message in ``data[start:end]``: number, and where a length-delimited one's bytes
    lie (None as the end of any other); IndexError for bytes that are not protobuf's wire format."""
    pos = start
    while pos < end:
        key, pos = _varint(data, pos, end)
        wire_type = key & 7
        if wire_type == 2:
            length, pos = _varint(data, pos, end)
            yield key >> 3, pos, pos + length
            pos += length
        else:
            if wire_type == 0:
                pos = _varint(data, pos, end)[1]
            elif wire_type in (1, 5):
                pos += 8 if wire_type == 1 else 4
            else:
                raise IndexError("not a wire type these messages use")
            yield key >> 3, pos, None
        if pos > end:
            raise IndexError("a field runs past its message")


def _varint(data: bytes, pos: int, end: int) -> tuple[int, int]:
    value = shift = 0
    while shift < 70:
        if pos >= end:
            raise IndexError("a varint runs past its message")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
    raise IndexError("a varint of more than 10 bytes")


def _json_records(doc: Any) -> Iterator[dict[str, Any]]:
    """The log records of an OTLP JSON request, as far as its shape lets them be found (ParseDict then
    judges the rest)."""
    for resource_logs in _objects(doc, "resourceLogs"):
        for scope_logs in _objects(resource_logs, "scopeLogs"):
            yield from _objects(scope_logs, "logRecords")


def _objects(parent: Any, name: str) -> Iterator[dict[str, Any]]:
    children = parent.get(name) if isinstance(parent, dict) else None
    if isinstance(children, list):
        yield from (child for child in children if isinstance(child, dict))


def _document(record: Any, resource: dict[str, Any], scope: dict[str, str]) -> dict[str, Any]:
    metadata: dict[str, Any] = {}
    if record.attributes:
        metadata["attributes"] = _attributes(record.attributes)
    if resource:
        metadata["resource"] = resource
    if scope:
        metadata["scope"] = scope
    if record.trace_id:
        metadata["trace_id"] = record.trace_id.hex()
    if record.span_id:
        metadata["span_id"] = record.span_id.hex()
    doc: dict[str, Any] = {"level": _level(record.severity_number, record.severity_text).name}
    kind = record.body.WhichOneof("value")
    if kind == "string_value":
        doc["message"] = record.body.string_value
    elif kind is not None:
        # Bytes too: as JSON their base64 text is quoted, so a message of bytes is not read as text.
        doc["message"] = json.dumps(_value(record.body), ensure_ascii=False)
    if metadata:
        doc["metadata"] = metadata
    return doc


def _level(number: int, text: str) -> Level:
    if 1 <= number <= _HIGHEST_SEVERITY:
        return Level((number - 1) // 4 * 4 + 1)
    return level_named(text) or Level.INFO


def _attributes(pairs: Any) -> dict[str, Any]:
    return {pair.key: _value(pair.value) for pair in pairs}


def _value(value: Any) -> Any:
    """An AnyValue as JSON: scalars as themselves, bytes as base64 text, arrays and key-value lists nested."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_value(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return _attributes(value.kvlist_value.values)
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    return getattr(value, kind)


def _uuid7(ms: int, digest: bytes) -> str:
    """A UUIDv7 of the millisecond ``ms`` whose random bits are taken from ``digest``."""
    value = bytearray(ms.to_bytes(6) + digest)
    value[6] = 0x70 | (value[6] & 0x0F)
    value[8] = 0x80 | (value[8] & 0x3F)
    h = value.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
