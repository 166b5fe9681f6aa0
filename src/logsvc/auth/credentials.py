"""Credentials and the audit trail, in their own SQLite file (``auth.db`` in the data directory, mode 0600).

A credential is an access key id with two secrets: a secret access key for AWS Signature V4 (kept, since the
server must compute the same HMAC; encrypted at rest once issue 4 lands) and an API key for bearer
authentication (only its SHA-256 is kept: it is 256 random bits, so a slow hash would add nothing).
The server caches active credentials and reloads them whenever any process (``logsvc keys revoke`` too)
has committed a change. Changes are announced through a generation counter in a small memory-mapped file
beside the database: reading it is a memory load, where asking SQLite on every request would release the
GIL to the store's writer thread and cost 13% of ingest throughput. So a revocation takes effect on the
next request, without a cache lifetime.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import hmac
import logging
import mmap
import os
import secrets
import struct
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Final, cast

import apsw
import msgspec

from logsvc.auth.audit import DENIED, FLUSH_SECONDS, RefusalBuffer, audit_cutoff_us
from logsvc.auth.policy import Principal, Role
from logsvc.crypto.sqlite import connect
from logsvc.domain.timestamps import format_timestamp
from logsvc.errors import ConfigError, NotFound

__all__ = [
    "ActiveCredential",
    "ActiveLookups",
    "AuditEvent",
    "AuthStore",
    "Credential",
    "NewCredential",
    "api_key_id",
    "new_secrets",
]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS credentials (
    access_key_id TEXT PRIMARY KEY,
    secret_access_key TEXT NOT NULL,
    api_key_sha256 BLOB NOT NULL,
    role TEXT NOT NULL,
    services TEXT NOT NULL,
    description TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER,
    revoked_at INTEGER
) STRICT;
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    source TEXT NOT NULL,
    detail TEXT NOT NULL,
    count INTEGER NOT NULL DEFAULT 1
) STRICT;
CREATE INDEX IF NOT EXISTS audit_at ON audit(at);
"""
_GENERATION = struct.Struct("<Q")
log = logging.getLogger("logsvc.auth")
_INSERT_AUDIT = (
    "INSERT INTO audit(at, actor, action, target, source, detail, count) VALUES (?, ?, ?, ?, ?, ?, ?)"
)
API_KEY_PREFIX: Final = "lsk_"
_DUMMY_DIGEST: Final = hashlib.sha256(b"no such key").digest()


class Credential(msgspec.Struct, frozen=True):
    """A credential as listed: never its secrets."""

    access_key_id: str
    role: Role
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
    role: Role
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


class ActiveLookups:
    """The request-path look-ups of a credential store, over its ``_usable`` (active and unexpired)."""

    def _usable(self, access_key_id: str) -> ActiveCredential | None:
        raise NotImplementedError

    def secret_for(self, access_key_id: str) -> str | None:
        """The SigV4 secret of an active, unexpired credential."""
        found = self._usable(access_key_id)
        return found.secret_access_key if found else None

    def principal_for(self, access_key_id: str, method: str) -> Principal | None:
        found = self._usable(access_key_id)
        return msgspec.structs.replace(found.principal, method=method) if found else None

    def check_api_key(self, api_key: str) -> Principal | None:
        """The principal of a valid API key. Unknown ids cost the same hash and compare as wrong secrets."""
        key_id = api_key_id(api_key)
        found = self._usable(key_id) if key_id is not None else None
        digest = hashlib.sha256(api_key.encode()).digest()
        expected = found.api_key_sha256 if found else _DUMMY_DIGEST
        if hmac.compare_digest(digest, expected) and found is not None:
            return msgspec.structs.replace(found.principal, method="api_key")
        return None


def new_secrets() -> tuple[str, str, str]:
    """A new access key id, its SigV4 secret access key and its API key (which names the key id)."""
    key_id = "LSK" + base64.b32encode(secrets.token_bytes(10)).decode()
    return key_id, secrets.token_urlsafe(30), f"{API_KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"


def api_key_id(api_key: str) -> str | None:
    """The access key id an API key names, or None when it is not one of ours."""
    if not api_key.startswith(API_KEY_PREFIX):
        return None
    return api_key.removeprefix(API_KEY_PREFIX).partition("_")[0]


