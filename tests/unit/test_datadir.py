"""The layout of a data directory, named in one place: operators' docs and backups depend on these names."""

from __future__ import annotations

from pathlib import Path

from logsvc.datadir import DataDir


def test_every_file_of_a_data_directory_is_named_once(tmp_path: Path) -> None:
    files = DataDir(tmp_path / "data")
    root = (tmp_path / "data").resolve()
    assert (files.logs, files.auth, files.keyring, files.keyring_next) == (
        root / "logs.db",
        root / "auth.db",
        root / "keyring.json",
        root / "keyring.json.next",
    )
    assert (files.retention, files.jobs_lock, files.metrics) == (
        root / "retention.json",
        root / "jobs.lock",
        root / "metrics",
    )
    assert DataDir.DATABASES == ("logs.db", "logs-v2/hot.db", "logs-v2/cold.db", "auth.db")
