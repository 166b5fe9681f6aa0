"""The composition root's life: a refused start leaves nothing open; one failing background job stops
neither itself nor the others."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import msgspec
import pytest

from logsvc.auth.policy import Principal, Role
from logsvc.domain.queries import Query
from logsvc.errors import ConfigError, StoreUnavailable
from logsvc.jobs import JobsLease
from logsvc.root import Root, _every
from tests.conftest import make_settings

ADMIN = Principal(id="test", roles=frozenset({Role.ADMIN}))


def test_a_start_refused_by_deletion_protection_leaves_nothing_open(tmp_path: Path) -> None:
    data = tmp_path / "data"

    async def write_an_old_entry() -> None:
        root = Root(make_settings(data))
        await root.start()
        old = {"message": "a year ago", "timestamp": time.time() - 365 * 86_400}
        await root.log_service().ingest(msgspec.json.encode(old), {}, principal=ADMIN)
        await root.stop()

    asyncio.run(write_an_old_entry())
    refused = Root(make_settings(data, retention_days=30))

    with pytest.raises(ConfigError, match="deletion_protection is on"):
        asyncio.run(refused.start())
    other = JobsLease(refused.data_dir.jobs_lock)
    assert other.try_take()  # the refused start released the lease
    other.release()
    # ... and closed its store: the next root opens it and finds the entry.
    again = Root(make_settings(data))

    async def count() -> int:
        try:
            return (await again.store().recent(Query())).count
        finally:
            await again.close()

    assert asyncio.run(count()) == 1


def test_a_failing_job_is_logged_and_tried_again(caplog: pytest.LogCaptureFixture) -> None:
    calls: list[int] = []

    async def flaky() -> int:
        calls.append(len(calls))
        if len(calls) == 1:
            raise RuntimeError("the disk is on fire")
        if len(calls) == 2:
            raise StoreUnavailable("busy")
        return 1

    async def run() -> None:
        job = asyncio.create_task(_every(0.01, "flaky job", flaky, "did %d things"))
        deadline = time.monotonic() + 30
        while len(calls) < 4 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        job.cancel()
        with pytest.raises(asyncio.CancelledError):
            await job

    caplog.set_level("INFO", logger="logsvc.root")
    asyncio.run(run())
    assert len(calls) >= 4
    assert "flaky job failed, next try in 0.01 s" in caplog.text
    assert "RuntimeError: the disk is on fire" in caplog.text
    assert "flaky job failed, next try in 0.01 s: busy" in caplog.text
    assert "flaky job: did 1 things" in caplog.text
