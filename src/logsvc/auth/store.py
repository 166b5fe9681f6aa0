"""The credential store port: what the server, the admin API and the CLI need of a credential store, and the
one factory that opens the configured one.

Two adapters: ``AuthStore`` (``auth.db`` in the data directory, SQLite, the default) and
``DynamoCredentialStore`` (a DynamoDB table of its own, shared by server replicas; decision 13).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from logsvc.auth.credentials import AuditEvent, AuthStore, Credential, NewCredential
from logsvc.auth.policy import Principal, Role
from logsvc.crypto import key_source, master_key_from, store_key
from logsvc.errors import ConfigError
from logsvc.settings import Settings

__all__ = ["CredentialStore", "open_credentials"]


class CredentialStore(Protocol):
    # ---- lookups on the request path: answered from memory ----------------------------------------------
    def secret_for(self, access_key_id: str) -> str | None: ...

    def principal_for(self, access_key_id: str, method: str) -> Principal | None: ...

    def check_api_key(self, api_key: str) -> Principal | None: ...

    # ---- management ---------------------------------------------------------------------------------------
    def create(
        self,
        role: Role,
        *,
        services: Sequence[str] = (),
        expires_at_us: int | None = None,
        description: str = "",
        actor: str,
        source: str,
    ) -> NewCredential: ...

    def revoke(self, access_key_id: str, *, actor: str, source: str) -> Credential: ...

    def credentials(self) -> list[Credential]: ...

    def has_admin(self) -> bool: ...

    def bootstrap_admin(self, *, description: str, actor: str, source: str) -> NewCredential | None:
        """Create an admin credential unless a usable one exists; None when none was created here (also
        when another process sharing the store created it at the same moment)."""
        ...

    # ---- audit ------------------------------------------------------------------------------------------
    def record_denied(self, *, actor: str, target: str, source: str, detail: str) -> None: ...

    def audit(self, *, limit: int = 100) -> list[AuditEvent]: ...

    def expire_audit(self) -> int:
        """Delete the audit records older than the store's ``audit_retention_days``; how many."""
        ...

    def close(self) -> None: ...


def open_credentials(settings: Settings) -> CredentialStore:
    """The configured credential store; ConfigError when it cannot be opened."""
    if not settings.auth_store:
        return AuthStore(
            settings.auth_db, key=store_key(settings), audit_retention_days=settings.audit_retention_days
        )
    from logsvc.auth.dynamodb_credentials import DynamoCredentialStore  # noqa: PLC0415 (boto3 when needed)
    from logsvc.storage.dynamodb_table import parse_url  # noqa: PLC0415

    target = parse_url(settings.auth_store, setting="auth_store", shards=False)
    if settings.store.startswith("dynamodb:"):
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
        audit_retention_days=settings.audit_retention_days,
    )
