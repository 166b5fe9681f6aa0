"""Bounds of a shipper's batch (OTLP, Loki), checked before it is parsed or expanded: how many records it
holds, how many protobuf fields (counted on the wire), and what its records come to once each keeps a copy
of what they share. The same limits as a body of ``POST /logs``: a batch of ``max_batch_entries``, the
values of ``max_body_values``, ``max_decompressed_bytes`` in all."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

from logsvc.domain.entries import VALUES_PER_ENTRY, Limits
from logsvc.errors import FieldError, PayloadTooLarge, ValidationFailed

__all__ = ["check_expanded", "check_records", "check_wire", "needs_wire_count"]


def check_records(records: int, limits: Limits, *, noun: str) -> None:
    """PayloadTooLarge for more records (``noun``: "log records", "entries") than a batch holds."""
    if records > limits.max_batch_entries:
        raise PayloadTooLarge(
            f"a request holds at most {limits.max_batch_entries} {noun}; send smaller batches"
        )


def check_expanded(size: int, limits: Limits, *, what: str, advice: str) -> None:
    """PayloadTooLarge when the records, each with a copy of what they share (``what``), come to more than
    a body may inflate to: a large resource or label set shared by many records is small on the wire and in
    the value count, and large once stored with each of them."""
    if size > limits.max_decompressed_bytes:
        raise PayloadTooLarge(f"{what} come to more than {limits.max_decompressed_bytes} bytes: {advice}")


def needs_wire_count(body: bytes, limits: Limits) -> bool:
    """Whether a protobuf body must be counted on the wire (``check_wire``) before it is parsed. Every field
    takes at least two bytes, so a body of at most ``max_body_values`` bytes holds at most half the fields a
    body may hold values: parsing it costs no more than decoding a JSON body the value count admits, and its
    records are counted once parsed (``check_records``). Counting on the wire costs as much as parsing."""
    return len(body) > limits.max_body_values


@functools.cache
def _message_fields(root: Any) -> dict[str, dict[int, str]]:
    """For each message type reachable from the descriptor ``root``, its message fields (number -> type),
    read from the descriptors, so that every nested field is counted."""
    table: dict[str, dict[int, str]] = {}
    todo = [root]
    while todo:
        descriptor = todo.pop()
        if descriptor.full_name in table:
            continue
        nested = [field for field in descriptor.fields if field.message_type is not None]
        table[descriptor.full_name] = {field.number: field.message_type.full_name for field in nested}
        todo += [field.message_type for field in nested]
    return table


def check_wire(body: bytes, root: Any, record: str, limits: Limits, *, noun: str, kind: str) -> None:
    """PayloadTooLarge for a protobuf message (of the descriptor ``root``) holding more ``record`` messages
    than a batch holds, or more fields than a body may hold values (as POST /logs counts JSON values), found
    on the wire before anything is parsed: 32 MiB of empty records parses into 2 GB of messages.
    ValidationFailed (naming ``kind``) for bytes that are not protobuf's wire format."""
    records = fields = 0
    message_fields = _message_fields(root)
    stack = [(0, len(body), root.full_name)]
    try:
        while stack:
            start, end, message = stack.pop()
            children = message_fields[message]
            for number, field_start, field_end in _fields(body, start, end):
                fields += 1
                if fields > limits.max_body_values:
                    raise PayloadTooLarge(
                        f"the body holds more than {limits.max_body_values} protobuf fields; a batch holds "
                        f"at most {limits.max_batch_entries} {noun} of about {VALUES_PER_ENTRY} each: "
                        "send smaller batches"
                    )
                child = children.get(number)
                if child is not None and field_end is not None:
                    records += child == record
                    check_records(records, limits, noun=noun)
                    stack.append((field_start, field_end, child))
    except IndexError:
        raise ValidationFailed([FieldError("body", f"is not {kind}")]) from None


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
