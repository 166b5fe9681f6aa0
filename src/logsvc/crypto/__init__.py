"""Encryption at rest: master-key providers, the envelope around the database key, encrypted connections."""

from pathlib import Path

from logsvc.crypto.envelope import KEYRING_NAME, Keyring, database_key, rekey_store, rotate_master_key
from logsvc.crypto.keys import KeySource, MasterKey, master_key_from
from logsvc.errors import ConfigError
from logsvc.settings import Settings

__all__ = [
    "KEYRING_NAME",
    "KeySource",
    "Keyring",
    "MasterKey",
    "database_key",
    "key_source",
    "master_key_from",
    "rekey_store",
    "rotate_master_key",
    "store_key",
]


def store_key(settings: Settings) -> bytes | None:
    """The key of the databases in the data directory, or None when encryption is off."""
    data_dir = Path(settings.data_dir).resolve()
    if not settings.encryption:
        if (data_dir / KEYRING_NAME).exists():
            raise ConfigError(
                f"encryption = false, but the store in {data_dir} is encrypted ({KEYRING_NAME})"
            )
        return None
    return database_key(data_dir, key_source(settings))


def key_source(settings: Settings) -> KeySource:
    return KeySource(
        key_file=Path(settings.master_key_file),
        env_name=settings.master_key_env,
        kms_key_id=settings.master_key_kms,
        aws_region=settings.aws_region,
        aws_endpoint_url=settings.aws_endpoint_url,
    )
