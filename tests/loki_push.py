"""Loki's push messages as protoc compiles them from the vendored push.proto (protoc of grpcio-tools), with no
code of logsvc's: the reference the tests build pushes with, as Promtail, Alloy and the Docker driver build
them from the same file, and snappy-compress them (block format)."""

from __future__ import annotations

import functools
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import cramjam
import grpc_tools
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, timestamp_pb2
from grpc_tools import protoc

PUSH_PROTO = Path(__file__).resolve().parents[1] / "src" / "logsvc" / "vendor" / "loki" / "push.proto"
PROTOBUF = {"Content-Type": "application/x-protobuf"}


@functools.cache
def compiled_push_file() -> descriptor_pb2.FileDescriptorProto:
    """push.proto compiled by protoc."""
    includes = Path(grpc_tools.__file__).parent / "_proto"
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "push.desc"
        status = protoc.main(
            [
                "protoc",
                f"-I{PUSH_PROTO.parent}",
                f"-I{includes}",
                f"--descriptor_set_out={out}",
                str(PUSH_PROTO),
            ]
        )
        assert status == 0, "protoc failed on the vendored push.proto"
        (compiled,) = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file
    return compiled


@functools.cache
def push_request_class() -> Any:
    pool = descriptor_pool.DescriptorPool()
    timestamp = descriptor_pb2.FileDescriptorProto()
    timestamp_pb2.DESCRIPTOR.CopyToProto(timestamp)
    pool.Add(timestamp)
    pool.Add(compiled_push_file())
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("logproto.PushRequest"))


Entry = tuple[int | None, str] | tuple[int | None, str, Mapping[str, str]]


def push_request(streams: Sequence[tuple[str, Sequence[Entry]]]) -> Any:
    """A PushRequest of (labels text, [(epoch ns or None, line, structured metadata?), ...]) streams."""
    request = push_request_class()()
    for labels, entries in streams:
        stream = request.streams.add(labels=labels)
        for ns, line, *metadata in entries:
            entry = stream.entries.add(line=line)
            if ns is not None:
                entry.timestamp.seconds, entry.timestamp.nanos = divmod(ns, 1_000_000_000)
            for name, value in (metadata[0] if metadata else {}).items():
                entry.structuredMetadata.add(name=name, value=value)
    return request


def snappy(data: bytes) -> bytes:
    return bytes(cramjam.snappy.compress_raw(data))


def push_body(streams: Sequence[tuple[str, Sequence[Entry]]]) -> bytes:
    """The body Promtail sends: a PushRequest, snappy-compressed."""
    return snappy(push_request(streams).SerializeToString())


def now_ns() -> int:
    return time.time_ns()
