"""A shipper's record is held to the rules of POST /logs by the same functions: an OTLP record or a Loki entry
that the mapper reads straight into an entry is accepted or refused exactly as the entry document it stands
for (the mapping the modules' docstrings describe, written here on its own) is by ``validate_each``, with
the same entry or the same problems named in the same order. The limits are small so that every rule is met:
blank and oversized messages, bad service names, times before 1970 or too far ahead, metadata keys too long,
nesting too deep and metadata too large, in a record's own fields and in what its resource or stream
shares with the others."""

from __future__ import annotations

import json
from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from logsvc.domain.entries import Limits, NewEntry, format_log_id
from logsvc.domain.loki import loki_entries
from logsvc.domain.otlp import otlp_entries
from logsvc.domain.timestamps import format_timestamp
from logsvc.domain.validation import validate_each
from logsvc.errors import FieldError
from tests.loki_push import push_request

NOW_US = 1_750_000_000_000_000
LIMITS = Limits(max_message_bytes=24, max_metadata_bytes=80, max_metadata_depth=3, max_metadata_key_chars=20)
HOUR_NS = 3_600_000_000_000

# Keys within the limit (which the members the mappers add keep), and now and then one longer.
keys = st.sampled_from(["a", "b", "k", "é", "x_", "ab", "kk", "bé", "_x", "k" * 21])
scalars = st.one_of(st.text(max_size=12), st.integers(-(2**40), 2**40), st.booleans())
# Attribute values nested up to two levels: the second is deeper than the limit allows.
nested = st.dictionaries(keys, scalars, max_size=2)
values = st.one_of(scalars, scalars, scalars, nested, st.dictionaries(keys, nested, min_size=1, max_size=1))
messages = st.one_of(
    st.text(min_size=1, max_size=20),
    st.text(min_size=1, max_size=20),
    st.sampled_from(["  ", "", "é" * 13, "x" * 25]),
)
services = st.sampled_from([None, "api", "shop.web", None, "api", "bad name", "", "x" * 129])
# Around the receive time (up to 3 hours ahead is past the 2 allowed), and in 1970.
times_ns = st.one_of(
    st.none(),
    st.integers(NOW_US * 1000 - 5 * HOUR_NS, NOW_US * 1000 + 3 * HOUR_NS),
    st.integers(1, 10**17),
)


def _any_value(value: Any) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, str):
        return AnyValue(string_value=value)
    kvlist = AnyValue()
    kvlist.kvlist_value.SetInParent()  # an empty object is still one
    kvlist.kvlist_value.values.extend(_pairs(value))
    return kvlist


def _pairs(attributes: dict[str, Any]) -> list[KeyValue]:
    return [KeyValue(key=key, value=_any_value(value)) for key, value in attributes.items()]


def _same_rules(found: NewEntry | list[FieldError], doc: dict[str, Any]) -> None:
    """The outcome of a mapped record and of its document by the rules of POST /logs are the same."""
    if isinstance(found, NewEntry) and "timestamp" in doc:
        doc["log_id"] = format_log_id(found.log_id)  # the id made of its content
    (expected,) = validate_each([doc], now_us=NOW_US, limits=LIMITS)
    if isinstance(found, NewEntry) and isinstance(expected, NewEntry) and "timestamp" not in doc:
        expected = msgspec.structs.replace(expected, log_id=found.log_id)  # a new id each, at random
    assert found == expected


