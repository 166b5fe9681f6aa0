"""Opening the credential service on the configured store: ``auth.db`` by default, or the DynamoDB table
of ``auth_store`` (each adapter loads only when chosen)."""

from __future__ import annotations

from pathlib import Path

from logsvc.auth.credential_service import CredentialService
from logsvc.auth.store import CredentialStore
from logsvc.crypto import key_source, master_key_from, store_key
from logsvc.errors import ConfigError
from logsvc.settings import Settings
from logsvc.store_url import engine_of

__all__ = ["open_credentials"]


def open_credentials(settings: Settings) -> CredentialService:
    """The credential service on the configured store; ConfigError when it cannot be opened."""
    store: CredentialStore
    if not settings.auth_store:
        from logsvc.auth.credentials import AuthStore  # noqa: PLC0415

        store = AuthStore(settings.auth_db, key=store_key(settings))
    else:
        store = _dynamodb_store(settings)
    return CredentialService(store, audit_retention_days=settings.audit_retention_days)


def _dynamodb_store(settings: Settings) -> CredentialStore:
    from logsvc.auth.dynamodb_credentials import DynamoCredentialStore  # noqa: PLC0415 (boto3 when needed)
    from logsvc.storage.dynamodb_table import parse_url  # noqa: PLC0415

    target = parse_url(settings.auth_store, setting="auth_store", shards=False)
    if engine_of(settings.store) == "dynamodb":
        logs = parse_url(settings.store)
        if (logs.table, logs.region, logs.endpoint) == (target.table, target.region, target.endpoint):
            raise ConfigError(
                "auth_store names the log table of store: credentials need a table of their own "
                "(whoever may read the logs must not read the credentials)"
            )
    source = key_source(settings)
    data_dir = Path(settings.data_dir).resolve()
    return DynamoCredentialStore(
        target,
        master=lambda create: master_key_from(source, data_dir=data_dir, create=create),
        cache_seconds=settings.auth_cache_seconds,
    )
