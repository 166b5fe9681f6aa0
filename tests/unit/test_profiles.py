"""Which profile of the shared client credentials file a server's first start writes."""

from __future__ import annotations

import configparser
import stat
from pathlib import Path

from logsvc.auth.credential_service import NewCredential
from logsvc.auth.policy import Role
from logsvc.auth.profiles import SavedProfile, save_server_profile, write_profile


def credential(n: int) -> NewCredential:
    return NewCredential(f"AKID{n}", f"secret{n}", f"lsk_{n}_x", (Role.ADMIN,), (), None)


def profiles_in(path: Path) -> dict[str, dict[str, str]]:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(path)
    return {name: dict(parser[name]) for name in parser.sections()}


def test_the_first_server_gets_default_in_a_private_file(tmp_path: Path) -> None:
    path = tmp_path / "config" / "credentials"
    saved = save_server_profile(
        path, endpoint="http://127.0.0.1:8080", data_dir="/a", credential=credential(1)
    )
    assert saved == SavedProfile(name="default", replaced=False)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert profiles_in(path)["default"] == {
        "endpoint": "http://127.0.0.1:8080",
        "access_key_id": "AKID1",
        "secret_access_key": "secret1",
        "api_key": "lsk_1_x",
        "data_dir": "/a",
    }


def test_other_servers_get_profiles_named_after_them_and_never_take_one(tmp_path: Path) -> None:
    path = tmp_path / "credentials"
    save_server_profile(path, endpoint="http://127.0.0.1:8080", data_dir="/a", credential=credential(1))
    other_port = save_server_profile(
        path, endpoint="http://127.0.0.1:8081", data_dir="/b", credential=credential(2)
    )
    same_port = save_server_profile(
        path, endpoint="http://127.0.0.1:8081", data_dir="/c", credential=credential(3)
    )
    assert other_port == SavedProfile(name="127.0.0.1-8081", replaced=False)
    assert same_port == SavedProfile(name="127.0.0.1-8081-2", replaced=False)
    keys = {name: p["access_key_id"] for name, p in profiles_in(path).items()}
    assert keys == {"default": "AKID1", "127.0.0.1-8081": "AKID2", "127.0.0.1-8081-2": "AKID3"}


def test_a_server_starting_anew_replaces_only_its_own_profile(tmp_path: Path) -> None:
    """A first start happens again once the server's admin credential is revoked or expired (or its data
    directory was made anew): the profile it wrote before holds a credential that no longer works."""
    path = tmp_path / "credentials"
    save_server_profile(path, endpoint="http://127.0.0.1:8080", data_dir="/a", credential=credential(1))
    save_server_profile(path, endpoint="http://127.0.0.1:8081", data_dir="/b", credential=credential(2))
    again = save_server_profile(
        path, endpoint="http://127.0.0.1:8081", data_dir="/b", credential=credential(3)
    )
    assert again == SavedProfile(name="127.0.0.1-8081", replaced=True)
    keys = {name: p["access_key_id"] for name, p in profiles_in(path).items()}
    assert keys == {"default": "AKID1", "127.0.0.1-8081": "AKID3"}


def test_a_profile_of_unknown_origin_is_kept(tmp_path: Path) -> None:
    """A default written by hand, or by an older version (no data_dir), may belong to any server."""
    path = tmp_path / "credentials"
    write_profile(path, "payments", endpoint="http://127.0.0.1:8080", credential=credential(1))
    write_profile(path, "default", endpoint="http://127.0.0.1:8080", credential=credential(2))
    saved = save_server_profile(
        path, endpoint="http://127.0.0.1:8080", data_dir="/a", credential=credential(3)
    )
    assert saved == SavedProfile(name="127.0.0.1-8080", replaced=False)
    assert [p["access_key_id"] for p in profiles_in(path).values()] == ["AKID2", "AKID1", "AKID3"]


def test_default_comes_first_so_the_readme_recipe_finds_it(tmp_path: Path) -> None:
    path = tmp_path / "credentials"
    write_profile(path, "payments", endpoint="http://127.0.0.1:8080", credential=credential(1))
    save_server_profile(path, endpoint="http://127.0.0.1:8080", data_dir="/a", credential=credential(2))
    assert list(profiles_in(path)) == ["default", "payments"]
    first_key = next(line for line in path.read_text().splitlines() if line.startswith("api_key = "))
    assert first_key == "api_key = lsk_2_x"
