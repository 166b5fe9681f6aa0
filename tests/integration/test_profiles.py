"""Several servers on one machine share the client credentials file: each first start saves its admin
credential in a profile of its own, and the client commands pick a server by profile."""

from __future__ import annotations

import configparser
import json
import subprocess
from pathlib import Path

from tests.conftest import ServerProcess, make_settings, run_logsvc


def profiles_in(path: Path) -> configparser.ConfigParser:
    profiles = configparser.ConfigParser(interpolation=None)
    profiles.read(path)
    return profiles


def messages(result: subprocess.CompletedProcess[str]) -> list[str]:
    assert result.returncode == 0, result.stderr
    return [entry["message"] for entry in json.loads(result.stdout)["logs"]]


def test_a_second_data_dir_saves_its_own_profile_and_leaves_the_first(tmp_path: Path) -> None:
    shared = tmp_path / "credentials"
    first = ServerProcess(tmp_path / "a", env={"LOGSVC_CREDENTIALS_FILE": str(shared)})
    second = ServerProcess(tmp_path / "b", env={"LOGSVC_CREDENTIALS_FILE": str(shared)})
    try:
        first.start()
        default = dict(profiles_in(shared)["default"])
        second.start()
        name = f"127.0.0.1-{second.port}"
        profiles = profiles_in(shared)
        assert profiles.sections() == ["default", name]
        assert dict(profiles["default"]) == default
        assert default["endpoint"] == first.url
        assert profiles[name]["endpoint"] == second.url
        assert profiles[name]["api_key"] != default["api_key"]
        assert f"Saved as profile 'default' in {shared}" in first.log_path.read_text()
        told = second.log_path.read_text()
        assert f"Saved as profile '{name}' in {shared}" in told
        assert f"--profile {name} or LOGSVC_PROFILE={name}" in told

        # The README's recipe still finds the first server's API key.
        token = subprocess.run(
            ["bash", "-c", f"sed -n 's/^api_key = //p' {shared} | head -n 1"],
            capture_output=True,
            text=True,
            check=True,
        )
        assert token.stdout.strip() == default["api_key"]

        client = make_settings(tmp_path / "client", credentials_file=str(shared))
        assert run_logsvc(client, "send", "to the first").returncode == 0
        sent = run_logsvc(client, "send", "to the second", "--profile", name)
        assert sent.returncode == 0, sent.stderr
        assert messages(run_logsvc(client, "recent", "--json")) == ["to the first"]
        assert messages(run_logsvc(client, "recent", "--json", "--profile", name)) == ["to the second"]
        by_variable = make_settings(tmp_path / "client", credentials_file=str(shared), profile=name)
        assert messages(run_logsvc(by_variable, "recent", "--json", "--limit", "5")) == ["to the second"]
    finally:
        first.kill()
        second.kill()
