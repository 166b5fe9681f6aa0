"""What credentials and audit events are, as the credential service and its stores exchange them. A
credential's ``roles`` are one or more, in the order of ``Role`` (``ordered_roles``)."""

from __future__ import annotations

import msgspec

from logsvc.auth.policy import Principal, Role

__all__ = ["ActiveCredential", "AuditEvent", "AuditRecord", "Credential", "CredentialRecord", "NewCredential"]


class Credential(msgspec.Struct, frozen=True):
    """A credential as listed: never its secrets. ``roles`` are names (``domain.roles.listed_roles``): a
    role this version does not know is listed too."""

    access_key_id: str
    roles: tuple[str, ...]
    services: tuple[str, ...]
    description: str
    created_at: str
    expires_at: str | None
    revoked_at: str | None


class NewCredential(msgspec.Struct, frozen=True):
    """A credential as created: the only time its secrets are shown."""

    access_key_id: str
    secret_access_key: str
    api_key: str
    roles: tuple[Role, ...]
    services: tuple[str, ...]
    expires_at: str | None


class AuditEvent(msgspec.Struct, frozen=True):
    """One record of the audit trail; ``count`` identical refused requests from ``at`` on (audit.py)."""

    at: str
    actor: str
    action: str
    target: str
    source: str
    detail: str
    count: int = 1


class ActiveCredential(msgspec.Struct, frozen=True):
    """What the request path needs of a credential that is not revoked."""

    secret_access_key: str
    api_key_sha256: bytes
    principal: Principal
    expires_at: int | None


class CredentialRecord(msgspec.Struct, frozen=True):
    """A new credential as a store keeps it: the SigV4 secret (the store may seal it), the API key's hash."""

    access_key_id: str
    secret_access_key: str
    api_key_sha256: bytes
    roles: tuple[Role, ...]
    services: tuple[str, ...]
    description: str
    created_at: int
    expires_at: int | None


class AuditRecord(msgspec.Struct, frozen=True):
    """An audit event as a store writes it (``at`` in µs)."""

    at: int
    actor: str
    action: str
    target: str
    source: str
    detail: str
    count: int = 1
