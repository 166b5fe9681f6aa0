"""The ASGI application factory. State (the store) is opened in the lifespan, never at import time."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import msgspec
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect

from logsvc.api.metrics import Metrics, MetricsMiddleware
from logsvc.api.openapi import openapi_document
from logsvc.api.problems import handle_error
from logsvc.api.routes import starlette_routes
from logsvc.api.security import SecurityMiddleware
from logsvc.archive import Archiver
from logsvc.auth.authenticator import Authenticator
from logsvc.auth.jwt import JwtVerifier
from logsvc.auth.refusals import RefusalAudit
from logsvc.auth.store import open_credentials
from logsvc.crypto import store_key
from logsvc.datadir import DataDir
from logsvc.domain.retention import retention_rules
from logsvc.endpoints import ENDPOINTS
from logsvc.errors import ConfigError, LogServiceError
from logsvc.jobs import JobsLease
from logsvc.routing import Endpoint
from logsvc.service import AdminService, LogService, Retention
from logsvc.settings import Settings, load_settings
from logsvc.storage.open import open_store
from logsvc.storage.port import LogStore, exportable

__all__ = ["create_app", "create_app_from_environment", "retention_for"]

log = logging.getLogger("logsvc.app")


def create_app(
    settings: Settings, store: LogStore | None = None, *, endpoints: Sequence[Endpoint] = ENDPOINTS
) -> Starlette:
    """The app serving ``endpoints`` (the route table). With ``store`` given, the caller owns it; otherwise it
    is opened from settings and closed (after every accepted write is committed) when the app shuts down."""
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        own_store = store is None
        key = store_key(settings)
        active = store or open_store(
            settings.store_url,
            read_threads=settings.read_threads,
            on_commit=metrics.committed,
            key=key,
            retention=retention_rules(settings.retention_days, settings.retention_by_service),
        )
        auth = open_credentials(settings)
        app.state.service = LogService(
            active, settings.limits, observer=metrics, decode_threads=settings.decode_threads
        )
        app.state.admin = AdminService(auth)
        app.state.refusals = RefusalAudit(auth)
        app.state.authenticator = Authenticator(
            auth,
            region=settings.sigv4_region,
            service=settings.sigv4_service,
            jwt=_jwt_verifier(settings),
            replay_guard=settings.sigv4_replay_guard,
        )
        retention = retention_for(settings, active)
        archiver = _archiver(settings, active, key)
        lease = JobsLease(DataDir(settings.data_dir).jobs_lock)
        if lease.try_take():
            await retention.check()
        background = asyncio.create_task(_run_jobs(lease, retention, archiver, app.state.admin, settings))
        try:
            yield
        finally:
            background.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await background
            if archiver is not None and lease.held:
                await archiver.final_segment()  # what was committed until shutdown is archived too
            lease.release()
            auth.close()
            if own_store:
                await active.close()

    app = Starlette(
        routes=starlette_routes(endpoints),
        middleware=[
            Middleware(MetricsMiddleware, metrics=metrics),
            Middleware(SecurityMiddleware, settings=settings),
        ],
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
    app.state.openapi = msgspec.json.encode(openapi_document(endpoints))
    return app


async def _run_jobs(
    lease: JobsLease, retention: Retention, archiver: Archiver | None, admin: AdminService, settings: Settings
) -> None:
    """The background jobs, once this process holds the data directory's lease (see ``logsvc.jobs``)."""
    while not lease.try_take():
        await asyncio.sleep(settings.retention_sweep_seconds)
    log.info("process %d runs the background jobs of %s", os.getpid(), lease.path.parent)
    async with asyncio.TaskGroup() as jobs:
        jobs.create_task(retention.run_forever(settings.retention_sweep_seconds))
        jobs.create_task(admin.expire_audit_forever(settings.retention_sweep_seconds))
        if archiver is not None:
            jobs.create_task(archiver.run_forever(settings.archive_seconds))


def retention_for(settings: Settings, store: LogStore) -> Retention:
    return Retention(
        store,
        default_days=settings.retention_days,
        by_service=settings.retention_by_service,
        protection=settings.deletion_protection,
        applied_file=DataDir(settings.data_dir).retention,
    )


def _archiver(settings: Settings, store: LogStore, key: bytes | None) -> Archiver | None:
    if not settings.archive_dir:
        return None
    if key is None:
        raise ConfigError("archiving needs encryption: archive segments are encrypted with the store key")
    return Archiver(
        exportable(store),
        key,
        Path(settings.archive_dir),
        keyring=DataDir(settings.data_dir).keyring,
        window_days=settings.archive_window_days,
    )


def _jwt_verifier(settings: Settings) -> JwtVerifier | None:
    if not settings.jwt_issuer:
        return None
    return JwtVerifier(
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        jwks_url=settings.jwt_jwks_url or None,
        jwks_file=settings.jwt_jwks_file or None,
        role_claim=settings.jwt_role_claim,
        service_claim=settings.jwt_service_claim,
    )


def create_app_from_environment() -> Starlette:
    """Factory for worker processes, which receive their settings as LOGSVC_* variables."""
    return create_app(load_settings())
