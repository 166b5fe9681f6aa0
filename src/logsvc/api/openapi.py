"""OpenAPI 3.1 for the routes, with schemas generated from the same msgspec types the code uses."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from logsvc import __version__
from logsvc.api.problems import PROBLEM_TYPE, Problem
from logsvc.auth.credentials import AuditEvent, Credential, NewCredential
from logsvc.auth.policy import Role
from logsvc.domain.entries import MAX_LOG_TYPE_CHARS, SERVICE_NAME_PATTERN, Level, LogEntry, LogEntryIn
from logsvc.domain.queries import MAX_HOURS, MAX_LIMIT, MAX_QUERY_CHARS, Page
from logsvc.service import BatchCreated, Created

__all__ = ["openapi_document"]

_REF = "#/components/schemas/{name}"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF.format(name=name)}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _problems(*statuses: int) -> dict[str, Any]:
    content = {PROBLEM_TYPE: {"schema": _ref("Problem")}}
    return {str(status): {"description": "problem (RFC 9457)", "content": content} for status in statuses}


# Every route sits behind the authentication middleware: headers too large (431), credentials refused (401,
# 403, also on public routes when bad ones are sent) and the per-credential rate limit (429).
_GUARDED = (401, 403, 429, 431)


def _param(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema}


_LEVELS = {"type": "string", "enum": [level.name for level in Level]}
_TIME = {
    "anyOf": [{"type": "string", "format": "date-time"}, {"type": "number"}],
    "description": "RFC 3339 date-time, or epoch seconds/ms/µs/ns (magnitude decides)",
}
_READ_PARAMS = [
    _param("service_name", "only this service", {"type": "string", "pattern": SERVICE_NAME_PATTERN}),
    _param("level", "only this level", _LEVELS),
    _param("min_level", "this level or more severe", _LEVELS),
    _param(
        "log_type", "only this log type", {"type": "string", "minLength": 1, "maxLength": MAX_LOG_TYPE_CHARS}
    ),
    _param("since", "event time at or after (inclusive)", _TIME),
    _param("until", "event time before (exclusive)", _TIME),
    _param(
        "hours",
        "window of this many hours ending now",
        {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_HOURS},
    ),
    _param(
        "q",
        'full-text search: every word and "quoted phrase" must occur in the message',
        {"type": "string", "minLength": 1, "maxLength": MAX_QUERY_CHARS},
    ),
    _param(
        "limit",
        f"page size, 1-{MAX_LIMIT} (larger is clamped)",
        {"type": "integer", "minimum": 1, "default": 100},
    ),
    _param("cursor", "next_cursor of the previous page", {"type": "string", "pattern": "^[A-Za-z0-9_-]+$"}),
]


class KeyRequestIn(msgspec.Struct, forbid_unknown_fields=True):
    """A request for a new credential (documentation; the rules live in auth.policy.parse_key_request)."""

    role: Role
    services: Annotated[
        list[str] | str | None, msgspec.Meta(description="service-name glob patterns; absent or null: all")
    ] = None
    expires: Annotated[str | None, msgspec.Meta(description="90d, 12h, 30m or an RFC 3339 date-time")] = None
    description: Annotated[str, msgspec.Meta(max_length=256)] | None = None


def openapi_document() -> dict[str, Any]:
    (_, components) = msgspec.json.schema_components(
        [
            LogEntryIn,
            LogEntry,
            Page,
            Created,
            BatchCreated,
            Problem,
            KeyRequestIn,
            NewCredential,
            Credential,
            AuditEvent,
        ],
        ref_template=_REF,
    )
    admin_problems = _problems(400, *_GUARDED)
    ingest_body = {
        "oneOf": [
            _ref("LogEntryIn"),
            {"type": "array", "items": _ref("LogEntryIn"), "minItems": 1, "maxItems": 10_000},
            {
                "type": "object",
                "properties": {"logs": {"type": "array", "items": _ref("LogEntryIn")}},
                "required": ["logs"],
                "additionalProperties": False,
            },
        ]
    }
    read = {
        "parameters": _READ_PARAMS,
        "responses": {"200": _json(_ref("Page"), "newest entries first"), **_problems(400, *_GUARDED, 503)},
    }
    status = {"200": _json({"type": "object"}, "status")}
    health: dict[str, Any] = {"security": [], "responses": {**status, **_problems(*_GUARDED)}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "Simple Log Service", "version": __version__},
        "paths": {
            "/logs": {
                "post": {
                    "operationId": "ingest",
                    "summary": "Store one entry or a batch (atomic), durably",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {"schema": ingest_body},
                            "application/x-ndjson": {
                                "schema": {"type": "string", "description": "one entry per line"}
                            },
                        },
                    },
                    "responses": {
                        "201": {
                            "description": "stored durably",
                            "content": {
                                "application/json": {
                                    "schema": {"oneOf": [_ref("Created"), _ref("BatchCreated")]}
                                }
                            },
                        },
                        **_problems(400, *_GUARDED, 408, 413, 415, 503, 507),
                    },
                },
                "get": {"operationId": "list_logs", "summary": "Same as /logs/recent", **read},
            },
            "/logs/recent": {
                "get": {"operationId": "recent_logs", "summary": "Newest entries first", **read}
            },
            "/logs/{log_id}": {
                "get": {
                    "operationId": "get_log",
                    "parameters": [
                        {
                            "name": "log_id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string", "format": "uuid"},
                        }
                    ],
                    "responses": {
                        "200": _json(_ref("LogEntry"), "the entry"),
                        **_problems(400, *_GUARDED, 404, 503),
                    },
                }
            },
            "/healthz": {"get": {"operationId": "healthz", "summary": "The process is up", **health}},
            "/readyz": {
                "get": {
                    "operationId": "readyz",
                    "summary": "The store takes writes",
                    **health,
                    "responses": {**status, **_problems(*_GUARDED, 503)},
                }
            },
            "/metrics": {
                "get": {
                    "operationId": "metrics",
                    "summary": "Prometheus metrics",
                    "responses": {
                        "200": {
                            "description": "text exposition format",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        },
                        **_problems(*_GUARDED),
                    },
                }
            },
            "/openapi.json": {"get": {"operationId": "openapi", "summary": "This document", **health}},
            "/admin/keys": {
                "get": {
                    "operationId": "list_keys",
                    "summary": "Credentials, without their secrets (admin)",
                    "responses": {
                        "200": _json({"type": "array", "items": _ref("Credential")}, "credentials"),
                        **admin_problems,
                    },
                },
                "post": {
                    "operationId": "create_key",
                    "summary": "Create a credential; its secrets are in this answer only (admin)",
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref("KeyRequestIn")}},
                    },
                    "responses": {
                        "201": _json(_ref("NewCredential"), "the new credential"),
                        **admin_problems,
                        **_problems(408, 413, 415),
                    },
                },
            },
            "/admin/keys/{access_key_id}": {
                "delete": {
                    "operationId": "revoke_key",
                    "summary": "Revoke a credential at once (admin)",
                    "parameters": [
                        {
                            "name": "access_key_id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        }
                    ],
                    "responses": {
                        "200": _json(_ref("Credential"), "the revoked credential"),
                        **admin_problems,
                        **_problems(404, 409),
                    },
                }
            },
            "/admin/audit": {
                "get": {
                    "operationId": "audit",
                    "summary": "The audit trail, newest first (admin)",
                    "parameters": [
                        _param(
                            "limit",
                            f"events to return, 1-{MAX_LIMIT}",
                            {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": 100},
                        )
                    ],
                    "responses": {
                        "200": _json({"type": "array", "items": _ref("AuditEvent")}, "events"),
                        **admin_problems,
                    },
                }
            },
        },
        "components": {
            "schemas": components,
            "securitySchemes": {
                "sigv4": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "Authorization",
                    "description": "AWS Signature Version 4, service execute-api",
                },
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "API key (lsk_...) or OIDC token",
                },
            },
        },
        "security": [{"sigv4": []}, {"bearer": []}],
    }
