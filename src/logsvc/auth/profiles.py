"""The client credentials file: INI profiles like the AWS CLI's, mode 0600, read by our CLI and SDK."""

from __future__ import annotations

import configparser
import os
from pathlib import Path

from logsvc.auth.credentials import NewCredential

__all__ = ["write_profile"]


def write_profile(path: Path, profile: str, *, endpoint: str, credential: NewCredential) -> None:
    """Add or replace one profile, keeping the others; the file is created 0600 and never widened."""
    parser = configparser.ConfigParser(interpolation=None)
    if path.exists():
        parser.read(path)
    parser[profile] = {
        "endpoint": endpoint,
        "access_key_id": credential.access_key_id,
        "secret_access_key": credential.secret_access_key,
        "api_key": credential.api_key,
    }
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)
    with os.fdopen(descriptor, "w") as file:
        parser.write(file)
