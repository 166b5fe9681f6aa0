"""OpenAPI 3.1, derived from the route table (``logsvc.endpoints``), with schemas generated from the same
msgspec types the code uses."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

import msgspec

from logsvc import __version__
from logsvc.api.problems import PROBLEM_TYPE, Problem
from logsvc.auth.credential_service import AuditEvent, Credential, NewCredential
from logsvc.auth.policy import Permission, Role
from logsvc.domain.compat import (
    CognitoCreated,
    CognitoEntryIn,
    CognitoItems,
    FunctionUrlEntryIn,
    FunctionUrlLog,
    FunctionUrlLogs,
)
from logsvc.domain.context import Context
from logsvc.domain.entries import LogEntry, LogEntryIn
from logsvc.domain.queries import Page
from logsvc.domain.stats import ServiceList, Stats
from logsvc.endpoints import ENDPOINTS
from logsvc.routing import SCHEMA_REF, Endpoint, path_parameters, schema_ref
from logsvc.service import BatchCreated, Created
from logsvc.tail import TailPage

__all__ = ["openapi_document"]

# Every route sits behind the authentication middleware: headers too large (431), credentials refused (401,
# 403, also on public routes when bad ones are sent) and the per-credential rate limit (429).
_GUARDED = (401, 403, 429, 431)
_SCHEMAS = (
    LogEntryIn,
    LogEntry,
    Page,
    TailPage,
    Stats,
    ServiceList,
    Context,
    Created,
    BatchCreated,
    Problem,
    NewCredential,
    Credential,
    AuditEvent,
    FunctionUrlEntryIn,
    FunctionUrlLog,
    FunctionUrlLogs,
    CognitoEntryIn,
    CognitoCreated,
    CognitoItems,
)


class KeyRequestIn(msgspec.Struct, forbid_unknown_fields=True):
    """A request for a new credential (documentation; the rules live in auth.policy.parse_key_request)."""

    roles: Annotated[list[Role] | Role | None, msgspec.Meta(description="one or more roles")] = None
    role: Annotated[Role | None, msgspec.Meta(description="one role, as older callers send it")] = None
    services: Annotated[
        list[str] | str | None, msgspec.Meta(description="service patterns (* and ?); absent or null: all")
    ] = None
    expires: Annotated[str | None, msgspec.Meta(description="90d, 12h, 30m or an RFC 3339 date-time")] = None
    description: Annotated[str, msgspec.Meta(max_length=256)] | None = None


def openapi_document(endpoints: Sequence[Endpoint] = ENDPOINTS) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for endpoint in endpoints:
        paths.setdefault(endpoint.path, {})[endpoint.method.lower()] = _operation(endpoint)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Simple Log Service", "version": __version__},
        "paths": paths,
        "components": {"schemas": _components(), "securitySchemes": _SECURITY_SCHEMES},
        "security": [{"sigv4": []}, {"bearer": []}],
    }


def _components() -> dict[str, Any]:
    (_, components) = msgspec.json.schema_components([*_SCHEMAS, KeyRequestIn], ref_template=SCHEMA_REF)
    return components


def _operation(endpoint: Endpoint) -> dict[str, Any]:
    operation: dict[str, Any] = {"operationId": endpoint.name}
    if endpoint.summary:
        operation["summary"] = endpoint.summary
    if endpoint.permission is Permission.PUBLIC:
        operation["security"] = []
    parameters = _path_parameters(endpoint) + _query_parameters(endpoint.query)
    if parameters:
        operation["parameters"] = parameters
    if endpoint.request_body is not None:
        operation["requestBody"] = endpoint.request_body
    operation["responses"] = {**endpoint.answers, **_problems(*endpoint.problems, *_GUARDED)}
    if endpoint.browsers is not None:
        operation["responses"]["303"] = {
            "description": "a browser (Accept names text/html) is sent to the page for people",
            "headers": {"Location": {"schema": {"type": "string", "const": endpoint.browsers}}},
        }
    return operation


def _path_parameters(endpoint: Endpoint) -> list[dict[str, Any]]:
    return [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": endpoint.path_schemas.get(name, {"type": "string"}),
        }
        for name in path_parameters(endpoint.path)
    ]


def _query_parameters(model: type[msgspec.Struct] | None) -> list[dict[str, Any]]:
    """One optional parameter per field of the query model; its description is the parameter's."""
    if model is None:
        return []
    schema = msgspec.json.schema(model)["$defs"][model.__name__]["properties"]
    parameters = []
    for name, field in schema.items():
        description = field.pop("description", "")
        parameters.append(
            {"name": name, "in": "query", "required": False, "description": description, "schema": field}
        )
    return parameters


def _problems(*statuses: int) -> dict[str, Any]:
    content = {PROBLEM_TYPE: {"schema": schema_ref("Problem")}}
    return {
        str(status): {"description": "problem (RFC 9457)", "content": content} for status in sorted(statuses)
    }


_SECURITY_SCHEMES = {
    "sigv4": {
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
        "description": "AWS Signature Version 4, service execute-api",
    },
    "bearer": {"type": "http", "scheme": "bearer", "description": "API key (lsk_...) or OIDC token"},
}
