"""The ASGI application around a ``Root``, whose parts are opened in the lifespan,
never at import time."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import msgspec
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.datastructures import State
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from logsvc.api._asgi import PARTS_KEY, STATUS_KEY, Parts
from logsvc.api.metrics import Metrics
from logsvc.api.openapi import openapi_document
from logsvc.api.problems import error_response, handle_error, is_expected
from logsvc.api.routes import EndpointRouter, starlette_routes
from logsvc.api.security import SecurityMiddleware
from logsvc.auth.refusals import RefusalAudit
from logsvc.connection import SHUTDOWN_HOOK, tune_gc_for_serving
from logsvc.endpoints import ENDPOINTS
from logsvc.errors import LogServiceError
from logsvc.root import Root
from logsvc.routing import Endpoint, Services
from logsvc.service import LogService
from logsvc.settings import SHARED_WRITER_ENV, Settings, load_settings
from logsvc.storage.port import LogStore
from logsvc.syslog_listener import SyslogListener

__all__ = ["Application", "asgi_app", "create_app", "create_app_from_environment"]


def create_app(
    settings: Settings,
    store: LogStore | None = None,
    *,
    endpoints: Sequence[Endpoint] = ENDPOINTS,
    shared_writer: str | None = None,
) -> Application:
    """The app of a new ``Root`` of ``settings`` (with ``store`` given, the caller owns it)."""
    metrics = Metrics()
    root = Root(
        settings, store=store, observer=metrics, on_commit=metrics.committed, shared_writer=shared_writer
    )
    return asgi_app(root, endpoints, metrics=metrics)


def asgi_app(
    root: Root, endpoints: Sequence[Endpoint] | None = None, *, metrics: Metrics | None = None
) -> Application:
    """The ASGI app serving ``endpoints`` (default: the route table) with ``root``'s parts."""
    endpoints = ENDPOINTS if endpoints is None else endpoints
    metrics = metrics or Metrics()
    openapi = msgspec.json.encode(openapi_document(endpoints))

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        await root.start()
        service = root.log_service()

        async def log() -> LogService:
            return service

        services = Services(
            settings=root.settings,
            log=log,
            tail=root.tail_hub(),
            admin=root.admin(),
            metrics=lambda: (metrics.exposition(), CONTENT_TYPE_LATEST),
            openapi=openapi,
            still_usable=root.credentials().still_usable,
        )
        application.parts = Parts(
            settings=root.settings,
            services=services,
            refusals=RefusalAudit(root.credentials()),
            authenticator=root.authenticator(),
        )
        syslog = SyslogListener(root.settings, service, metrics) if root.settings.syslog_port else None
        metrics.start()
        try:
            if syslog is not None:
                await syslog.start()
            yield {SHUTDOWN_HOOK: root.tail_hub().close}
        finally:
            try:
                if syslog is not None:
                    await syslog.stop()  # what it read is committed before the store closes
                await root.stop()
            finally:
                await metrics.stop()

    routes = starlette_routes(endpoints)
    app = Starlette(
        routes=routes,
        exception_handlers={
            Exception: handle_error,
            HTTPException: handle_error,
            LogServiceError: handle_error,
            ClientDisconnect: handle_error,
        },
        lifespan=lifespan,
    )
    app.state.root = root
    # The lifespan above gives it its parts once the root has started.
    application = Application(app, EndpointRouter(endpoints, routes, app), metrics, root.settings)
    return application


class Application:
    """The ASGI app: every request timed and counted by route template (never by raw path: that is
    unbounded), authenticated (``SecurityMiddleware``) and dispatched by the endpoint router, in front of
    the Starlette app of the same routes, which keeps the lifespan, the state and every answer the router
    leaves to it (decision 26)."""

    def __init__(self, starlette: Starlette, router: ASGIApp, metrics: Metrics, settings: Settings) -> None:
        self.starlette = starlette
        self._metrics = metrics
        self._secured = SecurityMiddleware(router, settings=settings)
        # Made in the lifespan; requests come only after it started.
        self.parts: Parts | None = None

    @property
    def state(self) -> State:
        return self.starlette.state

    @property
    def routes(self) -> list[BaseRoute]:
        return self.starlette.routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.starlette(scope, receive, send)  # the lifespan
            return
        scope["app"] = self.starlette
        scope[PARTS_KEY] = self.parts
        start = time.perf_counter()
        try:
            await self._secured(scope, receive, send)
        except Exception as exc:
            if STATUS_KEY in scope:
                raise
            response = error_response(exc, scope["method"], scope["path"])
            scope[STATUS_KEY] = response.status_code
            await response(scope, receive, send)
            if not is_expected(exc):
                raise
        finally:
            route = scope.get("route")
            template = route.path if isinstance(route, Route) else "unmatched"
            self._metrics.observe_request(
                scope["method"], template, scope.get(STATUS_KEY, 500), time.perf_counter() - start
            )


def create_app_from_environment() -> Application:
    """Factory for worker processes, which receive their settings as LOGSVC_* variables, and the name of
    the socket of the writer they share in SHARED_WRITER_ENV."""
    app = create_app(load_settings(), shared_writer=os.environ.get(SHARED_WRITER_ENV))
    tune_gc_for_serving()
    return app
