"""Loki's push messages (``logproto.PushRequest`` and what it holds), built at run time from descriptors.

The messages are those of Loki's ``pkg/push/push.proto`` (Apache-2.0), vendored in ``logsvc/vendor/loki``
with its licence; they are written out here as a ``FileDescriptorProto`` and made into classes by the
protobuf runtime, so there is no generated code to keep in step with the runtime's version.
``tests/unit/test_loki_proto.py`` compiles the vendored file with protoc and checks that both describe the
same messages, but for the strings, which are bytes here (below). Nothing of protobuf is imported until the
first Loki request needs it (the Lambda handlers import the domain, and a cold start serving only
``POST /logs`` need not load it).
"""

from __future__ import annotations

import functools
from typing import Any

__all__ = ["PUSH_REQUEST", "push_file", "push_request"]

PUSH_REQUEST = "logproto.PushRequest"
TIMESTAMP_PROTO = "google/protobuf/timestamp.proto"

# (name, number, type, repeated, message type) of each field, message by message, as push.proto has them,
# but that its strings are bytes (the same on the wire). Under proto3 a string that is not UTF-8 makes the
# whole push unreadable, so one such line would lose the agent's batch; Loki's unmarshal checks no UTF-8 and
# stores it, and the agents send a file's bytes as they are. ``logsvc.domain.loki`` decodes them.
_BYTES, _UINT64, _MESSAGE = "TYPE_BYTES", "TYPE_UINT64", "TYPE_MESSAGE"
_MESSAGES: dict[str, list[tuple[str, int, str, bool, str]]] = {
    "PushRequest": [
        ("streams", 1, _MESSAGE, True, ".logproto.StreamAdapter"),
        ("format", 2, _BYTES, False, ""),
    ],
    "PushResponse": [],
    "StreamAdapter": [
        ("labels", 1, _BYTES, False, ""),
        ("entries", 2, _MESSAGE, True, ".logproto.EntryAdapter"),
        ("hash", 3, _UINT64, False, ""),
    ],
    "LabelPairAdapter": [("name", 1, _BYTES, False, ""), ("value", 2, _BYTES, False, "")],
    "EntryAdapter": [
        ("timestamp", 1, _MESSAGE, False, ".google.protobuf.Timestamp"),
        ("line", 2, _BYTES, False, ""),
        ("structuredMetadata", 3, _MESSAGE, True, ".logproto.LabelPairAdapter"),
        ("parsed", 4, _MESSAGE, True, ".logproto.LabelPairAdapter"),
    ],
}


def push_file() -> Any:
    """push.proto's messages as a ``FileDescriptorProto``."""
    from google.protobuf import descriptor_pb2  # noqa: PLC0415 (see the module's docstring)

    field = descriptor_pb2.FieldDescriptorProto
    file = descriptor_pb2.FileDescriptorProto(
        name="push.proto",
        package="logproto",
        syntax="proto3",
        dependency=[TIMESTAMP_PROTO],
        options=descriptor_pb2.FileOptions(go_package="github.com/grafana/loki/pkg/push"),
    )
    for message_name, fields in _MESSAGES.items():
        message = file.message_type.add(name=message_name)
        for name, number, kind, repeated, type_name in fields:
            message.field.add(
                name=name,
                number=number,
                type=field.Type.Value(kind),
                label=field.LABEL_REPEATED if repeated else field.LABEL_OPTIONAL,
                type_name=type_name or None,
                json_name=name,
            )
    return file


@functools.cache
def push_request() -> Any:
    """The ``PushRequest`` message class, in a descriptor pool of its own (nothing else can clash with it)."""
    from google.protobuf import (  # noqa: PLC0415
        descriptor_pb2,
        descriptor_pool,
        message_factory,
        timestamp_pb2,
    )

    pool = descriptor_pool.DescriptorPool()
    timestamp = descriptor_pb2.FileDescriptorProto()
    timestamp_pb2.DESCRIPTOR.CopyToProto(timestamp)
    pool.Add(timestamp)
    pool.Add(push_file())
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(PUSH_REQUEST))
