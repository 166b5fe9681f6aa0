"""OTLP logs (OpenTelemetry's protocol) as our entries, and the answer OTLP expects.

An ``ExportLogsServiceRequest`` (protobuf, or OTLP's JSON mapping) becomes one entry per log record, by the
rules of ``POST /logs`` (``logsvc.domain.validation.mapped_entry``; what breaks them is named by the fields
of ``POST /logs``). The mapping:

- ``service_name``: the resource attribute ``service.name`` (absent: the default service);
- ``level``: ``severityNumber`` by OpenTelemetry's ranges (our levels are their first numbers), else
  ``severityText`` when it names a level, else INFO;
- ``message``: a string body as is; any other body as JSON;
- ``timestamp``: ``timeUnixNano``, else ``observedTimeUnixNano``, else the receive time;
- ``log_type``: the default one;
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
import hashlib
import json
import math
from collections.abc import Iterator
from typing import Any

import msgspec

from logsvc.domain.documents import check_json_values
from logsvc.domain.entries import Level, Limits, NewEntry, derived_log_id, level_named
from logsvc.domain.timestamps import ns_to_us
from logsvc.domain.validation import Source, mapped_entry
from logsvc.domain.wire import check_expanded, check_records, check_wire, needs_wire_count
from logsvc.errors import FieldError, ValidationFailed

__all__ = ["PROTOBUF", "otlp_entries", "otlp_response"]

PROTOBUF = "application/x-protobuf"
_HIGHEST_SEVERITY = 24
# Our levels are the first numbers of OpenTelemetry's ranges of four.
_LEVEL_OF_SEVERITY: tuple[Level, ...] = (
    Level.INFO,
    *(Level((n - 1) // 4 * 4 + 1) for n in range(1, _HIGHEST_SEVERITY + 1)),
)
# In OTLP's JSON mapping ids are hex, where protobuf's own JSON mapping (json_format) expects base64.
_HEX_IDS = ("traceId", "spanId")


def otlp_entries(
    body: bytes, *, as_json: bool, limits: Limits, now_us: int
) -> list[NewEntry | list[FieldError]]:
    """Each log record of the request as an entry, or the rules it breaks, in order (``now_us``: the
    receive time); ValidationFailed for a body that is not a request, PayloadTooLarge for more records than
    a batch holds (counted before any is read). A JSON body has passed the value count of POST /logs; a
    protobuf one large enough to need it is counted here, on the wire, before it is parsed
    (``logsvc.domain.wire``)."""
    if as_json:
        check_json_values(body, limits)
    elif needs_wire_count(body, limits):
        _check_wire(body, limits)
    request = _parse(body, as_json)
    check_records(
        sum(len(s.log_records) for r in request.resource_logs for s in r.scope_logs),
        limits,
        noun="log records",
    )
    _check_expansion(request, limits)
    outcomes: list[NewEntry | list[FieldError]] = []
    for resource_logs in request.resource_logs:
        resource = _attributes(resource_logs.resource.attributes)
        service = resource.pop("service.name", None)
        resource_digest = _digest(resource_logs.resource)
        for scope_logs in resource_logs.scope_logs:
            scope = {
                k: v for k, v in (("name", scope_logs.scope.name), ("version", scope_logs.scope.version)) if v
            }
            # What the scope's records share is checked once: their service and metadata members.
            source = Source(
                service, {k: v for k, v in (("resource", resource), ("scope", scope)) if v}, limits
            )
            # Each record's hash starts from its resource's and scope's, hashed once.
            shared = hashlib.blake2b(resource_digest + _digest(scope_logs.scope), digest_size=10)
            for record in scope_logs.log_records:
                time_ns = record.time_unix_nano or record.observed_time_unix_nano
                ts_us = log_id = None
                if time_ns:
                    ts_us = ns_to_us(time_ns)  # never out of range: an unsigned 64-bit time ends in 2554
                    digest = shared.copy()
                    digest.update(record.SerializeToString(deterministic=True))
                    digest.update(len(outcomes).to_bytes(8))
                    log_id = derived_log_id(time_ns // 1_000_000, digest.digest())
                outcomes.append(
                    mapped_entry(
                        source,
                        _message(record.body),
                        _level(record),
                        ts_us,
                        log_id,
                        _metadata(record, source.members),
                        now_us=now_us,
                        limits=limits,
                    )
                )
    return outcomes


def _digest(message: Any) -> bytes:
    return hashlib.blake2b(message.SerializeToString(deterministic=True), digest_size=16).digest()


def _check_expansion(request: Any, limits: Limits) -> None:
    """The records together with the resource and scope attributes each of them keeps, within the bounds
    of ``logsvc.domain.wire.check_expanded``."""
    total = 0
    for resource_logs in request.resource_logs:
        shared = resource_logs.resource.ByteSize()
        for scope_logs in resource_logs.scope_logs:
            total += scope_logs.ByteSize() + len(scope_logs.log_records) * shared
            check_expanded(
                total,
                limits,
                what="the log records with their resource and scope attributes",
                advice="send smaller batches or fewer resource fields",
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


_LOG_RECORD = "opentelemetry.proto.logs.v1.LogRecord"


def _check_wire(body: bytes, limits: Limits) -> None:
    """The bounds of a protobuf request, on the wire (``logsvc.domain.wire``)."""
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (  # noqa: PLC0415
        ExportLogsServiceRequest,
    )

    check_wire(
        body,
        ExportLogsServiceRequest.DESCRIPTOR,
        _LOG_RECORD,
        limits,
        noun="log records",
        kind="an OTLP protobuf message",
    )


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


def _metadata(record: Any, shared: dict[str, Any]) -> dict[str, Any] | None:
    """A record's metadata: ``shared`` itself (the resource and scope) when it has nothing of its own."""
    attributes, trace_id, span_id = record.attributes, record.trace_id, record.span_id
    if not (attributes or trace_id or span_id):
        return shared or None
    metadata: dict[str, Any] = {}
    if attributes:
        metadata["attributes"] = _attributes(attributes)
    metadata.update(shared)
    if trace_id:
        metadata["trace_id"] = trace_id.hex()
    if span_id:
        metadata["span_id"] = span_id.hex()
    return metadata


