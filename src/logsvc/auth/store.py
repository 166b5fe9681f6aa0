"""The credential store port: what ``CredentialService`` needs a credential store to persist and load
(``auth/open.py`` opens the service on the configured store).

Two adapters: ``AuthStore`` (``auth.db`` in the data directory, SQLite, the default) and
``DynamoCredentialStore`` (a DynamoDB table of its own, shared by server replicas; decision 13).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

from logsvc.auth.records import ActiveCredential, AuditEvent, AuditRecord, Credential, CredentialRecord

__all__ = ["CredentialStore"]


class CredentialStore(Protocol):
    """What a credential store persists and loads; every rule is ``CredentialService``'s. Backend errors
    come out as ``logsvc.errors`` types (``StoreUnavailable``; ``NotFound`` where said)."""

    name: str
    """Which store this is, in log lines."""

    # ---- lookups on the request path: answered from memory ----------------------------------------------
    def active(self, access_key_id: str) -> ActiveCredential | None:
        """The credential if it is not revoked (expired or not)."""
        ...

    def all_active(self) -> list[ActiveCredential]:
        """Every credential not revoked, as the backend holds them now."""
        ...

    # ---- management ---------------------------------------------------------------------------------------
    def put_credential(self, record: CredentialRecord, event: AuditRecord) -> None:
        """Store a new credential and its audit event, both or neither."""
        ...

    def put_first_admin(
        self,
        record: CredentialRecord,
        event: AuditRecord,
        has_admin: Callable[[Iterable[ActiveCredential]], bool],
    ) -> bool:
        """Store ``record`` (and ``event``) unless ``has_admin`` holds of the active credentials, as one
        atomic step against every process sharing the store; whether it was stored."""
        ...

    def put_revocation(self, access_key_id: str, event: AuditRecord) -> Credential:
        """Mark an active credential revoked at ``event.at`` and store the event; NotFound when there is no
        active credential of that id."""
        ...

    def credentials(self) -> list[Credential]:
        """Every credential, revoked ones too, oldest first."""
        ...

    # ---- audit ------------------------------------------------------------------------------------------
    def write_audit(self, events: Sequence[AuditRecord]) -> None: ...

    def read_audit(self, limit: int) -> list[AuditEvent]:
        """The newest ``limit`` events, newest first."""
        ...

    def delete_audit_before(self, cutoff_us: int) -> int:
        """Delete audit events older than ``cutoff_us`` (a store may keep a few more, up to its own unit of
        deletion); how many were deleted."""
        ...

    def close(self) -> None: ...
