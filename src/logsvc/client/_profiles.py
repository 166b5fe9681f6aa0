"""Profiles of the client credentials file that `logsvc serve` writes at first start (``auth/profiles.py``):
an endpoint, a SigV4 key pair and an API key, by name."""

from __future__ import annotations

import configparser
from pathlib import Path

import msgspec

from logsvc.client._auth import AwsCredentials
from logsvc.errors import ConfigError

__all__ = ["Profile", "load_profile"]


class Profile(msgspec.Struct, frozen=True):
    endpoint: str
    keys: AwsCredentials | None
    api_key: str | None


def load_profile(path: Path, name: str) -> Profile:
    """The profile ``name`` of the credentials file at ``path``; ``ConfigError`` saying what is missing."""
    parser = configparser.ConfigParser(interpolation=None)
    try:
        found = parser.read(path)
    except configparser.Error as exc:
        raise ConfigError(f"{path} is not a credentials file: {exc}") from None
    if not found:
        raise ConfigError(f"no credentials file at {path}: start the server once, or pass --endpoint")
    if name not in parser:
        raise ConfigError(
            f"{path} has no profile {name!r} (it has: {', '.join(parser.sections()) or 'none'})"
        )
    section = parser[name]
    keys = None
    if section.get("access_key_id") and section.get("secret_access_key"):
        keys = AwsCredentials(section["access_key_id"], section["secret_access_key"])
    return Profile(endpoint=section.get("endpoint", ""), keys=keys, api_key=section.get("api_key") or None)
