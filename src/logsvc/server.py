"""Running the HTTP server: one process, or several sharing the port, each with its own store handle."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import logging.config
import os
import shutil
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

import uvicorn
from prometheus_client import values
from rich.console import Console

from logsvc.api import create_app
from logsvc.api.metrics import Metrics
from logsvc.auth.credential_service import NewCredential
from logsvc.auth.profiles import DEFAULT_PROFILE, SavedProfile, save_server_profile
from logsvc.connection import ServerConfig, tune_gc_for_serving
from logsvc.crypto import store_key
from logsvc.datadir import DataDir
from logsvc.display import untrusted
from logsvc.logs import log_config
from logsvc.root import Root
from logsvc.settings import SHARED_WRITER_ENV, Settings, settings_environment
from logsvc.storage.shared_writer import SharedWriter, serve_sqlite_writer
from logsvc.store_url import engine_of, sqlite_path
from logsvc.supervisor import SpreadWorkers, bind_worker_sockets
from logsvc.syslog_listener import probe_syslog_port

__all__ = ["bootstrap_admin", "check_store", "serve"]

log = logging.getLogger("logsvc.server")
_err = Console(stderr=True, highlight=False)


def _tls_context(config: uvicorn.Config, default: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
    """uvicorn's context from tls_cert/tls_key, with TLS 1.2 as the floor (it has no option for that)."""
    context = default()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def check_store(settings: Settings) -> None:
    """Open and close the store once, so that a bad path or URL (or a retention that deletion protection
    refuses) fails here, clearly, before serving."""

    async def probe() -> None:
        root = Root(settings)
        try:
            await root.store().check_writable()
            await root.retention().check()
        finally:
            await root.close()

    asyncio.run(probe())


def bootstrap_admin(settings: Settings) -> tuple[NewCredential, SavedProfile] | None:
    """On first start, create an admin credential and save it in a profile of the client credentials file
    that no other server uses. With a shared credential store, of replicas starting at once only one creates
    it (and writes the file)."""
    root = Root(settings)
    try:
        credential = root.credentials().bootstrap_admin(
            description="created at first start", actor="logsvc", source="local"
        )
    finally:
        asyncio.run(root.close())
    if credential is None:
        return None
    scheme = "https" if settings.tls_cert else "http"
    endpoint = f"{scheme}://{settings.host}:{settings.port}"
    saved = save_server_profile(
        Path(settings.credentials_file),
        endpoint=endpoint,
        data_dir=str(Path(settings.data_dir).resolve()),
        credential=credential,
    )
    return credential, saved


def _warn_about_exposure(settings: Settings) -> None:
    if settings.allow_anonymous:
        log.warning("ANONYMOUS ACCESS IS ON: anyone who can reach the port can write and read every log")
    try:
        loopback = ipaddress.ip_address(settings.host).is_loopback
    except ValueError:
        loopback = settings.host == "localhost"
    if not loopback and not settings.tls_cert:
        log.warning(
            "listening on %s without TLS: credentials and logs cross the network in clear text; "
            "set tls_cert and tls_key",
            settings.host,
        )
    if settings.syslog_port and not loopback:
        log.warning(
            "the syslog listener on %s:%d takes entries without credentials for services %s from anyone "
            "who can reach it%s: keep it on a trusted network",
            settings.host,
            settings.syslog_port,
            ", ".join(settings.syslog_services),
            "" if settings.syslog_tls else ", in clear text (syslog_tls encrypts TCP)",
        )


def serve(settings: Settings) -> None:
    # Whatever the server and its workers create is for this user only, also files made by libraries
    # (the metrics files of prometheus_client) that take no mode.
    os.umask(0o077)
    logging.config.dictConfig(log_config(settings.log_level))
    check_store(settings)
    if settings.syslog_port:
        probe_syslog_port(settings)
    first_start = bootstrap_admin(settings)
    if first_start is not None:
        credential, saved = first_start
        notice = (
            f"  access key id:     {credential.access_key_id}\n"
            f"  secret access key: {credential.secret_access_key}\n"
            f"  API key:           {credential.api_key}\n"
            f"Saved as profile '{saved.name}' in {settings.credentials_file} (mode 0600)"
        )
        if saved.replaced:
            notice += ", replacing this server's earlier admin credential"
        elif saved.name != DEFAULT_PROFILE:
            notice += f": profile '{DEFAULT_PROFILE}' belongs to another server"
        if saved.name != DEFAULT_PROFILE:
            notice += f". Use it with --profile {saved.name} or LOGSVC_PROFILE={saved.name}"
        # Printed once, to the terminal only: secrets never go into the service's log.
        _err.print(
            "[bold]First start: created an admin credential (shown only this once).[/]",
            untrusted(notice + "."),
            sep="\n",
            soft_wrap=True,  # a wrapped key cannot be copied
        )
    _warn_about_exposure(settings)
    log.info("store: %s", settings.store_url)
    common: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "log_config": log_config(settings.log_level),
        "access_log": settings.access_log,
        "timeout_graceful_shutdown": int(settings.shutdown_timeout),
        "loop": "uvloop",
        "server_header": False,
        "ws": "none",
        "max_header_bytes": settings.max_header_bytes,
        "header_timeout": settings.header_timeout,
        "forwarded_allow_ips": settings.forwarded_allow_ips,
    }
    if settings.tls_cert:
        common |= {
            "ssl_certfile": settings.tls_cert,
            "ssl_keyfile": settings.tls_key,
            "ssl_context_factory": _tls_context,
        }
    if settings.workers == 1:
        app = create_app(settings)
        tune_gc_for_serving()
        config = ServerConfig(app, **common)
        # Bound here and given to the server, as the workers' are: served by its own accepting (decision 50).
        uvicorn.Server(config).run(sockets=[config.bind_socket()])
        return
    # Workers are separate processes that rebuild the app from the environment; metrics go through files
    # so that a scrape of any worker reports the whole server.
    metrics_dir = DataDir(settings.data_dir).metrics
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True, mode=0o700)
    os.environ.update(settings_environment(settings))
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    config = ServerConfig(
        "logsvc.api:create_app_from_environment", factory=True, workers=settings.workers, **common
    )
    sockets = bind_worker_sockets(config, settings.workers)
    shared = _shared_writer(settings)
    try:
        SpreadWorkers(config, sockets).run()
    finally:
        if shared is not None:
            shared.stop()  # after the workers: their last requests are written and answered


def _shared_writer(settings: Settings) -> SharedWriter | None:
    """The workers' one writer of a SQLite store, in this process (decision 46); its socket is passed
    to them in SHARED_WRITER_ENV. Storage v2 keeps a writer per worker, taking turns."""
    if engine_of(settings.store_url) != "sqlite":
        return None
    # prometheus_client chose where its values live when imported, before PROMETHEUS_MULTIPROC_DIR was set
    # here; chosen again (no metric exists yet in this process), the commits counted here are in the files
    # that every worker's /metrics sums.
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
    shared = serve_sqlite_writer(sqlite_path(settings.store_url), store_key(settings), Metrics().committed)
    os.environ[SHARED_WRITER_ENV] = shared.name
    return shared
