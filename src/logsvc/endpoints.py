"""The route table: every route of the service, declared once (see ``logsvc.routing``).

The HTTP server (``logsvc.api.routes``), the OpenAPI document (``logsvc.api.openapi``) and the Lambda
functions (``logsvc.aws.handlers``) are derived from ``ENDPOINTS``. Operations stay thin: parse the request,
call the service, encode the answer; the rules live in the services.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Mapping
from typing import Annotated, Any

import msgspec

from logsvc.auth.policy import Permission
from logsvc.content import check_json, decode_content, is_otlp_json
from logsvc.domain.compat import (
    COGNITO_PREFIX,
    FUNCTION_URL_PREFIX,
    CognitoReadParameters,
    cognito_created,
    cognito_entry,
    cognito_items,
    cognito_query,
    function_url_entry,
    function_url_log,
    function_url_logs,
    function_url_query,
)
from logsvc.domain.context import ContextParameters
from logsvc.domain.esbulk import bulk_response, license_document, version_document
from logsvc.domain.mapping import IngestParameters
from logsvc.domain.otlp import PROTOBUF, otlp_response
from logsvc.domain.queries import MAX_LIMIT, ReadParameters
from logsvc.domain.stats import ServicesParameters, StatsParameters
from logsvc.routing import Answer, Call, Endpoint, json_answer, json_response, schema_ref
from logsvc.service import Created
from logsvc.viewer import MEDIA_TYPES, SECURITY_HEADERS, UI_PATH, asset

__all__ = ["ENDPOINTS", "AuditParameters"]


class AuditParameters(msgspec.Struct, frozen=True):
    """The audit trail's query-string parameters, as documented; ``AdminService.audit`` holds the rules."""

    limit: Annotated[
        int, msgspec.Meta(ge=1, le=MAX_LIMIT, description=f"events to return, 1-{MAX_LIMIT}")
    ] = 100


async def ingest(call: Call) -> Answer:
    service = await call.services.log()
    result = await service.ingest(
        await call.body(), call.headers, principal=call.principal, params=call.query
    )
    headers = {"Location": f"/logs/{result.log_id}"} if isinstance(result, Created) else None
    return json_answer(result, 201, headers)


async def ingest_otlp(call: Call) -> Answer:
    service = await call.services.log()
    result = await service.ingest_otlp(await call.body(), call.headers, principal=call.principal)
    as_json = is_otlp_json(call.headers)
    body = otlp_response(result.rejected, result.error_message, as_json=as_json)
    return Answer(200, body, "application/json" if as_json else PROTOBUF)


async def ingest_loki(call: Call) -> Answer:
    service = await call.services.log()
    await service.ingest_loki(await call.body(), call.headers, principal=call.principal)
    return Answer(204, b"", "")


# Elasticsearch's clients (Logstash's, and those of the 8.x languages) refuse a server without this header.
_ELASTIC_PRODUCT = {"X-Elastic-Product": "Elasticsearch"}


async def ingest_bulk(call: Call) -> Answer:
    started = time.monotonic()
    service = await call.services.log()
    index = call.path_params.get("index")
    result = await service.ingest_bulk(await call.body(), call.headers, index=index, principal=call.principal)
    took_ms = int((time.monotonic() - started) * 1000)
    body = bulk_response(result.items, result.outcomes, took_ms)
    return Answer(200, body, "application/json", dict(_ELASTIC_PRODUCT))


async def es_version(call: Call) -> Answer:
    return json_answer(version_document(), headers=dict(_ELASTIC_PRODUCT))


async def es_license(call: Call) -> Answer:
    return json_answer(license_document(), headers=dict(_ELASTIC_PRODUCT))


async def es_cluster_health(call: Call) -> Answer:
    return json_answer({"cluster_name": "logsvc", "status": "green"}, headers=dict(_ELASTIC_PRODUCT))


async def recent(call: Call) -> Answer:
    service = await call.services.log()
    return Answer(200, await service.recent_json(call.query, principal=call.principal), "application/json")


# The stream's answer: no cache may keep it, and no proxy buffer it (nginx reads X-Accel-Buffering).
_STREAM_HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}


def _accepts_stream(headers: Mapping[str, str]) -> bool:
    accept = headers.get("accept", "")
    return any(part.split(";")[0].strip().lower() == "text/event-stream" for part in accept.split(","))


