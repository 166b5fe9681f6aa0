"""Encryption at rest: master-key providers, the envelope around the database key, encrypted connections."""

from pathlib import Path

from logsvc.crypto.envelope import Keyring, database_ciphers, database_key, rekey_store, rotate_master_key
from logsvc.crypto.keys import KeySource, MasterKey, master_key_from
from logsvc.datadir import DataDir
from logsvc.errors import ConfigError
from logsvc.settings import Settings
from logsvc.store_url import store_databases

__all__ = [
    "KeySource",
    "Keyring",
    "MasterKey",
    "database_ciphers",
    "database_key",
    "key_source",
    "master_key_from",
    "rekey_store",
    "rotate_master_key",
    "store_key",
]


def store_key(settings: Settings) -> bytes | None:
    """The key of the databases in the data directory and of the store (wherever ``store`` puts it), or None
    when encryption is off."""
    files = DataDir(settings.data_dir)
    if not settings.encryption:
        if files.keyring.exists():
            raise ConfigError(
                f"encryption = false, but the store in {files.root} is encrypted ({DataDir.KEYRING})"
            )
        return None
    return database_key(files.root, key_source(settings), store_databases(settings.store_url))


def key_source(settings: Settings) -> KeySource:
    return KeySource(
        key_file=Path(settings.master_key_file),
        env_name=settings.master_key_env,
        kms_key_id=settings.master_key_kms,
        aws_region=settings.aws_region,
        aws_endpoint_url=settings.aws_endpoint_url,
    )
