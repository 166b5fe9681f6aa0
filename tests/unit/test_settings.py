"""Settings: each layer overrides the one before, and a bad value names the setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from logsvc.errors import ConfigError
from logsvc.settings import Settings, load_settings, settings_environment


def test_defaults() -> None:
    settings = load_settings(environ={})
    assert (settings.host, settings.port, settings.workers) == ("127.0.0.1", 8080, 1)
    assert settings.store_url.startswith("sqlite:////")
    assert settings.store_url.endswith("/logsvc/logs.db")


def test_layers_file_then_environment_then_flags(tmp_path: Path) -> None:
    config = tmp_path / "logsvc.toml"
    config.write_text('port = 9000\nhost = "127.0.0.2"\nworkers = 3\nlog_level = "debug"\n')
    environ = {"LOGSVC_PORT": "9001", "LOGSVC_WORKERS": "2"}
    settings = load_settings(config, environ=environ, overrides={"workers": 4, "host": None})
    assert (settings.host, settings.port, settings.workers, settings.log_level) == (
        "127.0.0.2",
        9001,
        4,
        "debug",
    )


def test_config_file_from_environment(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("port = 9100\n")
    assert load_settings(environ={"LOGSVC_CONFIG": str(config)}).port == 9100


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"LOGSVC_PROT": "1"}, "unknown setting LOGSVC_PROT"),
        ({"LOGSVC_PORT": "eighty"}, "port"),
        ({"LOGSVC_PORT": "70000"}, "port"),
        ({"LOGSVC_MAX_MESSAGE_BYTES": str(2 * 1024 * 1024)}, "max_message_bytes"),
        ({"LOGSVC_LOG_LEVEL": "loud"}, "log_level"),
    ],
)
def test_bad_values_name_the_setting(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(environ=environ)


def test_bad_config_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_settings(tmp_path / "missing.toml", environ={})
    broken = tmp_path / "broken.toml"
    broken.write_text("port = = 1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(broken, environ={})
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("colour = 1")
    with pytest.raises(ConfigError, match="colour"):
        load_settings(unknown, environ={})


def test_environment_round_trip_for_worker_processes() -> None:
    settings = load_settings(environ={}, overrides={"port": 1234, "access_log": True, "data_dir": "/tmp/x"})
    assert load_settings(environ=settings_environment(settings)) == settings


def test_every_setting_is_documented() -> None:
    doc = (Path(__file__).parents[2] / "docs" / "configuration.md").read_text()
    for name in Settings.__struct_fields__:
        assert f"`{name}`" in doc, f"docs/configuration.md does not describe {name}"
        assert f"`LOGSVC_{name.upper()}`" in doc
