"""The rules of credentials and of the audit trail, over either credential store (``store.py``, the port).

What an audit event says (who did what, from where), when a credential is no longer usable (``expires_at
<= now``), that the last usable admin credential stays, that a first admin is created only while there is
none, and how refused requests are buffered and written: all here, once. The adapters (``credentials.py``
on SQLite, ``dynamodb_credentials.py`` on DynamoDB) only store and load, and give the atomic primitive
their backend needs for the first admin.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Final

import msgspec

from logsvc.auth.audit import DENIED, FLUSH_SECONDS, RefusalBuffer, audit_cutoff_us
from logsvc.auth.policy import Principal, Role, parse_key_request
from logsvc.auth.records import (
    ActiveCredential,
    AuditEvent,
    AuditRecord,
    Credential,
    CredentialRecord,
    NewCredential,
)
from logsvc.auth.store import CredentialStore
from logsvc.domain.roles import ordered_roles
from logsvc.domain.timestamps import format_timestamp
from logsvc.errors import ConfigError, Conflict, Forbidden, LogServiceError, NotFound
from logsvc.scopes import within

if TYPE_CHECKING:
    from logsvc.settings import Settings

__all__ = [
    "API_KEY_PREFIX",
    "ActiveCredential",
    "AuditEvent",
    "AuditRecord",
    "Credential",
    "CredentialRecord",
    "CredentialService",
    "NewCredential",
    "api_key_id",
    "check_master_rotation",
    "new_secrets",
]

log = logging.getLogger("logsvc.auth")

API_KEY_PREFIX: Final = "lsk_"
KEY_CREATE: Final = "key.create"
KEY_REVOKE: Final = "key.revoke"
_DUMMY_DIGEST: Final = hashlib.sha256(b"no such key").digest()


def new_secrets() -> tuple[str, str, str]:
    """A new access key id, its SigV4 secret access key and its API key (which names the key id)."""
    key_id = "LSK" + base64.b32encode(secrets.token_bytes(10)).decode()
    return key_id, secrets.token_urlsafe(30), f"{API_KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"


def api_key_id(api_key: str) -> str | None:
    """The access key id an API key names, or None when it is not one of ours."""
    if not api_key.startswith(API_KEY_PREFIX):
        return None
    return api_key.removeprefix(API_KEY_PREFIX).partition("_")[0]


def check_master_rotation(settings: Settings) -> None:
    """ConfigError when ``keys rotate-master`` must not rotate the master key under these settings."""
    if settings.master_key_env or settings.master_key_kms:
        raise ConfigError(
            "rotate-master manages key files only: with master_key_env, put a new key in the variable "
            "and rewrap; with master_key_kms, AWS rotates the key material itself (enable key rotation)"
        )
    if settings.auth_store:
        raise ConfigError(
            "rotate-master rewraps keyring.json only, not the data key in the #keyring item of the "
            "auth_store table, which every replica opens with this master key: after a rotation no "
            "replica could start. Keep the master key while auth_store is set (decision 13)"
        )


def _now_us() -> int:
    return time.time_ns() // 1000


def _usable_at(found: ActiveCredential, now_us: int) -> bool:
    return found.expires_at is None or found.expires_at > now_us


# The principals that stand for a stored credential (an API key, also sent as Basic's password, or SigV4).
_KEY_METHODS = frozenset({"api_key", "sigv4"})


def _principal(found: ActiveCredential, method: str) -> Principal:
    return msgspec.structs.replace(found.principal, method=method, expires_at_us=found.expires_at)


class CredentialService:
    """Credentials and the audit trail over ``store``. ``audit_retention_days``: ``expire_audit`` deletes
    audit records older than that (0: never). Refused requests are written by a thread of its own, about
    once a second, one write at a time; ``close`` writes what is left and closes the store."""

    def __init__(
        self,
        store: CredentialStore,
        *,
        clock_us: Callable[[], int] = _now_us,
        audit_retention_days: float = 0,
    ) -> None:
        self.store = store
        self._clock_us = clock_us
        self._audit_retention_days = audit_retention_days
        self._refusals = RefusalBuffer(store.name, clock_us=clock_us)
        self._flush_lock = threading.Lock()
        self._audit_wanted = threading.Event()
        self._stop = threading.Event()
        self._flusher = threading.Thread(target=self._flush_forever, name="logsvc-audit", daemon=True)
        self._flusher.start()

    # ---- lookups on the request path --------------------------------------------------------------------

    def _usable(self, access_key_id: str) -> ActiveCredential | None:
        found = self.store.active(access_key_id)
        # The clock is read only for a key that expires (most do not): every authenticated request, and
        # a signed one twice, passes here.
        if found is None or (found.expires_at is not None and found.expires_at <= self._clock_us()):
            return None
        return found

    def secret_for(self, access_key_id: str) -> str | None:
        """The SigV4 secret of an active, unexpired credential."""
        found = self._usable(access_key_id)
        return found.secret_access_key if found else None

    def principal_for(self, access_key_id: str, method: str) -> Principal | None:
        found = self._usable(access_key_id)
        return _principal(found, method) if found else None

    def check_api_key(self, api_key: str) -> Principal | None:
        """The principal of a valid API key. Unknown ids cost the same hash and compare as wrong secrets."""
        key_id = api_key_id(api_key)
        found = self._usable(key_id) if key_id is not None else None
        digest = hashlib.sha256(api_key.encode()).digest()
        expected = found.api_key_sha256 if found else _DUMMY_DIGEST
        if hmac.compare_digest(digest, expected) and found is not None:
            return _principal(found, "api_key")
        return None

    def still_usable(self, principal: Principal) -> bool:
        """Whether a principal authenticated earlier may still act: its key or token has not expired since,
        and a key it holds has not been revoked (as this process's copy of the credentials says)."""
        if principal.expires_at_us is not None and principal.expires_at_us <= self._clock_us():
            return False
        if principal.method in _KEY_METHODS:
            return self._usable(principal.id) is not None
        return True

    # ---- management ---------------------------------------------------------------------------------------

    def _new(
        self,
        roles: Iterable[Role],
        services: Sequence[str],
        expires_at_us: int | None,
        description: str,
        actor: str,
        source: str,
    ) -> tuple[NewCredential, CredentialRecord, AuditRecord]:
        held = ordered_roles(roles)
        if not held:
            raise ValueError("a credential holds at least one role")
        key_id, secret, api_key = new_secrets()
        now = self._clock_us()
        record = CredentialRecord(
            key_id,
            secret,
            hashlib.sha256(api_key.encode()).digest(),
            held,
            tuple(services),
            description,
            now,
            expires_at_us,
        )
        scope = ",".join(services) or "*"
        # "role=" as before roles were several: one audit trail reads the same across versions.
        detail = f"role={','.join(held)} services={scope}"
        event = AuditRecord(now, actor, KEY_CREATE, key_id, source, detail)
        expires = format_timestamp(expires_at_us) if expires_at_us is not None else None
        return NewCredential(key_id, secret, api_key, held, tuple(services), expires), record, event

    def create(
        self,
        *roles: Role,
        services: Sequence[str] = (),
        expires_at_us: int | None = None,
        description: str = "",
        actor: str,
        source: str,
    ) -> NewCredential:
        """A new credential holding ``roles`` (one or more: it may do what any of them may)."""
        new, record, event = self._new(roles, services, expires_at_us, description, actor, source)
        self.store.put_credential(record, event)
        return new

    def create_requested(
        self, doc: object, *, actor: str, source: str, scope: tuple[str, ...] = ()
    ) -> NewCredential:
        """A credential as a key request (JSON body or CLI options) asks; ValidationFailed naming every bad
        field. ``scope`` is the creator's service scope: an admin scoped to services makes keys only within
        it (Forbidden otherwise), or it could make itself a key for every service."""
        request = parse_key_request(doc, self._clock_us())
        if not within(request.services, scope):
            asked = ", ".join(request.services) or "every service"
            raise Forbidden(
                f"this credential manages keys only within services {', '.join(scope)}; the request asks "
                f"for {asked}"
            )
        return self.create(
            *request.roles,
            services=request.services,
            expires_at_us=request.expires_at_us,
            description=request.description,
            actor=actor,
            source=source,
        )

    def _usable_admins(self, active: Iterable[ActiveCredential]) -> set[str]:
        now = self._clock_us()
        return {
            found.principal.id
            for found in active
            # An admin scoped to services cannot manage every key nor read the audit trail: it does not
            # keep the service manageable.
            if Role.ADMIN in found.principal.roles and not found.principal.services and _usable_at(found, now)
        }

    def _has_usable_admin(self, active: Iterable[ActiveCredential]) -> bool:
        return bool(self._usable_admins(active))

    def has_admin(self) -> bool:
        """Whether an unexpired, unrevoked admin credential without a service scope exists (as the store
        holds them now)."""
        return self._has_usable_admin(self.store.all_active())

    def bootstrap_admin(self, *, description: str, actor: str, source: str) -> NewCredential | None:
        """Create an admin credential unless a usable one exists; None when none was created here (also
        when another process sharing the store created it at the same moment: the store decides that
        atomically)."""
        new, record, event = self._new((Role.ADMIN,), (), None, description, actor, source)
        return new if self.store.put_first_admin(record, event, self._has_usable_admin) else None

    def revoke(self, access_key_id: str, *, actor: str, source: str) -> Credential:
        """Revoke an active credential (NotFound otherwise)."""
        event = AuditRecord(self._clock_us(), actor, KEY_REVOKE, access_key_id, source, "")
        return self.store.put_revocation(access_key_id, event)

    def revoke_keeping_an_admin(
        self, access_key_id: str, *, actor: str, source: str, scope: tuple[str, ...] = ()
    ) -> Credential:
        """Revoke a credential, unless it is the last usable admin credential: with it gone, nobody could
        manage credentials over the API any more (the HTTP route and the CLI both come here). ``scope`` is
        the revoker's: a key outside it is NotFound, as it is not listed to it."""
        if scope and not any(c.access_key_id == access_key_id for c in self.credentials(scope)):
            raise NotFound(f"no credential {access_key_id} that this credential manages")
        usable_admins = self._usable_admins(self.store.all_active())
        if usable_admins == {access_key_id}:
            raise Conflict(
                f"{access_key_id} is the last usable admin credential; create another admin credential "
                "before revoking this one"
            )
        return self.revoke(access_key_id, actor=actor, source=source)

    def credentials(self, scope: tuple[str, ...] = ()) -> list[Credential]:
        """The credentials whose service scope lies within ``scope`` (all when empty): what an admin of
        that scope manages."""
        return [c for c in self.store.credentials() if within(c.services, scope)]

    # ---- audit ------------------------------------------------------------------------------------------

    def record_denied(self, *, actor: str, target: str, source: str, detail: str) -> None:
        """Note a refused request, by the rules of audit.py. Written about once a second, so that a flood
        of refused requests cannot turn into a flood of writes (or fsyncs)."""
        if self._refusals.add(actor=actor, target=target, source=source, detail=detail):
            self._audit_wanted.set()

    def _flush_forever(self) -> None:
        while self._audit_wanted.wait() and not self._stop.wait(FLUSH_SECONDS):
            self._audit_wanted.clear()
            try:
                self.flush_audit()
            except Exception:  # the thread must outlive any one write: it is what writes the refusals
                log.exception("%s: audit flush failed", self.store.name)
        # close() writes what is left.

    def flush_audit(self) -> None:
        """Write the refusals waiting. A failure is logged and the events dropped (they are refused
        requests, and the buffer must not grow without bound while the store is away)."""
        with self._flush_lock:
            pending = self._refusals.take()
            if not pending:
                return
            events = [
                AuditRecord(r.at, r.actor, DENIED, r.target, r.source, r.detail, r.count) for r in pending
            ]
            try:
                self.store.write_audit(events)
            except LogServiceError as exc:
                log.warning("%s: %d audit events not written: %s", self.store.name, len(events), exc.detail)

    def audit(self, *, limit: int = 100) -> list[AuditEvent]:
        """The newest events first, the refusals waiting included."""
        self.flush_audit()
        return self.store.read_audit(limit)

    def expire_audit(self) -> int:
        """Delete the audit records past ``audit_retention_days``; how many."""
        cutoff = audit_cutoff_us(self._clock_us(), self._audit_retention_days)
        return 0 if cutoff is None else self.store.delete_audit_before(cutoff)

    def close(self) -> None:
        self._stop.set()
        self._audit_wanted.set()
        self._flusher.join(timeout=30)
        self.flush_audit()
        self.store.close()
