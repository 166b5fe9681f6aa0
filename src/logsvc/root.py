"""The composition root: the one place where the service's parts are built from ``Settings``.

``Root(settings)`` opens, on first use, the log store, the credential service, the use cases and the
background jobs. The server serves the ASGI stack that ``logsvc.api.app.create_app`` builds around a root
(its lifespan calls ``start`` and ``stop``); the Lambda handlers take ``log_service()`` over their DynamoDB
store; the CLI takes the store, the credentials or the admin service it needs. No other module wires these
parts together.

Nothing heavy is imported here at module level: the Lambda package imports this module and carries no
SQLite, Starlette or cryptography.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

from logsvc.datadir import DataDir
from logsvc.domain.retention import retention_rules
from logsvc.errors import ConfigError, LogServiceError
from logsvc.jobs import JobsLease
from logsvc.service import AdminService, IngestObserver, LogService, Retention
from logsvc.settings import Settings
from logsvc.storage.open import open_store
from logsvc.storage.port import LogStore, OnCommit, exportable
from logsvc.store_url import engine_of
from logsvc.tail import TailHub, TailLimits

if TYPE_CHECKING:
    from logsvc.archive import Archiver
    from logsvc.auth.authenticator import Authenticator
    from logsvc.auth.credential_service import CredentialService

__all__ = ["Root"]

log = logging.getLogger("logsvc.root")


class Root:
    """Everything the service is made of, for one ``Settings``. With ``store`` given the caller owns it;
    otherwise it is opened from the settings and closed by ``close``. ``observer`` and ``on_commit`` let
    the server's metrics count ingests and commits; ``shared_writer`` names the socket of the writer that the
    worker processes of ``serve --workers N`` share."""

    def __init__(
        self,
        settings: Settings,
        *,
        store: LogStore | None = None,
        observer: IngestObserver | None = None,
        on_commit: OnCommit | None = None,
        shared_writer: str | None = None,
    ) -> None:
        self.settings = settings
        self.data_dir = DataDir(settings.data_dir)
        self._store = store
        self._own_store = store is None
        self._observer = observer
        self._on_commit = on_commit
        self._shared_writer = shared_writer
        self._credentials: CredentialService | None = None
        self._log_service: LogService | None = None
        self._admin: AdminService | None = None
        self._tail: TailHub | None = None
        self._lease = JobsLease(self.data_dir.jobs_lock)
        self._jobs: asyncio.Task[None] | None = None
        self._archiver: Archiver | None = None

    # ---- parts, each built once on first use --------------------------------------------------------------

    def store(self) -> LogStore:
        if self._store is None:
            settings = self.settings
            url = settings.store_url
            self._store = open_store(
                url,
                read_threads=settings.read_threads,
                on_commit=self._on_commit,
                key=None if engine_of(url) == "dynamodb" else self._data_key(),
                retention=retention_rules(settings.retention_days, settings.retention_by_service),
                shared_writer=self._shared_writer,
            )
        return self._store

    def _data_key(self) -> bytes | None:
        """The key of the databases in the data directory. A DynamoDB table is encrypted by its own KMS key,
        and a Lambda function has neither these files nor the master key, nor the packages that read them:
        so they are imported only here."""
        from logsvc.crypto import store_key  # noqa: PLC0415

        return store_key(self.settings)

    def credentials(self) -> CredentialService:
        if self._credentials is None:
            from logsvc.auth.open import open_credentials  # noqa: PLC0415 (SQLite or boto3: when asked for)

            self._credentials = open_credentials(self.settings)
        return self._credentials

    def log_service(self) -> LogService:
        if self._log_service is None:
            self._log_service = LogService(
                self.store(),
                self.settings.limits,
                observer=self._observer,
                decode_threads=self.settings.decode_threads,
                on_stored=self.tail_hub().wake,
            )
        return self._log_service

    def tail_hub(self) -> TailHub:
        if self._tail is None:
            settings = self.settings
            self._tail = TailHub(
                self.store(),
                TailLimits(
                    streams=settings.tail_streams,
                    streams_per_credential=settings.tail_streams_per_credential,
                    queue_entries=settings.tail_queue_entries,
                    queue_bytes=settings.tail_queue_bytes,
                    heartbeat_seconds=settings.tail_heartbeat_seconds,
                    poll_seconds=settings.tail_poll_seconds,
                    stream_seconds=settings.tail_stream_seconds,
                ),
            )
        return self._tail

    def admin(self) -> AdminService:
        if self._admin is None:
            self._admin = AdminService(self.credentials())
        return self._admin

    def authenticator(self) -> Authenticator:
        from logsvc.auth.authenticator import Authenticator  # noqa: PLC0415
        from logsvc.auth.jwt import JwtVerifier  # noqa: PLC0415

        settings = self.settings
        jwt = None
        if settings.jwt_issuer:
            jwt = JwtVerifier(
                issuer=settings.jwt_issuer,
                audience=settings.jwt_audience,
                jwks_url=settings.jwt_jwks_url or None,
                jwks_file=settings.jwt_jwks_file or None,
                role_claim=settings.jwt_role_claim,
                service_claim=settings.jwt_service_claim,
            )
        return Authenticator(
            self.credentials(),
            region=settings.sigv4_region,
            service=settings.sigv4_service,
            jwt=jwt,
            jwt_default_roles=settings.jwt_default_roles,
            replay_guard=settings.sigv4_replay_guard,
        )

    def retention(self) -> Retention:
        settings = self.settings
        return Retention(
            self.store(),
            default_days=settings.retention_days,
            by_service=settings.retention_by_service,
            protection=settings.deletion_protection,
            applied_file=self.data_dir.retention,
        )

    def archiver(self) -> Archiver | None:
        settings = self.settings
        if not settings.archive_dir:
            return None
        key = self._data_key()
        if key is None:
            raise ConfigError("archiving needs encryption: archive segments are encrypted with the store key")
        from logsvc.archive import Archiver  # noqa: PLC0415

        return Archiver(
            exportable(self.store()),
            key,
            Path(settings.archive_dir),
            keyring=self.data_dir.keyring,
            window_days=settings.archive_window_days,
        )

    # ---- the server's life --------------------------------------------------------------------------------

    async def start(self) -> None:
        """Open everything and start the background jobs. The retention check (which refuses to start when
        deletion protection would be broken) and the jobs run in the one process holding the data
        directory's lease; another takes them over when it exits (see ``logsvc.jobs``). A start that fails
        leaves nothing open."""
        try:
            self.log_service()
            self.admin()
            retention = self.retention()
            self._archiver = self.archiver()
            if self._lease.try_take():
                await retention.check()
        except BaseException:
            self._lease.release()
            await self.close()
            raise
        self._jobs = asyncio.create_task(self._run_jobs(retention))

    async def _run_jobs(self, retention: Retention) -> None:
        interval = self.settings.retention_sweep_seconds
        sweeping: Retention | None = retention
        if not self._lease.held:
            while not self._lease.try_take():
                await asyncio.sleep(interval)
            try:
                await retention.check()  # what the first holder checked at its start, checked again
            except ConfigError as exc:
                log.error("retention is not applied: %s", exc)
                sweeping = None
        log.info("process %d runs the background jobs of %s", os.getpid(), self.data_dir.root)
        admin = self.admin()
        async with asyncio.TaskGroup() as jobs:
            if sweeping is not None:
                jobs.create_task(
                    _every(interval, "retention sweep", sweeping.sweep, "deleted %d expired entries")
                )
            jobs.create_task(
                _every(interval, "audit retention", admin.expire_audit, "deleted %d audit records")
            )
            if self._archiver is not None:
                archive = self._archiver.archive_once
                jobs.create_task(
                    _every(self.settings.archive_seconds, "archiving", archive, None, first_wait=True)
                )

    async def stop(self) -> None:
        """Stop the jobs, archive what was committed (if this process archives), and close everything."""
        try:
            if self._jobs is not None:
                self._jobs.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._jobs
                self._jobs = None
            if self._archiver is not None and self._lease.held:
                await self._archiver.final_segment()
        finally:
            self._lease.release()
            await self.close()

    async def close(self) -> None:
        """End the tail streams, release the credential service and, when this root opened it, the store."""
        if self._tail is not None:
            await self._tail.stop()
            self._tail = None
        if self._credentials is not None:
            self._credentials.close()
            self._credentials = None
        if self._own_store and self._store is not None:
            await self._store.close()
            self._store = None
        self._log_service = None
        self._admin = None


async def _every(
    interval: float,
    name: str,
    job: Callable[[], Awaitable[int]],
    done: str | None,
    *,
    first_wait: bool = False,
) -> None:
    """Run ``job`` every ``interval`` seconds for ever. A failure of any kind is logged and tried again
    next time: one job failing (a busy or full disk) must neither stop the others nor end its own loop."""
    if first_wait:
        await asyncio.sleep(interval)
    while True:
        try:
            count = await job()
            if done is not None and count:
                log.info("%s: " + done, name, count)
        except LogServiceError as exc:
            log.warning("%s failed, next try in %g s: %s", name, interval, exc.detail)
        except Exception:
            log.exception("%s failed, next try in %g s", name, interval)
        await asyncio.sleep(interval)
