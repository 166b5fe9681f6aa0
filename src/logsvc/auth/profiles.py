"""The client credentials file: INI profiles like the AWS CLI's, mode 0600, read by our CLI and SDK.

Several servers (data directories) on one machine share the file. A server's first start saves its admin
credential under a profile of its own and never over another server's: profile ``default`` if it is free,
else one named after the server's address. Only the server's own earlier profile (same endpoint and data
directory; its admin credential is no longer usable, or there would have been no first start) is replaced.
"""

from __future__ import annotations

import configparser
import fcntl
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import msgspec

from logsvc.auth.records import NewCredential
from logsvc.errors import ConfigError

__all__ = ["DEFAULT_PROFILE", "SavedProfile", "save_server_profile", "write_profile"]

DEFAULT_PROFILE = "default"
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


class SavedProfile(msgspec.Struct, frozen=True):
    name: str
    replaced: bool  # the server's own earlier profile was there and now holds the new credential


@contextmanager
def _editing(path: Path) -> Iterator[configparser.ConfigParser]:
    """The file's profiles, to change in place; written back on success. An exclusive lock on the file makes
    two servers starting at once take turns instead of one dropping the other's profile."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    os.fchmod(descriptor, 0o600)
    with os.fdopen(descriptor, "r+") as file:
        fcntl.flock(file, fcntl.LOCK_EX)
        parser = configparser.ConfigParser(interpolation=None)
        try:
            parser.read_string(file.read(), source=str(path))
        except configparser.Error as exc:
            raise ConfigError(f"{path} is not a credentials file, so it was left as it is: {exc}") from None
        yield parser
        # ``default`` first: the README's recipe takes the first api_key of the file.
        ordered = configparser.ConfigParser(interpolation=None)
        for name in sorted(parser.sections(), key=lambda name: name != DEFAULT_PROFILE):
            ordered[name] = parser[name]
        file.seek(0)
        file.truncate()
        ordered.write(file)


def _section(endpoint: str, credential: NewCredential, data_dir: str | None) -> dict[str, str]:
    section = {
        "endpoint": endpoint,
        "access_key_id": credential.access_key_id,
        "secret_access_key": credential.secret_access_key,
        "api_key": credential.api_key,
    }
    return section | ({"data_dir": data_dir} if data_dir else {})


def write_profile(
    path: Path, profile: str, *, endpoint: str, credential: NewCredential, data_dir: str | None = None
) -> None:
    """Add or replace the named profile, keeping the others; the file is created 0600 and never widened."""
    with _editing(path) as parser:
        parser[profile] = _section(endpoint, credential, data_dir)


def save_server_profile(
    path: Path, *, endpoint: str, data_dir: str, credential: NewCredential
) -> SavedProfile:
    """Save a server's first-start credential under a profile that is free or already the server's own."""
    with _editing(path) as parser:
        own = [
            name
            for name in parser.sections()
            if parser[name].get("endpoint") == endpoint and parser[name].get("data_dir") == data_dir
        ]
        if own:
            name = DEFAULT_PROFILE if DEFAULT_PROFILE in own else own[0]
        elif DEFAULT_PROFILE not in parser:
            name = DEFAULT_PROFILE
        else:
            base = _UNSAFE_NAME.sub("-", endpoint.split("://", 1)[-1]).strip("-")
            name, suffix = base, 1
            while name in parser:
                suffix += 1
                name = f"{base}-{suffix}"
        parser[name] = _section(endpoint, credential, data_dir)
    return SavedProfile(name=name, replaced=bool(own))