def _map_generation(path: Path) -> tuple[int, mmap.mmap]:
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    if os.fstat(descriptor).st_size < _GENERATION.size:
        os.ftruncate(descriptor, _GENERATION.size)
    return descriptor, mmap.mmap(descriptor, _GENERATION.size)


def _now_us() -> int:
    return time.time_ns() // 1000


class AuthStore(ActiveLookups):
    """``audit_retention_days``: ``expire_audit`` deletes audit records older than that (0: never)."""

    def __init__(
        self,
        path: Path,
        *,
        key: bytes | None = None,
        clock_us: Callable[[], int] = _now_us,
        audit_retention_days: float = 0,
    ) -> None:
        self.path = path
        self._clock_us = clock_us
        self._audit_retention_days = audit_retention_days
        self._lock = threading.Lock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._conn = connect(path, key)
            os.chmod(path, 0o600)
            self._conn.set_busy_timeout(5_000)
            self._conn.execute("PRAGMA journal_mode=WAL").fetchall()
            self._conn.execute("PRAGMA synchronous=FULL")
            self._migrate()
            self._generation_fd, self._generation = _map_generation(path.with_name(path.name + "-generation"))
        except (apsw.Error, OSError) as exc:
            raise ConfigError(f"cannot open the credential store at {path}: {exc}") from None
        self._loaded_generation = -1
        self._active: dict[str, ActiveCredential] = {}
        self._refusals = RefusalBuffer(str(path), clock_us=clock_us)
        self._flusher: threading.Timer | None = None

    def _migrate(self) -> None:
        """Create the schema, or bring an older one up to date. IMMEDIATE: two processes opening an old
        file at once must not both see the column missing."""
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            self._conn.execute(_SCHEMA)
            columns = {row[1] for row in self._conn.execute("PRAGMA table_info(audit)")}
            if "count" not in columns:  # a file made before refusals were aggregated
                self._conn.execute("ALTER TABLE audit ADD COLUMN count INTEGER NOT NULL DEFAULT 1")
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    # ---- lookups on the request path --------------------------------------------------------------------

    def _current(self) -> dict[str, ActiveCredential]:
        generation: int = _GENERATION.unpack_from(self._generation)[0]
        if generation != self._loaded_generation:
            with self._lock:
                # Read before loading: a change committed during the load bumps it again afterwards.
                self._active = self._load_active()
                self._loaded_generation = generation
        return self._active

    def _announce_change(self) -> None:
        """Bump the generation after the commit; the file lock keeps two processes from losing a bump."""
        fcntl.flock(self._generation_fd, fcntl.LOCK_EX)
        try:
            _GENERATION.pack_into(self._generation, 0, _GENERATION.unpack_from(self._generation)[0] + 1)
        finally:
            fcntl.flock(self._generation_fd, fcntl.LOCK_UN)

    def _load_active(self) -> dict[str, ActiveCredential]:
        rows = cast(
            list[tuple[str, str, bytes, str, str, int | None]],
            self._conn.execute(
                "SELECT access_key_id, secret_access_key, api_key_sha256, role, services, expires_at "
                "FROM credentials WHERE revoked_at IS NULL"
            ).fetchall(),
        )
        active = {}
        for key_id, secret, digest, role, services, expires_at in rows:
            patterns = tuple(msgspec.json.decode(services))
            try:
                principal = Principal(id=key_id, roles=frozenset({Role(role)}), services=patterns)
            except ValueError as exc:
                # A scope made before the pattern grammar narrowed: refused (closed), never read loosely.
                log.warning("credential %s is not usable, recreate it: %s", key_id, exc)
                continue
            active[key_id] = ActiveCredential(secret, digest, principal, expires_at)
        return active

    def _usable(self, access_key_id: str) -> ActiveCredential | None:
        found = self._current().get(access_key_id)
        if found is None or (found.expires_at is not None and found.expires_at <= self._clock_us()):
            return None
        return found

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
    ) -> NewCredential:
        key_id, secret, api_key = new_secrets()
        now = self._clock_us()
        with self._lock, self._conn:
            self._conn.execute(
                "INSERT INTO credentials VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL)",
                (
                    key_id,
                    secret,
                    hashlib.sha256(api_key.encode()).digest(),
                    role.value,
                    msgspec.json.encode(list(services)).decode(),
                    description,
                    now,
                    expires_at_us,
                ),
            )
            scope = ",".join(services) or "*"
            self._insert_audit(
                now, actor, "key.create", key_id, source, f"role={role.value} services={scope}"
            )
        self._announce_change()
        expires = format_timestamp(expires_at_us) if expires_at_us is not None else None
        return NewCredential(key_id, secret, api_key, role, tuple(services), expires)

    def bootstrap_admin(self, *, description: str, actor: str, source: str) -> NewCredential | None:
        """An admin credential, unless a usable one exists (one process starts a server on this file)."""
        if self.has_admin():
            return None
        return self.create(Role.ADMIN, description=description, actor=actor, source=source)

    def revoke(self, access_key_id: str, *, actor: str, source: str) -> Credential:
        now = self._clock_us()
        with self._lock, self._conn:
            self._conn.execute(
                "UPDATE credentials SET revoked_at = ? WHERE access_key_id = ? AND revoked_at IS NULL",
                (now, access_key_id),
            )
            if self._conn.changes() == 0:
                raise NotFound(f"no active credential with access key id {access_key_id}")
            self._insert_audit(now, actor, "key.revoke", access_key_id, source, "")
        self._announce_change()
        return next(c for c in self.credentials() if c.access_key_id == access_key_id)

    def credentials(self) -> list[Credential]:
        with self._lock:
            rows = cast(
                list[tuple[str, str, str, str, int, int | None, int | None]],
                self._conn.execute(
                    "SELECT access_key_id, role, services, description, created_at, expires_at, revoked_at "
                    "FROM credentials ORDER BY created_at"
                ).fetchall(),
            )
        return [
            Credential(
                key_id,
                Role(role),
                tuple(msgspec.json.decode(services)),
                description,
                format_timestamp(created),
                format_timestamp(expires) if expires is not None else None,
                format_timestamp(revoked) if revoked is not None else None,
            )
            for key_id, role, services, description, created, expires, revoked in rows
        ]

    def has_admin(self) -> bool:
        """Whether an unexpired, unrevoked admin credential exists."""
        return any(
            Role.ADMIN in active.principal.roles and self._usable(key_id) is not None
            for key_id, active in self._current().items()
        )

    # ---- audit ------------------------------------------------------------------------------------------

    def _insert_audit(self, at: int, actor: str, action: str, target: str, source: str, detail: str) -> None:
        self._conn.execute(_INSERT_AUDIT, (at, actor, action, target, source, detail, 1))

    def record_denied(self, *, actor: str, target: str, source: str, detail: str) -> None:
        """Note a refused request, by the rules of audit.py. Written about once a second, so that a flood
        of refused requests cannot turn into a flood of fsyncs."""
        if not self._refusals.add(actor=actor, target=target, source=source, detail=detail):
            return
        with self._lock:
            if self._flusher is None:
                self._flusher = threading.Timer(FLUSH_SECONDS, self.flush_audit)
                self._flusher.daemon = True
                self._flusher.start()

    def flush_audit(self) -> None:
        with self._lock:
            self._flusher = None
            pending = self._refusals.take()
            if pending:
                with self._conn:
                    self._conn.executemany(
                        _INSERT_AUDIT,
                        [(r.at, r.actor, DENIED, r.target, r.source, r.detail, r.count) for r in pending],
                    )

    def expire_audit(self) -> int:
        """Delete the audit records past ``audit_retention_days``; how many."""
        cutoff = audit_cutoff_us(self._clock_us(), self._audit_retention_days)
        if cutoff is None:
            return 0
        with self._lock, self._conn:
            self._conn.execute("DELETE FROM audit WHERE at < ?", (cutoff,))
            deleted: int = self._conn.changes()
        return deleted

    def audit(self, *, limit: int = 100) -> list[AuditEvent]:
        self.flush_audit()
        with self._lock:
            rows = cast(
                list[tuple[int, str, str, str, str, str, int]],
                self._conn.execute(
                    "SELECT at, actor, action, target, source, detail, count FROM audit "
                    "ORDER BY seq DESC LIMIT ?",
                    (limit,),
                ).fetchall(),
            )
        return [
            AuditEvent(format_timestamp(at), actor, action, target, source, detail, count)
            for at, actor, action, target, source, detail, count in rows
        ]

    def close(self) -> None:
        with self._lock:
            flusher = self._flusher
        if flusher is not None:
            flusher.cancel()
        self.flush_audit()
        with self._lock:  # a sweep in another thread may still be using the connection
            self._conn.close()
        self._generation.close()
        os.close(self._generation_fd)