def _message(body: Any) -> Any:
    kind = body.WhichOneof("value")
    if kind == "string_value":
        return body.string_value
    if kind is None:
        return None
    # Bytes too: as JSON their base64 text is quoted, so a message of bytes is not read as text.
    return json.dumps(_value(body), ensure_ascii=False)


def _level(record: Any) -> Level:
    number: int = record.severity_number
    if 1 <= number <= _HIGHEST_SEVERITY:
        return _LEVEL_OF_SEVERITY[number]
    return level_named(record.severity_text) or Level.INFO


def _attributes(pairs: Any) -> dict[str, Any]:
    attributes: dict[str, Any] = {}
    for pair in pairs:
        value = pair.value
        kind = value.WhichOneof("value")
        # A scalar, as most are, read here: a call of _value for each costs a third of the time.
        attributes[pair.key] = getattr(value, kind) if kind in _SCALARS else _value(value)
    return attributes


# Not doubles: _value writes those that are not finite, which JSON has no number for.
_SCALARS = frozenset({"string_value", "bool_value", "int_value"})


def _value(value: Any) -> Any:
    """An AnyValue as JSON: scalars as themselves (doubles that are not finite as "NaN", "Infinity",
    "-Infinity"), bytes as base64 text, arrays and key-value lists nested."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "double_value":
        number: float = value.double_value
        if math.isfinite(number):
            return number
        # JSON has none of these (msgspec would write null, which reads as no value): OTLP/JSON's strings.
        return "NaN" if math.isnan(number) else "Infinity" if number > 0 else "-Infinity"
    if kind == "array_value":
        return [_value(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return _attributes(value.kvlist_value.values)
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    return getattr(value, kind)
