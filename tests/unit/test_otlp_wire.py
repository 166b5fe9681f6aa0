"""Bounds of OTLP requests, checked before they are parsed or expanded. The count of log records on the
wire is held against protobuf's own parser as the reference: for generated requests, the limit admits
exactly the requests whose parsed form holds at most that many records."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, EntityRef, KeyValue, KeyValueList
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from logsvc.domain.entries import Limits
from logsvc.domain.otlp import _check_wire, otlp_entries
from logsvc.errors import PayloadTooLarge, ValidationFailed

values = st.recursive(
    st.builds(AnyValue, string_value=st.text(max_size=5))
    | st.builds(AnyValue, int_value=st.integers(-(2**63), 2**63 - 1))
    | st.builds(AnyValue, bool_value=st.booleans()),
    lambda children: (
        st.builds(
            lambda items: AnyValue(array_value=ArrayValue(values=items)), st.lists(children, max_size=3)
        )
        | st.builds(
            lambda items: AnyValue(
                kvlist_value=KeyValueList(
                    values=[KeyValue(key=f"k{i}", value=v) for i, v in enumerate(items)]
                )
            ),
            st.lists(children, max_size=3),
        )
    ),
    max_leaves=8,
)
records = st.builds(
    lambda body, attributes, time: LogRecord(
        body=body,
        attributes=[KeyValue(key=f"a{i}", value=v) for i, v in enumerate(attributes)],
        time_unix_nano=time,
        severity_text="INFO",
    ),
    values,
    st.lists(values, max_size=3),
    st.integers(0, 2**64 - 1),
)
requests = st.builds(
    lambda groups: ExportLogsServiceRequest(
        resource_logs=[ResourceLogs(scope_logs=[ScopeLogs(log_records=group)]) for group in groups]
    ),
    st.lists(st.lists(records, max_size=4), max_size=4),
)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(request=requests)
def test_the_wire_count_admits_exactly_the_records_protobuf_parses(request: ExportLogsServiceRequest) -> None:
    body = request.SerializeToString()
    parsed = ExportLogsServiceRequest.FromString(body)
    count = sum(len(scope.log_records) for resource in parsed.resource_logs for scope in resource.scope_logs)
    _check_wire(body, Limits(max_batch_entries=max(count, 1)))  # admitted at exactly its count
    if count:
        # The body twice is one request of both (protobuf concatenates repeated fields): 2 x count records,
        # one more than this limit.
        limit = 2 * count - 1
        with pytest.raises(PayloadTooLarge, match=f"at most {limit} log records"):
            _check_wire(body + body, Limits(max_batch_entries=limit))


def test_strings_inside_any_nested_message_are_counted_before_parsing() -> None:
    """The table of nested messages comes from the package's descriptors: a message added by a newer
    version of the protocol (Resource.entity_refs) is looked into, not counted as one field."""
    resource = Resource(entity_refs=[EntityRef(id_keys=[""] * 50_000)])
    body = ExportLogsServiceRequest(resource_logs=[ResourceLogs(resource=resource)]).SerializeToString()
    with pytest.raises(PayloadTooLarge, match="protobuf fields"):
        _check_wire(body, Limits(max_batch_entries=10))


def test_records_that_share_a_large_resource_are_bounded_by_what_they_expand_to() -> None:
    """One 60 KB resource attribute with 1,000 records: small on the wire, 60 MB once each entry keeps it."""
    resource = Resource(attributes=[KeyValue(key="big", value=AnyValue(string_value="x" * 60_000))])
    records = [LogRecord(body=AnyValue(string_value="m"), time_unix_nano=1) for _ in range(1_000)]
    body = ExportLogsServiceRequest(
        resource_logs=[ResourceLogs(resource=resource, scope_logs=[ScopeLogs(log_records=records)])]
    ).SerializeToString()
    with pytest.raises(PayloadTooLarge, match="with their resource and scope attributes"):
        otlp_entries(body, as_json=False, limits=Limits(), now_us=0)


def test_otlp_json_nested_past_python_s_recursion_is_a_400() -> None:
    body = b'{"resourceLogs":' + b"[" * 5_000 + b"]" * 5_000 + b"}"
    with pytest.raises(ValidationFailed, match="is not OTLP JSON"):
        otlp_entries(body, as_json=True, limits=Limits(), now_us=0)
