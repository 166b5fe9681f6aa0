"""The request and ingest counts, kept in plain numbers in a single process, follow prometheus_client's
switch of ``_created`` series as its own families do."""

from __future__ import annotations

from collections.abc import Iterator

import prometheus_client
import pytest
from prometheus_client import generate_latest

from logsvc.api.metrics import Metrics


@pytest.fixture
def created_off() -> Iterator[None]:
    prometheus_client.disable_created_metrics()
    try:
        yield
    finally:
        prometheus_client.enable_created_metrics()


def _exposition(metrics: Metrics) -> str:
    metrics.observe_request("POST", "/logs", 201, 0.002)
    metrics.ingested(3)
    metrics.rejected(1)
    return generate_latest(metrics.registry).decode()


@pytest.mark.usefixtures("created_off")
def test_no_created_series_when_prometheus_client_gives_none() -> None:
    text = _exposition(Metrics())
    assert "_created" not in text
    assert 'logsvc_http_requests_total{method="POST",route="/logs",status="201"} 1.0' in text
    assert "logsvc_entries_ingested_total 3.0" in text


def test_created_series_by_default_as_prometheus_client_gives_them() -> None:
    text = _exposition(Metrics())
    for family in ("logsvc_http_requests", "logsvc_http_request_duration_seconds", "logsvc_entries_ingested"):
        assert f"{family}_created" in text
    assert "logsvc_entries_rejected_created" in text  # prometheus_client's own family
