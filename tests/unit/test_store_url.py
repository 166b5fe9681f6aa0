"""A store URL names one engine wherever it is read: settings, the adapter choice, backups."""

from __future__ import annotations

from pathlib import Path

import pytest

from logsvc.errors import ConfigError
from logsvc.settings import Settings
from logsvc.store_url import engine_of, sqlite_path, sqlite_url, tiered_path, tiered_url


@pytest.mark.parametrize(
    ("url", "engine"),
    [
        ("sqlite:///logs.db", "sqlite"),
        ("sqlite:////var/lib/logsvc/logs.db", "sqlite"),
        ("tiered:///logs-v2", "tiered"),
        ("TIERED:////srv/logs-v2", "tiered"),
        ("dynamodb://logs?region=eu-west-1", "dynamodb"),
        ("postgres://db/logs", None),
        ("logs.db", None),
        ("", None),
    ],
)
def test_engine_of_a_url_is_its_scheme(url: str, engine: str | None) -> None:
    assert engine_of(url) == engine


def test_urls_of_paths_round_trip(tmp_path: Path) -> None:
    assert sqlite_path(sqlite_url(tmp_path / "logs.db")) == tmp_path / "logs.db"
    assert tiered_path(tiered_url(tmp_path / "logs-v2")) == tmp_path / "logs-v2"
    with pytest.raises(ConfigError, match="is a tiered store, not an sqlite file"):
        sqlite_path(tiered_url(tmp_path))


def test_default_store_follows_the_engine_setting(tmp_path: Path) -> None:
    assert engine_of(Settings(data_dir=str(tmp_path)).store_url) == "sqlite"
    tiered = Settings(data_dir=str(tmp_path), store_engine="tiered").store_url
    assert tiered_path(tiered) == (tmp_path / "logs-v2").resolve()


def test_tiered_engine_refuses_another_engines_url(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="store_engine = tiered takes an empty store or a tiered"):
        Settings(data_dir=str(tmp_path), store_engine="tiered", store="sqlite:///x.db")
    Settings(data_dir=str(tmp_path), store_engine="tiered", store="Tiered:///x")
