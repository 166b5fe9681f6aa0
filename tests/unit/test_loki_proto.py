"""The Loki push messages logsvc builds from descriptors are those of the vendored push.proto, as protoc
compiles it: the same fields, numbers, types and names, so the same bytes on the wire. The one difference is
that its strings are bytes (the same on the wire), so that a line that is not UTF-8 does not make the whole
push unreadable."""

from __future__ import annotations

from google.protobuf import descriptor_pb2

from logsvc.domain.loki_proto import push_file, push_request
from tests.loki_push import PUSH_PROTO, compiled_push_file
from tests.loki_push import push_request as reference_request


def test_the_descriptors_are_those_protoc_compiles_from_the_vendored_file() -> None:
    compiled = descriptor_pb2.FileDescriptorProto()
    compiled.CopyFrom(compiled_push_file())
    # logsvc serves no gRPC: the file's Pusher service is the one part it does not describe.
    assert [service.name for service in compiled.service] == ["Pusher"]
    compiled.ClearField("service")
    strings = 0
    for message in compiled.message_type:
        for field in message.field:
            if field.type == field.TYPE_STRING:
                field.type = field.TYPE_BYTES
                strings += 1
    assert strings == 5  # labels, line, format, and a label pair's name and value
    assert push_file() == compiled


def test_a_push_reads_the_same_as_the_reference_writes_it() -> None:
    reference = reference_request(
        [('{app="api"}', [(1_700_000_000_123_456_789, "line", {"trace_id": "t1"}), (None, "no time")])]
    )
    ours = push_request().FromString(reference.SerializeToString())
    (stream,) = ours.streams
    first, second = stream.entries
    assert (stream.labels, first.line, second.line) == (b'{app="api"}', b"line", b"no time")
    assert (first.timestamp.seconds, first.timestamp.nanos) == (1_700_000_000, 123_456_789)
    assert [(p.name, p.value) for p in first.structuredMetadata] == [(b"trace_id", b"t1")]
    assert not second.HasField("timestamp")
    assert ours.SerializeToString() == reference.SerializeToString()


def test_the_vendored_file_keeps_its_licence_and_says_what_changed() -> None:
    head = PUSH_PROTO.read_text()[:800]
    assert "Apache License, Version 2.0" in head
    assert "grafana/loki" in head
    assert "Changed for logsvc" in head
    licence = (PUSH_PROTO.parent / "LICENSE").read_text()
    assert licence.lstrip().startswith("Apache License")
