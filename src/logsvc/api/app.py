"""The ASGI application: the Starlette stack around a ``Root``, whose parts are opened in the lifespan,
never at import time."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import msgspec
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect

from logsvc.api.metrics import Metrics, MetricsMiddleware
from logsvc.api.openapi import openapi_document
from logsvc.api.problems import handle_error
from logsvc.api.routes import starlette_routes
from logsvc.api.security import SecurityMiddleware
from logsvc.auth.refusals import RefusalAudit
from logsvc.connection import SHUTDOWN_HOOK
from logsvc.endpoints import ENDPOINTS
from logsvc.errors import LogServiceError
from logsvc.root import Root
from logsvc.routing import Endpoint, Services
from logsvc.service import LogService
from logsvc.settings import Settings, load_settings
from logsvc.storage.port import LogStore
from logsvc.syslog_listener import SyslogListener

__all__ = ["asgi_app", "create_app", "create_app_from_environment"]


def create_app(
    settings: Settings, store: LogStore | None = None, *, endpoints: Sequence[Endpoint] = ENDPOINTS
) -> Starlette:
    """The app of a new ``Root`` of ``settings`` (with ``store`` given, the caller owns it)."""
    metrics = Metrics()
    root = Root(settings, store=store, observer=metrics, on_commit=metrics.committed)
    return asgi_app(root, endpoints, metrics=metrics)


def asgi_app(
    root: Root, endpoints: Sequence[Endpoint] | None = None, *, metrics: Metrics | None = None
) -> Starlette:
    """The Starlette stack serving ``endpoints`` (default: the route table) with ``root``'s parts."""
    endpoints = ENDPOINTS if endpoints is None else endpoints
    metrics = metrics or Metrics()
    openapi = msgspec.json.encode(openapi_document(endpoints))

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        await root.start()
        service = root.log_service()

        async def log() -> LogService:
            return service

        app.state.services = Services(
            settings=root.settings,
            log=log,
            tail=root.tail_hub(),
            admin=root.admin(),
            metrics=lambda: (metrics.exposition(), CONTENT_TYPE_LATEST),
            openapi=openapi,
        )
        app.state.refusals = RefusalAudit(root.credentials())
        app.state.authenticator = root.authenticator()
        syslog = SyslogListener(root.settings, service, metrics) if root.settings.syslog_port else None
        try:
            if syslog is not None:
                await syslog.start()
            yield {SHUTDOWN_HOOK: root.tail_hub().close}
        finally:
            if syslog is not None:
                await syslog.stop()  # what it read is committed before the store closes
            await root.stop()

    app = Starlette(
        routes=starlette_routes(endpoints),
        middleware=[
            Middleware(MetricsMiddleware, metrics=metrics),
            Middleware(SecurityMiddleware, settings=root.settings),
        ],
        exception_handlers={
            Exception: handle_error,
            HTTPException: handle_error,
            LogServiceError: handle_error,
            ClientDisconnect: handle_error,
        },
        lifespan=lifespan,
    )
    app.state.settings = root.settings
    app.state.root = root
    return app


def create_app_from_environment() -> Starlette:
    """Factory for worker processes, which receive their settings as LOGSVC_* variables."""
    return create_app(load_settings())
