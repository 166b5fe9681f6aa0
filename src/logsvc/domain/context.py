"""An entry in its context: the entries of the same service just before and just after it
(``GET /logs/{log_id}/context``)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Annotated, Final

import msgspec

from logsvc.domain.entries import SERVICE_NAME_PATTERN, SERVICE_RULE, LogEntry, entry_bytes, is_service_name
from logsvc.domain.parameters import parameter_values
from logsvc.domain.queries import MAX_PAGE_BYTES
from logsvc.domain.timestamps import parse_whole_number
from logsvc.errors import FieldError, ValidationFailed

__all__ = [
    "CONTEXT_PARAMETERS",
    "DEFAULT_AROUND",
    "MAX_AROUND",
    "Context",
    "ContextParameters",
    "ContextRequest",
    "fit_context",
    "parse_context",
    "size_of",
]

DEFAULT_AROUND: Final = 10
MAX_AROUND: Final = 100
_AROUND_RULE = f"must be a whole number from 0 to {MAX_AROUND}"


class ContextParameters(msgspec.Struct, frozen=True):
    """The query-string parameters of ``GET /logs/{log_id}/context``, as documented (OpenAPI);
    ``parse_context`` holds the rules."""

    before: Annotated[
        int, msgspec.Meta(ge=0, le=MAX_AROUND, description="entries just older than this one, 0-100")
    ] = DEFAULT_AROUND
    after: Annotated[
        int, msgspec.Meta(ge=0, le=MAX_AROUND, description="entries just newer than this one, 0-100")
    ] = DEFAULT_AROUND
    service_name: (
        Annotated[
            str,
            msgspec.Meta(
                pattern=SERVICE_NAME_PATTERN,
                description="the service of the entry, when several services used its log_id",
            ),
        ]
        | msgspec.UnsetType
    ) = msgspec.UNSET


CONTEXT_PARAMETERS = frozenset(ContextParameters.__struct_fields__)


class ContextRequest(msgspec.Struct, frozen=True):
    before: int = DEFAULT_AROUND
    after: int = DEFAULT_AROUND
    service_name: str | None = None


class Context(msgspec.Struct, frozen=True):
    """An entry and its neighbours in its service, both lists oldest first: ``before + [entry] + after``
    reads in time order (ties by each store's order, as in ``GET /logs``)."""

    entry: LogEntry
    before: list[LogEntry]
    after: list[LogEntry]


def parse_context(params: Iterable[tuple[str, str]]) -> ContextRequest:
    """The parameters as a ContextRequest, or ValidationFailed naming every bad parameter."""
    errors: list[FieldError] = []
    values = parameter_values(params, CONTEXT_PARAMETERS, errors)
    around = {}
    for name in ("before", "after"):
        around[name] = DEFAULT_AROUND
        if name in values:
            try:
                around[name] = parse_whole_number(values[name])
                if around[name] > MAX_AROUND:
                    raise ValueError
            except ValueError:
                errors.append(FieldError(name, _AROUND_RULE))
    service = values.get("service_name")
    if service is not None and not is_service_name(service):
        errors.append(FieldError("service_name", SERVICE_RULE))
    if errors:
        raise ValidationFailed(errors)
    return ContextRequest(before=around["before"], after=around["after"], service_name=service)


def size_of(entry: LogEntry) -> int:
    """What an entry counts against MAX_PAGE_BYTES (its message and metadata, as ``entry_bytes``)."""
    return entry_bytes(entry.message, None) + (len(entry.metadata) if entry.metadata is not None else 0)


def fit_context(entry: LogEntry, older: Sequence[LogEntry], newer: Sequence[LogEntry]) -> Context:
    """The context answer from the neighbours nearest first, within MAX_PAGE_BYTES as a page of ``GET
    /logs`` is (a Lambda answer stays under 6 MB): taken in turns, one before and one after, until the
    entries pass the bound; the entry itself is always given. A store may stop reading one side once it
    passes the bound: nothing past that point can be taken."""
    size = size_of(entry)
    before: list[LogEntry] = []
    after: list[LogEntry] = []
    for index in range(max(len(older), len(newer))):
        for side, taken in ((older, before), (newer, after)):
            if index < len(side):
                if size > MAX_PAGE_BYTES:
                    return Context(entry=entry, before=before[::-1], after=after)
                taken.append(side[index])
                size += size_of(side[index])
    return Context(entry=entry, before=before[::-1], after=after)
