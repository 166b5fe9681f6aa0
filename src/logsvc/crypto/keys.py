"""Where the master key comes from: a key file (0600, outside the data directory) or an environment variable.

The master key never encrypts data itself; it wraps the random database key (see envelope.py), as KMS
envelope encryption does, so that changing it only rewraps 60 bytes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from logsvc.errors import ConfigError

__all__ = ["KEY_BYTES", "MasterKey", "master_key_from", "write_key_file"]

KEY_BYTES = 32


@dataclass(frozen=True, slots=True)
class MasterKey:
    material: bytes
    source: str  # for messages: "key file /path" or "environment variable NAME"

    @property
    def fingerprint(self) -> str:
        """Names the key in messages and in the keyring without revealing it."""
        return hashlib.sha256(b"logsvc master key fingerprint\0" + self.material).hexdigest()[:16]


def _decode(text: str, source: str) -> bytes:
    try:
        material = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"the master key in {source} is not base64") from None
    if len(material) != KEY_BYTES:
        raise ConfigError(f"the master key in {source} must be {KEY_BYTES} bytes, base64-encoded")
    return material


def master_key_from(*, key_file: Path, env_name: str, data_dir: Path, create: bool) -> MasterKey:
    """The configured master key; with ``create``, a missing key file is made (only for a new store)."""
    if env_name:
        value = os.environ.get(env_name)
        if not value:
            raise ConfigError(f"the master key variable {env_name} is not set")
        return MasterKey(
            _decode(value, f"environment variable {env_name}"), f"environment variable {env_name}"
        )
    source = f"key file {key_file}"
    if key_file.resolve().is_relative_to(data_dir.resolve()):
        # A key beside the data it protects protects nothing once both are copied together.
        raise ConfigError(f"the {source} is inside the data directory {data_dir}; keep it elsewhere")
    if not key_file.exists():
        if not create:
            raise ConfigError(
                f"the {source} does not exist; the store cannot be opened without its master key"
            )
        write_key_file(key_file, secrets.token_bytes(KEY_BYTES))
    mode = stat.S_IMODE(key_file.stat().st_mode)
    if mode & 0o077:
        raise ConfigError(f"the {source} is readable by others (mode {mode:o}); chmod 600 it")
    return MasterKey(_decode(key_file.read_text(), source), source)


def write_key_file(path: Path, material: bytes) -> None:
    """Write a key file atomically, mode 0600 from the first byte on."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_name(path.name + ".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(base64.b64encode(material).decode() + "\n")
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)
