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

import fcntl
import logging
import mmap
import os
import struct
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import cast

import apsw
import msgspec

from logsvc.auth.credential_service import (
    ActiveCredential,
    AuditEvent,
    AuditRecord,
    Credential,
    CredentialRecord,
)
from logsvc.auth.policy import Principal, Role
from logsvc.crypto.sqlite import connect
from logsvc.domain.roles import listed_roles, ordered_roles
from logsvc.domain.timestamps import format_timestamp
from logsvc.errors import ConfigError, NotFound, StoreUnavailable

__all__ = ["AuthStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS credentials (
    access_key_id TEXT PRIMARY KEY,
    secret_access_key TEXT NOT NULL,
    api_key_sha256 BLOB NOT NULL,
    roles TEXT NOT NULL,
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


def _roles(stored: str) -> tuple[Role, ...]:
    """A credential's roles as the ``roles`` column keeps them (a JSON array); ValueError for a name this
    version does not know."""
    return ordered_roles(Role(name) for name in msgspec.json.decode(stored))


def _map_generation(path: Path) -> tuple[int, mmap.mmap]:
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    if os.fstat(descriptor).st_size < _GENERATION.size:
        os.ftruncate(descriptor, _GENERATION.size)
    return descriptor, mmap.mmap(descriptor, _GENERATION.size)


class AuthStore:
    """The credential store port on an SQLite file (``auth.db``)."""

    def __init__(self, path: Path, *, key: bytes | None = None) -> None:
        self.path = path
        self.name = str(path)
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

    def _migrate(self) -> None:
        """Create the schema, or bring an older one up to date. IMMEDIATE: two processes opening an old
        file at once must not both see the column missing."""
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            self._conn.execute(_SCHEMA)
            columns = {row[1] for row in self._conn.execute("PRAGMA table_info(audit)")}
            if "count" not in columns:  # a file made before refusals were aggregated
                self._conn.execute("ALTER TABLE audit ADD COLUMN count INTEGER NOT NULL DEFAULT 1")
            columns = {row[1] for row in self._conn.execute("PRAGMA table_info(credentials)")}
            if "roles" not in columns:  # a file made while a credential had one role
                self._conn.execute("ALTER TABLE credentials ADD COLUMN roles TEXT NOT NULL DEFAULT '[]'")
                self._conn.execute("UPDATE credentials SET roles = json_array(role)")
                self._conn.execute("ALTER TABLE credentials DROP COLUMN role")
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
                "SELECT access_key_id, secret_access_key, api_key_sha256, roles, services, expires_at "
                "FROM credentials WHERE revoked_at IS NULL"
            ).fetchall(),
        )
        active = {}
        for key_id, secret, digest, roles, services, expires_at in rows:
            patterns = tuple(msgspec.json.decode(services))
            try:
                principal = Principal(id=key_id, roles=frozenset(_roles(roles)), services=patterns)
            except ValueError as exc:
                # A scope made before the pattern grammar narrowed, or a role this version does not know:
                # refused (closed), never read loosely.
                log.warning("credential %s is not usable, recreate it: %s", key_id, exc)
                continue
            active[key_id] = ActiveCredential(secret, digest, principal, expires_at)
        return active

    def active(self, access_key_id: str) -> ActiveCredential | None:
        # ``_current`` inlined for the usual case: every request with credentials asks, a signed one twice.
        if _GENERATION.unpack_from(self._generation)[0] == self._loaded_generation:
            return self._active.get(access_key_id)
        return self._current().get(access_key_id)

    def all_active(self) -> list[ActiveCredential]:
        return list(self._current().values())

    # ---- management ---------------------------------------------------------------------------------------

    def _insert_credential(self, record: CredentialRecord, event: AuditRecord) -> None:
        # Columns named: a migrated file has them in another order than a new one.
        self._conn.execute(
            "INSERT INTO credentials (access_key_id, secret_access_key, api_key_sha256, roles, services, "
            "description, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                record.access_key_id,
                record.secret_access_key,
                record.api_key_sha256,
                msgspec.json.encode(list(record.roles)).decode(),
                msgspec.json.encode(list(record.services)).decode(),
                record.description,
                record.created_at,
                record.expires_at,
            ),
        )
        self._insert_audit([event])

    def put_credential(self, record: CredentialRecord, event: AuditRecord) -> None:
        with self._lock, self._conn:
            self._insert_credential(record, event)
        self._announce_change()

    def put_first_admin(
        self,
        record: CredentialRecord,
        event: AuditRecord,
        has_admin: Callable[[Iterable[ActiveCredential]], bool],
    ) -> bool:
        """IMMEDIATE: of processes starting on this file at once, one looks and creates, then the next."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                created = not has_admin(self._load_active().values())
                if created:
                    self._insert_credential(record, event)
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
        if created:
            self._announce_change()
        return created

    def put_revocation(self, access_key_id: str, event: AuditRecord) -> Credential:
        with self._lock, self._conn:
            self._conn.execute(
                "UPDATE credentials SET revoked_at = ? WHERE access_key_id = ? AND revoked_at IS NULL",
                (event.at, access_key_id),
            )
            if self._conn.changes() == 0:
                raise NotFound(f"no active credential with access key id {access_key_id}")
            self._insert_audit([event])
        self._announce_change()
        return next(c for c in self.credentials() if c.access_key_id == access_key_id)

    def credentials(self) -> list[Credential]:
        with self._lock:
            rows = cast(
                list[tuple[str, str, str, str, int, int | None, int | None]],
                self._conn.execute(
                    "SELECT access_key_id, roles, services, description, created_at, expires_at, revoked_at "
                    "FROM credentials ORDER BY created_at"
                ).fetchall(),
            )
        return [
            Credential(
                key_id,
                listed_roles(msgspec.json.decode(roles)),
                tuple(msgspec.json.decode(services)),
                description,
                format_timestamp(created),
                format_timestamp(expires) if expires is not None else None,
                format_timestamp(revoked) if revoked is not None else None,
            )
            for key_id, roles, services, description, created, expires, revoked in rows
        ]

    # ---- audit ------------------------------------------------------------------------------------------

    def _insert_audit(self, events: Sequence[AuditRecord]) -> None:
        self._conn.executemany(
            _INSERT_AUDIT, [(e.at, e.actor, e.action, e.target, e.source, e.detail, e.count) for e in events]
        )

    def write_audit(self, events: Sequence[AuditRecord]) -> None:
        try:
            with self._lock, self._conn:
                self._insert_audit(events)
        except apsw.Error as exc:
            log.warning("%s: %s", self.name, exc)
            raise StoreUnavailable("the credential store could not write; retry later") from None

    def delete_audit_before(self, cutoff_us: int) -> int:
        try:
            with self._lock, self._conn:
                self._conn.execute("DELETE FROM audit WHERE at < ?", (cutoff_us,))
                deleted: int = self._conn.changes()
        except apsw.Error as exc:
            log.warning("%s: %s", self.name, exc)
            raise StoreUnavailable("the credential store could not delete old audit records") from None
        return deleted

    def read_audit(self, limit: int) -> list[AuditEvent]:
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
        with self._lock:  # a sweep in another thread may still be using the connection
            self._conn.close()
        self._generation.close()
        os.close(self._generation_fd)