async def tail(call: Call) -> Answer:
    """Server-Sent Events when the client accepts them and this shape can stream (not a Lambda), else the
    polling page: one route, one set of rules, and the client tells the two apart by the media type."""
    service = await call.services.log()
    request = await service.tail_request(
        call.query, principal=call.principal, last_event_id=call.headers.get("last-event-id")
    )
    if call.services.tail is None or not _accepts_stream(call.headers):
        return json_answer(await service.tail_page(request))
    stream = await call.services.tail.open(
        request, call.principal.id, functools.partial(call.services.still_usable, call.principal)
    )
    return Answer(200, b"", "text/event-stream", dict(_STREAM_HEADERS), stream=stream)


async def get_entry(call: Call) -> Answer:
    service = await call.services.log()
    log_id = call.path_params["log_id"]
    return json_answer(await service.get(log_id, principal=call.principal, params=call.query))


# The older clients' shapes (logsvc.domain.compat): the same service, their bodies translated.


async def function_url_ingest(call: Call) -> Answer:
    service = await call.services.log()
    entry = await service.ingest_one(
        await call.body(), call.headers, to_entry=function_url_entry, principal=call.principal
    )
    return json_answer(function_url_log(entry), 201)


async def function_url_recent(call: Call) -> Answer:
    service = await call.services.log()
    return json_answer(
        function_url_logs(await service.page(function_url_query(call.query), principal=call.principal))
    )


async def cognito_ingest(call: Call) -> Answer:
    service = await call.services.log()
    entry = await service.ingest_one(
        await call.body(), call.headers, to_entry=cognito_entry, principal=call.principal
    )
    return json_answer(cognito_created(entry), 201)


async def cognito_list(call: Call) -> Answer:
    service = await call.services.log()
    return json_answer(cognito_items(await service.page(cognito_query(call.query), principal=call.principal)))


async def stats(call: Call) -> Answer:
    service = await call.services.log()
    return json_answer(await service.stats(call.query, principal=call.principal))


async def list_services(call: Call) -> Answer:
    service = await call.services.log()
    return json_answer(await service.services(call.query, principal=call.principal))


async def context(call: Call) -> Answer:
    service = await call.services.log()
    log_id = call.path_params["log_id"]
    return json_answer(await service.context(log_id, call.query, principal=call.principal))


# The admin routes call the credential store, which blocks (SQLite, DynamoDB over the network): threads.


async def list_keys(call: Call) -> Answer:
    admin = call.services.admin_service()
    return json_answer(await asyncio.to_thread(admin.list_keys, call.principal, call.query))


async def create_key(call: Call) -> Answer:
    limit = call.services.settings.max_decompressed_bytes
    check_json(call.headers)
    body = decode_content(await call.body(), call.headers, max_decompressed_bytes=limit)
    admin = call.services.admin_service()
    made = await asyncio.to_thread(
        admin.create_key, body, principal=call.principal, source=call.source, params=call.query
    )
    return json_answer(made, 201)


async def revoke_key(call: Call) -> Answer:
    admin, key_id = call.services.admin_service(), call.path_params["access_key_id"]
    return json_answer(
        await asyncio.to_thread(
            admin.revoke_key, key_id, principal=call.principal, source=call.source, params=call.query
        )
    )


async def audit(call: Call) -> Answer:
    return json_answer(
        await asyncio.to_thread(call.services.admin_service().audit, call.query, principal=call.principal)
    )


async def healthz(call: Call) -> Answer:
    return json_answer({"status": "ok"})


async def readyz(call: Call) -> Answer:
    await (await call.services.log()).store.check_writable()
    return json_answer({"status": "ready"})


async def metrics(call: Call) -> Answer:
    body, media_type = call.services.exposition()
    return Answer(200, body, media_type)


async def openapi(call: Call) -> Answer:
    return Answer(200, call.services.openapi, "application/json")


async def viewer(call: Call) -> Answer:
    found = asset(call.path_params.get("file", ""))
    return Answer(200, found.body, found.media_type, dict(SECURITY_HEADERS))


