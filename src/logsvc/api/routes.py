"""HTTP routes: parse the request, call the service, encode the answer. No business rules here."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from logsvc.api.body import is_ndjson, read_body
from logsvc.errors import RequestTimeout
from logsvc.service import Created, LogService
from logsvc.settings import Settings

__all__ = ["ROUTES"]


def _json(content: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        msgspec.json.encode(content), status_code=status, media_type="application/json", headers=headers
    )


def _service(request: Request) -> LogService:
    service: LogService = request.app.state.service
    return service


async def ingest(request: Request) -> Response:
    settings: Settings = request.app.state.settings
    ndjson = is_ndjson(request)
    try:
        async with asyncio.timeout(settings.body_timeout):
            body = await read_body(
                request,
                max_bytes=settings.max_body_bytes,
                max_decompressed_bytes=settings.max_decompressed_bytes,
            )
    except TimeoutError:
        raise RequestTimeout(f"the body did not arrive within {settings.body_timeout:g} seconds") from None
    result = await _service(request).ingest(body, ndjson=ndjson)
    headers = {"Location": f"/logs/{result.log_id}"} if isinstance(result, Created) else None
    return _json(result, 201, headers)


async def recent(request: Request) -> Response:
    return _json(await _service(request).recent(request.query_params.multi_items()))


async def get_entry(request: Request) -> Response:
    return _json(await _service(request).get(request.path_params["log_id"]))


async def healthz(request: Request) -> Response:
    return _json({"status": "ok"})


async def readyz(request: Request) -> Response:
    await _service(request).store.check_writable()
    return _json({"status": "ready"})


async def metrics(request: Request) -> Response:
    return Response(request.app.state.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)


async def openapi(request: Request) -> Response:
    return Response(request.app.state.openapi, media_type="application/json")


ROUTES = [
    Route("/logs", ingest, methods=["POST"], name="ingest"),
    Route("/logs", recent, methods=["GET"], name="list_logs"),
    Route("/logs/recent", recent, methods=["GET"], name="recent_logs"),
    Route("/logs/{log_id}", get_entry, methods=["GET"], name="get_log"),
    Route("/healthz", healthz, methods=["GET"], name="healthz"),
    Route("/readyz", readyz, methods=["GET"], name="readyz"),
    Route("/metrics", metrics, methods=["GET"], name="metrics"),
    Route("/openapi.json", openapi, methods=["GET"], name="openapi"),
]