@settings(max_examples=400, deadline=None, derandomize=True)
@given(
    message=messages,
    service=services,
    time_ns=times_ns,
    attributes=st.dictionaries(keys, values, max_size=3),
    resource=st.dictionaries(keys, values, max_size=2),
    scope_name=st.sampled_from(["", "lib"]),
)
def test_an_otlp_record_keeps_the_rules_of_its_document(
    message: str,
    service: str | None,
    time_ns: int | None,
    attributes: dict[str, Any],
    resource: dict[str, Any],
    scope_name: str,
) -> None:
    request = ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    resource_logs.resource.attributes.extend(_pairs(resource))
    if service is not None:
        resource_logs.resource.attributes.append(KeyValue(key="service.name", value=_any_value(service)))
    scope_logs = resource_logs.scope_logs.add()
    scope_logs.scope.name = scope_name
    record = scope_logs.log_records.add(body=AnyValue(string_value=message), severity_number=13)
    record.attributes.extend(_pairs(attributes))
    if time_ns is not None:
        record.time_unix_nano = time_ns
    (found,) = otlp_entries(request.SerializeToString(), as_json=False, limits=LIMITS, now_us=NOW_US)

    metadata = {
        name: member
        for name, member in (
            ("attributes", attributes),
            ("resource", {k: v for k, v in resource.items() if k != "service.name"}),
            ("scope", {"name": scope_name} if scope_name else {}),
        )
        if member
    }
    doc: dict[str, Any] = {"message": message, "level": "WARN"}
    if service is not None:
        doc["service_name"] = service
    if time_ns is not None:
        doc["timestamp"] = format_timestamp(time_ns // 1000)
    if metadata:
        doc["metadata"] = metadata
    _same_rules(found, doc)


@settings(max_examples=400, deadline=None, derandomize=True)
@given(
    line=messages,
    service=services,
    time_ns=st.one_of(times_ns, st.integers(-(10**15), -1)),
    labels=st.dictionaries(st.sampled_from(["env", "region", "l" * 21]), st.text(max_size=60), max_size=2),
    structured=st.dictionaries(keys, st.text(max_size=40), max_size=3),
)
def test_a_loki_entry_keeps_the_rules_of_its_document(
    line: str,
    service: str | None,
    time_ns: int | None,
    labels: dict[str, str],
    structured: dict[str, str],
) -> None:
    stream = dict(labels)
    if service is not None:
        stream["app"] = service
    if not stream:
        stream["env"] = "x"
    text = "{" + ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in stream.items()) + "}"
    entry: Any = (time_ns, line, structured) if structured else (time_ns, line)
    push = loki_entries(
        push_request([(text, [entry])]).SerializeToString(), as_json=False, limits=LIMITS, now_us=NOW_US
    )
    (found,) = push.outcomes

    rest = {name: value for name, value in stream.items() if name != "app"}
    metadata = {
        name: member for name, member in (("labels", rest), ("structured_metadata", structured)) if member
    }
    # A level word in the line is the mapper's to find: the rules take any level.
    doc: dict[str, Any] = {"message": line}
    if isinstance(found, NewEntry):
        doc["level"] = found.level.name
    if service is not None:
        doc["service_name"] = service
    if time_ns is not None:
        doc["timestamp"] = format_timestamp(time_ns // 1000)
    if metadata:
        doc["metadata"] = metadata
    _same_rules(found, doc)


# The ids a shipper's records were given when this test was written. A retry sent across an upgrade must
# find the same ids, or its records would be stored twice: these values never change.
FIXED_NS = 1_749_999_000_123_456_789


def test_an_otlp_record_keeps_the_id_it_was_given() -> None:
    request = ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    resource_logs.resource.attributes.append(KeyValue(key="service.name", value=AnyValue(string_value="api")))
    resource_logs.resource.attributes.append(KeyValue(key="host", value=AnyValue(string_value="h1")))
    scope_logs = resource_logs.scope_logs.add()
    scope_logs.scope.name, scope_logs.scope.version = "lib", "1.0"
    for i in range(2):
        record = scope_logs.log_records.add(
            time_unix_nano=FIXED_NS + i, severity_number=9, body=AnyValue(string_value=f"hello {i}")
        )
        record.attributes.append(KeyValue(key="k", value=AnyValue(int_value=i)))
        record.trace_id = bytes(range(16))
    found = otlp_entries(request.SerializeToString(), as_json=False, limits=Limits(), now_us=NOW_US)
    assert [format_log_id(entry.log_id) for entry in found if isinstance(entry, NewEntry)] == [
        "01977411-9a3b-7d9b-9682-741cea1b9f68",
        "01977411-9a3b-7b0e-bee5-eada91a46947",
    ]


def test_a_loki_entry_keeps_the_id_it_was_given_in_either_format() -> None:
    expected = ["01977411-9a3b-7d60-8a44-0b9ca814c7eb", "01977411-9a3b-7b21-9627-f43914a3d94f"]
    entries = [(FIXED_NS, "level=warn disk full", {"host": "h1"}), (FIXED_NS + 1, "plain")]
    protobuf = push_request([('{app="api", env="prod"}', entries)]).SerializeToString()
    as_json = msgspec.json.encode(
        {
            "streams": [
                {
                    "stream": {"app": "api", "env": "prod"},
                    "values": [
                        [str(FIXED_NS), "level=warn disk full", {"host": "h1"}],
                        [str(FIXED_NS + 1), "plain"],
                    ],
                }
            ]
        }
    )
    for body, is_json in ((protobuf, False), (as_json, True)):
        push = loki_entries(body, as_json=is_json, limits=Limits(), now_us=NOW_US)
        assert [format_log_id(e.log_id) for e in push.outcomes if isinstance(e, NewEntry)] == expected