# With a mapping parameter (message_field, ...) any JSON objects: one, an array of them, or NDJSON lines.
_MAPPED_BODY = {
    "description": "with a mapping parameter: any object, or an array of objects",
    "oneOf": [
        {"type": "object"},
        {"type": "array", "items": {"type": "object"}, "minItems": 1, "maxItems": 10_000},
    ],
}
_INGEST_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "anyOf": [
                    {
                        "oneOf": [
                            schema_ref("LogEntryIn"),
                            {
                                "type": "array",
                                "items": schema_ref("LogEntryIn"),
                                "minItems": 1,
                                "maxItems": 10_000,
                            },
                            {
                                "type": "object",
                                "properties": {"logs": {"type": "array", "items": schema_ref("LogEntryIn")}},
                                "required": ["logs"],
                                "additionalProperties": False,
                            },
                        ]
                    },
                    _MAPPED_BODY,
                ]
            }
        },
        "application/x-ndjson": {"schema": {"type": "string", "description": "one entry per line"}},
    },
}
_OTLP_MESSAGE = {
    "type": "string",
    "format": "binary",
    "description": "opentelemetry.proto.collector.logs.v1 ExportLogsService{Request,Response}",
}
_OTLP_JSON = {"type": "object", "description": "the same message in OTLP's JSON mapping"}
_OTLP_BODY = {
    "required": True,
    "content": {PROTOBUF: {"schema": _OTLP_MESSAGE}, "application/json": {"schema": _OTLP_JSON}},
}
_OTLP_ANSWER = {
    "description": "the valid records stored durably; partialSuccess counts the rejected ones",
    "content": _OTLP_BODY["content"],
}
_LOKI_BODY = {
    "required": True,
    "content": {
        PROTOBUF: {
            "schema": {
                "type": "string",
                "format": "binary",
                "description": "logproto.PushRequest (Loki's push.proto), snappy-compressed (block format)",
            }
        },
        "application/json": {
            "schema": {
                "type": "object",
                "description": 'Loki\'s JSON push: {"streams": [{"stream": {labels}, "values": '
                '[["<epoch ns>", "<line>", {structured metadata}], ...]}]}',
                "required": ["streams"],
            }
        },
    },
}
_BULK_BODY = {
    "required": True,
    "content": {
        media_type: {
            "schema": {
                "type": "string",
                "description": "action lines, each but delete's followed by its source document",
            }
        }
        for media_type in ("application/x-ndjson", "application/json")
    },
}
_BULK_ANSWER = json_response(
    {
        "type": "object",
        "properties": {
            "took": {"type": "integer"},
            "errors": {"type": "boolean"},
            "items": {"type": "array", "items": {"type": "object"}},
        },
        "required": ["took", "errors", "items"],
    },
    "the valid items stored durably (status 201), the others refused one by one (status 400)",
)


def _json_body(schema: str) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema_ref(schema)}}}


_CREATED = json_response({"oneOf": [schema_ref("Created"), schema_ref("BatchCreated")]}, "stored durably")
_PAGE = {"200": json_response(schema_ref("Page"), "newest entries first")}
_TAIL = {
    "200": {
        "description": (
            "with Accept: text/event-stream (not on Lambda), Server-Sent Events: `entry` events (id: the "
            'cursor, data: the entry), `dropped` events ({"dropped": n}), `: heartbeat` comments; '
            "otherwise the polling page: entries after the cursor, oldest first"
        ),
        "content": {
            "text/event-stream": {"schema": {"type": "string"}},
            "application/json": {"schema": schema_ref("TailPage")},
        },
    }
}


_LOG_ID = {"type": "string", "format": "uuid"}
_STATUS = {"200": json_response({"type": "object"}, "status")}
_VIEWER_FILE = {
    "description": "a file of the web viewer, with a strict Content-Security-Policy",
    "content": {
        media_type.split(";", 1)[0]: {"schema": {"type": "string"}} for media_type in MEDIA_TYPES.values()
    },
}
_EXPOSITION = {
    "description": "text exposition format",
    "content": {"text/plain": {"schema": {"type": "string"}}},
}


def _read(path: str, name: str, summary: str) -> Endpoint:
    return Endpoint(
        path=path,
        method="GET",
        name=name,
        permission=Permission.READ,
        operation=recent,
        function="read",
        summary=summary,
        query=ReadParameters,
        answers=_PAGE,
        problems=(400, 503),
    )


