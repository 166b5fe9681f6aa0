"""The count of log records on the wire, made before a protobuf request is parsed, against protobuf's own
parser as the reference: for generated requests, the limit admits exactly the requests whose parsed form
holds at most that many records."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs

from logsvc.domain.entries import Limits
from logsvc.domain.otlp import _check_wire
from logsvc.errors import PayloadTooLarge

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
