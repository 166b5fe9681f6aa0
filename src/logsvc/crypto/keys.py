"""Where the master key comes from: a key file (0600, outside the data directory), an environment variable,
or AWS KMS.

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

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from logsvc.errors import ConfigError

__all__ = [
    "KEY_BYTES",
    "KeySource",
    "KmsMasterKey",
    "MasterKey",
    "Wrapper",
    "local_master_key",
    "master_key_from",
    "write_key_file",
]

_AAD = b"logsvc database key v1"
_KMS_CONTEXT = {"logsvc": "database key"}

KEY_BYTES = 32


@dataclass(frozen=True, slots=True)
class KeySource:
    """Where the master key is: a file, an environment variable, or an AWS KMS key."""

    key_file: Path
    env_name: str = ""
    kms_key_id: str = ""
    aws_region: str = "us-east-1"
    aws_endpoint_url: str = ""


class MasterKey:
    """A master key held here: wraps the data key with AES-256-GCM."""

    def __init__(self, material: bytes, source: str) -> None:
        self.material = material
        self.source = source  # for messages: "key file /path" or "environment variable NAME"

    @property
    def fingerprint(self) -> str:
        """Names the key in messages and in the keyring without revealing it."""
        return hashlib.sha256(b"logsvc master key fingerprint\0" + self.material).hexdigest()[:16]

    def wrap(self, data_key: bytes) -> dict[str, str]:
        nonce = secrets.token_bytes(12)
        return {
            "algorithm": "AES-256-GCM",
            "master_key_fingerprint": self.fingerprint,
            "nonce": base64.b64encode(nonce).decode(),
            "wrapped_key": base64.b64encode(AESGCM(self.material).encrypt(nonce, data_key, _AAD)).decode(),
        }

    def unwrap(self, document: dict[str, str], where: Path | str) -> bytes:
        try:
            nonce = base64.b64decode(document["nonce"])
            wrapped = base64.b64decode(document["wrapped_key"])
            recorded = document["master_key_fingerprint"]
        except (KeyError, ValueError, TypeError) as exc:
            raise ConfigError(f"the keyring {where} was not made with a local master key ({exc})") from None
        try:
            return AESGCM(self.material).decrypt(nonce, wrapped, _AAD)
        except InvalidTag:
            raise ConfigError(
                f"the master key from the {self.source} (fingerprint {self.fingerprint}) does not open "
                f"{where}, which was wrapped by the master key with fingerprint {recorded}"
            ) from None


class KmsMasterKey:
    """A master key that never leaves AWS KMS: the data key is wrapped by kms:Encrypt, unwrapped by
    kms:Decrypt, bound to logsvc by an encryption context."""

    def __init__(self, source: KeySource) -> None:
        import boto3  # noqa: PLC0415 (only stores that use KMS pay for importing the AWS SDK)

        self.key_id = source.kms_key_id
        self.source = f"AWS KMS key {source.kms_key_id}"
        self._client = boto3.client(
            "kms", region_name=source.aws_region, endpoint_url=source.aws_endpoint_url or None
        )

    @property
    def fingerprint(self) -> str:
        return self.key_id

    def wrap(self, data_key: bytes) -> dict[str, str]:
        try:
            blob = self._client.encrypt(KeyId=self.key_id, Plaintext=data_key, EncryptionContext=_KMS_CONTEXT)
        except Exception as exc:  # botocore raises many unrelated types; all mean the same here
            raise ConfigError(f"{self.source} could not wrap the data key: {exc}") from None
        return {
            "algorithm": "AWS-KMS",
            "kms_key_id": self.key_id,
            "wrapped_key": base64.b64encode(blob["CiphertextBlob"]).decode(),
        }

    def unwrap(self, document: dict[str, str], where: Path | str) -> bytes:
        if document.get("algorithm") != "AWS-KMS":
            raise ConfigError(f"the keyring {where} was wrapped by a local master key, not by {self.source}")
        try:
            answer = self._client.decrypt(
                CiphertextBlob=base64.b64decode(document["wrapped_key"]),
                KeyId=self.key_id,
                EncryptionContext=_KMS_CONTEXT,
            )
        except Exception as exc:  # botocore raises many unrelated types; all mean the same here
            raise ConfigError(
                f"{self.source} does not open {where} (wrapped by {document.get('kms_key_id')}): {exc}"
            ) from None
        plaintext: bytes = answer["Plaintext"]
        return plaintext


Wrapper = MasterKey | KmsMasterKey


def _decode(text: str, source: str) -> bytes:
    try:
        material = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"the master key in {source} is not base64") from None
    if len(material) != KEY_BYTES:
        raise ConfigError(f"the master key in {source} must be {KEY_BYTES} bytes, base64-encoded")
    return material


def master_key_from(source: KeySource, *, data_dir: Path, create: bool) -> Wrapper:
    """The configured master key; with ``create``, a missing key file is made (only for a new store)."""
    if source.kms_key_id:
        return KmsMasterKey(source)
    return local_master_key(source.key_file, source.env_name, data_dir=data_dir, create=create)


def local_master_key(key_file: Path, env_name: str, *, data_dir: Path, create: bool) -> MasterKey:
    """The master key from a key file or an environment variable."""
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