def _list(item: str, description: str) -> dict[str, Any]:
    return json_response({"type": "array", "items": schema_ref(item)}, description)


ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint(
        path="/logs",
        method="POST",
        name="ingest",
        permission=Permission.INGEST,
        operation=ingest,
        function="ingest",
        summary="Store one entry or a batch (atomic), durably; any JSON with a mapping of its fields",
        query=IngestParameters,
        request_body=_INGEST_BODY,
        answers={"201": _CREATED},
        problems=(400, 408, 413, 415, 503, 507),
    ),
    Endpoint(
        path="/v1/logs",
        method="POST",
        name="ingest_otlp",
        permission=Permission.INGEST,
        operation=ingest_otlp,
        function="ingest",
        summary="OTLP/HTTP logs (protobuf or JSON): each valid record stored durably, the others rejected",
        request_body=_OTLP_BODY,
        answers={"200": _OTLP_ANSWER},
        problems=(400, 408, 413, 415, 503, 507),
    ),
    Endpoint(
        path="/loki/api/v1/push",
        method="POST",
        name="ingest_loki",
        permission=Permission.INGEST,
        operation=ingest_loki,
        function="ingest",
        summary="Loki's push API (protobuf with snappy, or JSON): the valid entries stored durably; "
        "any refused are named in a 400",
        request_body=_LOKI_BODY,
        answers={"204": {"description": "every entry stored durably"}},
        problems=(400, 408, 413, 415, 503, 507),
    ),
    Endpoint(
        path="/_bulk",
        method="POST",
        name="ingest_bulk",
        permission=Permission.INGEST,
        operation=ingest_bulk,
        summary="Elasticsearch's bulk API: each valid item stored durably, the others refused per item",
        request_body=_BULK_BODY,
        answers={"200": _BULK_ANSWER},
        problems=(400, 408, 413, 415, 503, 507),
    ),
    Endpoint(
        path="/{index}/_bulk",
        method="POST",
        name="ingest_bulk_index",
        permission=Permission.INGEST,
        operation=ingest_bulk,
        summary="Elasticsearch's bulk API, the index (a service name, if it is a valid one) in the path",
        request_body=_BULK_BODY,
        answers={"200": _BULK_ANSWER},
        problems=(400, 408, 413, 415, 503, 507),
    ),
    Endpoint(
        path="/",
        method="GET",
        name="es_version",
        permission=Permission.INGEST,
        operation=es_version,
        summary="The version document Elasticsearch's agents read before they send (an 8.x cluster)",
        answers=_STATUS,
        browsers=UI_PATH,
    ),
    Endpoint(
        path="/_license",
        method="GET",
        name="es_license",
        permission=Permission.INGEST,
        operation=es_license,
        summary="An active basic license: the license check of Filebeat",
        answers=_STATUS,
    ),
    Endpoint(
        path="/_cluster/health",
        method="GET",
        name="es_cluster_health",
        permission=Permission.INGEST,
        operation=es_cluster_health,
        summary="Green: the health check of Vector's elasticsearch sink",
        answers=_STATUS,
    ),
    _read("/logs", "list_logs", "Same as /logs/recent"),
    _read("/logs/recent", "recent_logs", "Newest entries first"),
    Endpoint(
        path="/logs/tail",
        method="GET",
        name="tail_logs",
        permission=Permission.READ,
        operation=tail,
        function="read",
        summary="New entries as they commit: a stream (SSE), or a page after a cursor (polling)",
        query=ReadParameters,
        answers=_TAIL,
        problems=(400, 503),
    ),
    Endpoint(
        path="/logs/stats",
        method="GET",
        name="log_stats",
        permission=Permission.READ,
        operation=stats,
        function="read",
        summary="Entries counted per time bucket, by level or by service, with the filters of GET /logs",
        query=StatsParameters,
        answers={"200": json_response(schema_ref("Stats"), "every bucket of the window, oldest first")},
        problems=(400, 503),
    ),
    Endpoint(
        path="/services",
        method="GET",
        name="list_services",
        permission=Permission.READ,
        operation=list_services,
        function="read",
        summary="A page of the services the credential may read, by name, with entry counts and newest entry",
        query=ServicesParameters,
        answers={"200": json_response(schema_ref("ServiceList"), "services holding entries, by name")},
        problems=(400, 503),
    ),
    Endpoint(
        path="/logs/{log_id}",
        method="GET",
        name="get_log",
        permission=Permission.READ,
        operation=get_entry,
        function="read",
        path_schemas={"log_id": _LOG_ID},
        answers={"200": json_response(schema_ref("LogEntry"), "the entry")},
        problems=(400, 404, 503),
    ),
    Endpoint(
        path="/logs/{log_id}/context",
        method="GET",
        name="log_context",
        permission=Permission.READ,
        operation=context,
        function="read",
        summary="One entry with the entries of its service just before and just after it",
        query=ContextParameters,
        path_schemas={"log_id": _LOG_ID},
        answers={"200": json_response(schema_ref("Context"), "before + [entry] + after reads in time order")},
        problems=(400, 404, 503),
    ),
    Endpoint(
        path=f"{FUNCTION_URL_PREFIX}/logs",
        method="POST",
        name="function_url_ingest",
        permission=Permission.INGEST,
        operation=function_url_ingest,
        summary="An older function-URL client's entry, stored durably as service function-url",
        request_body=_json_body("FunctionUrlEntryIn"),
        answers={"201": json_response(schema_ref("FunctionUrlLog"), "stored durably")},
        problems=(400, 408, 413, 415, 503, 507),
    ),
    Endpoint(
        path=f"{FUNCTION_URL_PREFIX}/logs/recent",
        method="GET",
        name="function_url_recent",
        permission=Permission.READ,
        operation=function_url_recent,
        summary="The newest 100 entries of service function-url, in the older function-URL clients' shape",
        answers={"200": json_response(schema_ref("FunctionUrlLogs"), "newest entries first")},
        problems=(400, 503),
    ),
    Endpoint(
        path=f"{COGNITO_PREFIX}/logs",
        method="POST",
        name="cognito_ingest",
        permission=Permission.INGEST,
        operation=cognito_ingest,
        function="ingest",
        summary="An older Cognito client's entry (raw ID token accepted), stored durably as service cognito",
        request_body=_json_body("CognitoEntryIn"),
        answers={"201": json_response(schema_ref("CognitoCreated"), "stored durably")},
        problems=(400, 408, 413, 415, 503, 507),
    ),
    Endpoint(
        path=f"{COGNITO_PREFIX}/logs",
        method="GET",
        name="cognito_list",
        permission=Permission.READ,
        operation=cognito_list,
        function="read",
        summary="Entries of service cognito, newest first, in the older Cognito clients' shape",
        query=CognitoReadParameters,
        answers={"200": json_response(schema_ref("CognitoItems"), "newest entries first")},
        problems=(400, 503),
    ),
    Endpoint(
        path="/admin/keys",
        method="GET",
        name="list_keys",
        permission=Permission.ADMIN,
        operation=list_keys,
        summary="Credentials, without their secrets (admin)",
        answers={"200": _list("Credential", "credentials")},
        problems=(400,),
    ),
    Endpoint(
        path="/admin/keys",
        method="POST",
        name="create_key",
        permission=Permission.ADMIN,
        operation=create_key,
        summary="Create a credential; its secrets are in this answer only (admin)",
        request_body={
            "required": True,
            "content": {"application/json": {"schema": schema_ref("KeyRequestIn")}},
        },
        answers={"201": json_response(schema_ref("NewCredential"), "the new credential")},
        problems=(400, 408, 413, 415),
    ),
    Endpoint(
        path="/admin/keys/{access_key_id}",
        method="DELETE",
        name="revoke_key",
        permission=Permission.ADMIN,
        operation=revoke_key,
        summary="Revoke a credential at once (admin)",
        answers={"200": json_response(schema_ref("Credential"), "the revoked credential")},
        problems=(400, 404, 409),
    ),
    Endpoint(
        path="/admin/audit",
        method="GET",
        name="audit",
        permission=Permission.ADMIN,
        operation=audit,
        summary="The audit trail, newest first (admin)",
        query=AuditParameters,
        answers={"200": _list("AuditEvent", "events")},
        problems=(400,),
    ),
    Endpoint(
        path="/healthz",
        method="GET",
        name="healthz",
        permission=Permission.PUBLIC,
        operation=healthz,
        summary="The process is up",
        answers=_STATUS,
    ),
    Endpoint(
        path="/readyz",
        method="GET",
        name="readyz",
        permission=Permission.PUBLIC,
        operation=readyz,
        summary="The store takes writes",
        answers=_STATUS,
        problems=(503,),
    ),
    Endpoint(
        path="/metrics",
        method="GET",
        name="metrics",
        permission=Permission.READ,
        operation=metrics,
        summary="Prometheus metrics",
        answers={"200": _EXPOSITION},
    ),
    Endpoint(
        path=UI_PATH,
        method="GET",
        name="viewer",
        permission=Permission.PUBLIC,
        operation=viewer,
        summary="The web viewer (its page; it signs in with an API key, kept for the tab only)",
        answers={"200": _VIEWER_FILE},
    ),
    Endpoint(
        path=UI_PATH + "{file}",
        method="GET",
        name="viewer_file",
        permission=Permission.PUBLIC,
        operation=viewer,
        summary="A file of the web viewer (scripts, style sheet, icon)",
        path_schemas={"file": {"type": "string", "pattern": r"^[a-z0-9-]+\.[a-z]+$"}},
        answers={"200": _VIEWER_FILE},
        problems=(404,),
    ),
    Endpoint(
        path="/openapi.json",
        method="GET",
        name="openapi",
        permission=Permission.PUBLIC,
        operation=openapi,
        summary="This document",
        answers=_STATUS,
    ),
)
