"""Running the HTTP server: one process, or several sharing the port, each with its own store handle."""

from __future__ import annotations

import asyncio
import logging
import logging.config
import os
import shutil
from pathlib import Path
from typing import Any

import uvicorn

from logsvc.api import create_app
from logsvc.logs import log_config
from logsvc.settings import Settings, settings_environment
from logsvc.storage import open_store

__all__ = ["check_store", "serve"]

log = logging.getLogger("logsvc.server")


def check_store(settings: Settings) -> None:
    """Open and close the store once, so that a bad path or URL fails here, clearly, before serving."""

    async def probe() -> None:
        store = open_store(settings.store_url, read_threads=1)
        try:
            await store.check_writable()
        finally:
            await store.close()

    asyncio.run(probe())


def serve(settings: Settings) -> None:
    logging.config.dictConfig(log_config(settings.log_level))
    check_store(settings)
    log.warning(
        "authentication is not enabled in this version: anyone who can reach %s:%d can write and read logs",
        settings.host,
        settings.port,
    )
    log.info("store: %s", settings.store_url)
    common: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "log_config": log_config(settings.log_level),
        "access_log": settings.access_log,
        "timeout_graceful_shutdown": int(settings.shutdown_timeout),
        "loop": "uvloop",
        "http": "httptools",
        "server_header": False,
        "ws": "none",
    }
    if settings.workers == 1:
        uvicorn.run(create_app(settings), **common)
        return
    # Workers are separate processes that rebuild the app from the environment; metrics go through files
    # so that a scrape of any worker reports the whole server.
    metrics_dir = Path(settings.data_dir) / "metrics"
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True, mode=0o700)
    os.environ.update(settings_environment(settings))
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    uvicorn.run("logsvc.api:create_app_from_environment", factory=True, workers=settings.workers, **common)
