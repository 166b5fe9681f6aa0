"""The ASGI application factory. State (the store) is opened in the lifespan, never at import time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import msgspec
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect

from logsvc.api.metrics import Metrics, MetricsMiddleware
from logsvc.api.openapi import openapi_document
from logsvc.api.problems import handle_error
from logsvc.api.routes import ROUTES
from logsvc.errors import LogServiceError
from logsvc.service import LogService
from logsvc.settings import Settings, load_settings
from logsvc.storage import LogStore, open_store

__all__ = ["create_app", "create_app_from_environment"]


def create_app(settings: Settings, store: LogStore | None = None) -> Starlette:
    """The app. With ``store`` given, the caller owns it; otherwise it is opened from settings and closed
    (after every accepted write is committed) when the app shuts down."""
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        own_store = store is None
        active = store or open_store(
            settings.store_url, read_threads=settings.read_threads, on_commit=metrics.committed
        )
        app.state.service = LogService(active, settings.limits, observer=metrics)
        try:
            yield
        finally:
            if own_store:
                await active.close()

    app = Starlette(
        routes=ROUTES,
        middleware=[Middleware(MetricsMiddleware, metrics=metrics)],
        exception_handlers={
            Exception: handle_error,
            HTTPException: handle_error,
            LogServiceError: handle_error,
            ClientDisconnect: handle_error,
        },
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.openapi = msgspec.json.encode(openapi_document())
    return app


def create_app_from_environment() -> Starlette:
    """Factory for worker processes, which receive their settings as LOGSVC_* variables."""
    return create_app(load_settings())
