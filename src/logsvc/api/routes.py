"""HTTP routes: parse the request, call the service, encode the answer. No business rules here.

Every route is declared with the permission it needs (``PERMISSIONS``); the guard in ``_route`` enforces it
before the handler runs, so a route cannot be added without saying who may call it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from logsvc.api.body import receive_body
from logsvc.api.security import BODY_KEY, PRINCIPAL_KEY, client_address
from logsvc.auth.policy import Permission, Principal
from logsvc.content import decode_content
from logsvc.errors import AuthenticationFailed, Forbidden
from logsvc.service import AdminService, Created, LogService
from logsvc.settings import Settings

__all__ = ["PERMISSIONS", "ROUTES"]

Handler = Callable[[Request, Principal], Awaitable[Response]]
PERMISSIONS: dict[str, Permission] = {}
# Who a public route sees when the caller sent no credentials.
_NOBODY = Principal(id="nobody", roles=frozenset())


def _json(content: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        msgspec.json.encode(content), status_code=status, media_type="application/json", headers=headers
    )


def _route(path: str, method: str, name: str, permission: Permission, handler: Handler) -> Route:
    async def endpoint(request: Request) -> Response:
        principal: Principal | None = request.scope.get(PRINCIPAL_KEY)
        if permission is not Permission.PUBLIC:
            if principal is None:
                raise AuthenticationFailed(
                    "send credentials: an AWS Signature V4, or Authorization: Bearer <API key or OIDC token>",
                    code="missing_authentication_token",
                )
            try:
                principal.require(permission)
            except Forbidden as exc:
                request.app.state.authenticator.store.record_denied(
                    actor=principal.id,
                    target=f"{method} {path}",
                    source=client_address(request.scope),
                    detail=exc.detail,
                )
                raise
        response = await handler(request, principal or _NOBODY)
        if permission is Permission.ADMIN:
            # New secrets, the credential list, the audit trail: no cache on the way may keep them.
            response.headers["Cache-Control"] = "no-store"
        return response

    PERMISSIONS[name] = permission
    return Route(path, endpoint, methods=[method], name=name)


def _service(request: Request) -> LogService:
    service: LogService = request.app.state.service
    return service


def _admin(request: Request) -> AdminService:
    admin: AdminService = request.app.state.admin
    return admin


async def _sent_body(request: Request) -> bytes:
    settings: Settings = request.app.state.settings
    raw: bytes | None = request.scope.get(BODY_KEY)
    if raw is None:
        raw = await receive_body(
            request.receive, request.headers, max_bytes=settings.max_body_bytes, timeout=settings.body_timeout
        )
    return raw


async def _body(request: Request) -> bytes:
    settings: Settings = request.app.state.settings
    raw = await _sent_body(request)
    return decode_content(raw, request.headers, max_decompressed_bytes=settings.max_decompressed_bytes)


async def ingest(request: Request, principal: Principal) -> Response:
    result = await _service(request).ingest(await _sent_body(request), request.headers, principal=principal)
    headers = {"Location": f"/logs/{result.log_id}"} if isinstance(result, Created) else None
    return _json(result, 201, headers)


async def recent(request: Request, principal: Principal) -> Response:
    return _json(await _service(request).recent(request.query_params.multi_items(), principal=principal))


async def get_entry(request: Request, principal: Principal) -> Response:
    return _json(await _service(request).get(request.path_params["log_id"], principal=principal))


# The admin routes call the credential store, which blocks (SQLite, DynamoDB over the network): threads.


async def list_keys(request: Request, principal: Principal) -> Response:
    return _json(await asyncio.to_thread(_admin(request).list_keys))


async def create_key(request: Request, principal: Principal) -> Response:
    body, source = await _body(request), client_address(request.scope)
    made = await asyncio.to_thread(_admin(request).create_key, body, principal=principal, source=source)
    return _json(made, 201)


async def revoke_key(request: Request, principal: Principal) -> Response:
    key_id, source = request.path_params["access_key_id"], client_address(request.scope)
    return _json(
        await asyncio.to_thread(_admin(request).revoke_key, key_id, principal=principal, source=source)
    )


async def audit(request: Request, principal: Principal) -> Response:
    return _json(await asyncio.to_thread(_admin(request).audit, request.query_params.multi_items()))


async def healthz(request: Request, principal: Principal) -> Response:
    return _json({"status": "ok"})


async def readyz(request: Request, principal: Principal) -> Response:
    await _service(request).store.check_writable()
    return _json({"status": "ready"})


async def metrics(request: Request, principal: Principal) -> Response:
    return Response(request.app.state.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)


async def openapi(request: Request, principal: Principal) -> Response:
    return Response(request.app.state.openapi, media_type="application/json")


ROUTES = [
    _route("/logs", "POST", "ingest", Permission.INGEST, ingest),
    _route("/logs", "GET", "list_logs", Permission.READ, recent),
    _route("/logs/recent", "GET", "recent_logs", Permission.READ, recent),
    _route("/logs/{log_id}", "GET", "get_log", Permission.READ, get_entry),
    _route("/admin/keys", "GET", "list_keys", Permission.ADMIN, list_keys),
    _route("/admin/keys", "POST", "create_key", Permission.ADMIN, create_key),
    _route("/admin/keys/{access_key_id}", "DELETE", "revoke_key", Permission.ADMIN, revoke_key),
    _route("/admin/audit", "GET", "audit", Permission.ADMIN, audit),
    _route("/healthz", "GET", "healthz", Permission.PUBLIC, healthz),
    _route("/readyz", "GET", "readyz", Permission.PUBLIC, readyz),
    _route("/metrics", "GET", "metrics", Permission.READ, metrics),
    _route("/openapi.json", "GET", "openapi", Permission.PUBLIC, openapi),
]
