"""Any JSON, mapped: the query parameters of POST /logs that name where an entry's fields are in documents
whose fields are not ours (Fluent Bit, Vector, Docker, Kubernetes), and the documents they make.

With a mapping, each entry field is taken from its dotted path (by default its own name), ``log_id`` at
the top level keeps its meaning (a retry is the same entry), and every other field, a ``metadata`` key
too, goes into the entry's metadata as it is. A message that is not a string is stored as its JSON text;
a time is taken as ``timestamp`` is (RFC 3339 or epoch seconds/ms/µs/ns). The rules of POST /logs then
apply, and an error names the document's field rather than ours.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Annotated, Any

import msgspec

from logsvc.domain.parameters import parameter_values
from logsvc.errors import FieldError, ValidationFailed

__all__ = ["FieldMapping", "IngestParameters", "parse_mapping"]

MAX_PATH_CHARS = 256
_PATH_PATTERN = r"^[^.]+(\.[^.]+)*$"
_PATH = re.compile(_PATH_PATTERN)
_PATH_RULE = f"must be a dotted path of 1-{MAX_PATH_CHARS} characters, such as kubernetes.labels.app"
_Path = Annotated[str, msgspec.Meta(pattern=_PATH_PATTERN, min_length=1, max_length=MAX_PATH_CHARS)]
_META = {
    "message_field": "dotted path of the message (default message); a non-string is stored as JSON text",
    "time_field": "dotted path of the event time (default timestamp): RFC 3339 or epoch seconds/ms/µs/ns",
    "service_field": "dotted path of the service name (default service_name)",
    "level_field": "dotted path of the level (default level)",
}
# The entry field each parameter maps, and the path taken when the parameter is not given.
_ENTRY_FIELD = {
    "message_field": "message",
    "time_field": "timestamp",
    "service_field": "service_name",
    "level_field": "level",
}


class IngestParameters(msgspec.Struct, frozen=True):
    """The query-string parameters of POST /logs, as documented (OpenAPI); ``parse_mapping`` holds the
    rules. Any of them makes the body mapped: fields not mapped go into metadata instead of being refused."""

    message_field: Annotated[_Path, msgspec.Meta(description=_META["message_field"])] | msgspec.UnsetType = (
        msgspec.UNSET
    )
    time_field: Annotated[_Path, msgspec.Meta(description=_META["time_field"])] | msgspec.UnsetType = (
        msgspec.UNSET
    )
    service_field: Annotated[_Path, msgspec.Meta(description=_META["service_field"])] | msgspec.UnsetType = (
        msgspec.UNSET
    )
    level_field: Annotated[_Path, msgspec.Meta(description=_META["level_field"])] | msgspec.UnsetType = (
        msgspec.UNSET
    )


class FieldMapping(msgspec.Struct, frozen=True):
    """Where each entry field is in a document: entry field -> dotted path."""

    paths: dict[str, str]

    def documents(self, docs: Sequence[Any]) -> list[Any]:
        """Each document as an entry document of POST /logs; a non-object is left for validation to refuse."""
        return [self._document(doc) if isinstance(doc, dict) else doc for doc in docs]

    def _document(self, doc: dict[str, Any]) -> dict[str, Any]:
        leftovers = _copy_along(doc, [path.split(".") for path in self.paths.values()])
        entry: dict[str, Any] = {}
        if "log_id" in leftovers:
            entry["log_id"] = leftovers.pop("log_id")
        for field, path in self.paths.items():
            value = _take(leftovers, path.split("."))
            if value is None:
                continue
            if field == "message" and not isinstance(value, str):
                value = msgspec.json.encode(value).decode()
            entry[field] = value
        if leftovers:
            entry["metadata"] = leftovers
        return entry

    def source_errors(self, errors: Iterable[FieldError]) -> list[FieldError]:
        """The errors of the mapped entries, naming the document's fields (``log`` for ``message``)."""
        sources = dict(self.paths, metadata="the fields left for metadata")
        return [msgspec.structs.replace(e, field=sources.get(e.field, e.field)) for e in errors]


def parse_mapping(params: Iterable[tuple[str, str]]) -> FieldMapping | None:
    """The mapping of POST /logs's query parameters, None without any; ValidationFailed names every unknown,
    repeated or malformed parameter."""
    errors: list[FieldError] = []
    given = parameter_values(params, _ENTRY_FIELD, errors)
    errors += [
        FieldError(name, _PATH_RULE)
        for name, value in given.items()
        if len(value) > MAX_PATH_CHARS or _PATH.fullmatch(value) is None
    ]
    if errors:
        raise ValidationFailed(errors)
    if not given:
        return None
    return FieldMapping({field: given.get(name, field) for name, field in _ENTRY_FIELD.items()})


def _copy_along(doc: dict[str, Any], paths: list[list[str]]) -> dict[str, Any]:
    """A copy of the document and of the objects on the mapped paths, the only ones taking a field out
    changes: the document itself stays whole, and however deep its other objects are nested, nothing
    recurses into them."""
    top = dict(doc)
    for path in paths:
        node = top
        for key in path[:-1]:
            child = node.get(key)
            if not isinstance(child, dict):
                break
            node[key] = child = dict(child)
            node = child
    return top


def _take(doc: dict[str, Any], keys: list[str]) -> Any:
    """The value at the path, removed from the document with the objects it leaves empty; None if missing."""
    key = keys[0]
    if len(keys) == 1:
        return doc.pop(key, None)
    child = doc.get(key)
    if not isinstance(child, dict):
        return None
    value = _take(child, keys[1:])
    if value is not None and not child:
        del doc[key]
    return value
