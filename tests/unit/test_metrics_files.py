"""With several workers, each worker's request counts are plain numbers written to a file of its own; a
scrape writes its own first and adds up every worker's file."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from logsvc.api.metrics import Metrics


def _posts(text: str) -> float:
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "logsvc_http_requests_total" and sample.labels.get("route") == "/logs"
    )


@pytest.fixture
def metrics_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    return tmp_path


def test_a_scrape_counts_its_own_requests_at_once_and_the_other_workers_from_their_files(
    metrics_dir: Path,
) -> None:
    other, this = Metrics(), Metrics()  # two workers' metrics (one process here; each has its own file)
    for _ in range(3):
        other.observe_request("POST", "/logs", 201, 0.002)
    other.exposition()  # a scrape of the other worker writes its counts, as its timer does every second
    this.observe_request("POST", "/logs", 201, 0.002)
    assert _posts(this.exposition().decode()) == 4
    assert len(list(metrics_dir.glob("counted_v1_*.json"))) == 2


def test_an_unreadable_counts_file_is_skipped_not_a_failed_scrape(
    metrics_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (metrics_dir / "counted_v1_1_0badc0de.json").write_bytes(b"not the counts")
    metrics = Metrics()
    metrics.observe_request("POST", "/logs", 201, 0.002)
    with caplog.at_level(logging.WARNING, logger="logsvc.api"):
        assert _posts(metrics.exposition().decode()) == 1
    assert "skipped the request counts" in caplog.text
