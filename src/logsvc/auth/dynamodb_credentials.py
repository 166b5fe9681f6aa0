"""Credentials and the audit trail in a DynamoDB table of their own, shared by server replicas (decision 13).

Items (``pk`` / ``sk``, both strings; no index, nothing is ever scanned):

- ``#keyring`` / ``#keyring``: the table's data key, wrapped by the master key (key file, environment
  variable or AWS KMS: every replica needs the same one);
- ``#credential`` / access key id: roles, services, description, times, the SHA-256 of the API key, and the
  SigV4 secret encrypted with the data key (AES-256-GCM, the access key id as associated data). ``roles``
  is a list; an item written while a credential had one role has ``role`` (a string) instead, and a
  single-role credential is written with both, so that a replica of the previous version, during a rolling
  upgrade, still reads it (and skips, closed, one of several roles: it finds no ``role``);
- ``#bootstrap`` / ``#bootstrap``: an epoch that decides, by a conditional write, which replica creates the
  first admin;
- ``#audit#DAY`` / ``µs(19 digits)#random``: audit events; ``#auditday`` / ``DAY`` lists the days that hold
  some, so that the newest events are found with Queries, and the days past the audit retention are
  deleted whole with Queries too.

Look-ups on the request path read an in-memory copy of the active credentials, reloaded every
``cache_seconds`` by a background thread: a new or revoked credential reaches every replica within that
time (and one Query) while the table answers. While reloads fail, a copy is used for at most
``max(3 * cache_seconds, 15 s)`` after the start of its last successful reload, then look-ups answer 503:
that is the bound on how long a revoked key may still work anywhere. The copy is per process: with
``workers > 1``, a revocation applies at once only in the worker that handled it. An access key id that is
not in the copy reloads it at once, at most once a second, so that a key just created on another replica
works without letting a flood of unknown ids turn into a flood of Queries.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, Final

from botocore.exceptions import BotoCoreError, ClientError
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from logsvc.auth.credential_service import (
    ActiveCredential,
    AuditEvent,
    AuditRecord,
    Credential,
    CredentialRecord,
)
from logsvc.auth.policy import Principal, Role
from logsvc.crypto.keys import KEY_BYTES, Wrapper
from logsvc.domain.roles import listed_roles, ordered_roles
from logsvc.domain.timestamps import format_timestamp
from logsvc.errors import ConfigError, NotFound, StoreUnavailable
from logsvc.storage.dynamodb_table import TableUrl, client_for, error_reason, parse_url

__all__ = ["DynamoCredentialStore", "create_auth_table"]

log = logging.getLogger("logsvc.auth.dynamodb")

_KEYRING = {"pk": {"S": "#keyring"}, "sk": {"S": "#keyring"}}
_BOOTSTRAP = {"pk": {"S": "#bootstrap"}, "sk": {"S": "#bootstrap"}}
_CREDENTIAL_PK: Final = "#credential"
_AUDIT_DAYS_PK: Final = "#auditday"
_SECRET_AAD: Final = b"logsvc credential secret v1\0"
_MISS_REFRESH_SECONDS: Final = 1.0
_MIN_STALE_SECONDS: Final = 15.0
_BOOTSTRAP_ATTEMPTS: Final = 4
_BATCH: Final = 25
_WRITE_ATTEMPTS: Final = 6
_BACKEND_ERRORS = (ClientError, BotoCoreError)


def _day(at_us: int) -> str:
    return datetime.fromtimestamp(at_us / 1_000_000, UTC).strftime("%Y-%m-%d")


def _code(exc: ClientError | BotoCoreError) -> str:
    return str(exc.response.get("Error", {}).get("Code", "")) if isinstance(exc, ClientError) else ""


def _first_condition_failed(exc: ClientError) -> bool:
    """Whether a transaction was cancelled because the condition of its first item did not hold."""
    reasons = exc.response.get("CancellationReasons") or [{}]
    return _code(exc) == "TransactionCanceledException" and reasons[0].get("Code") == "ConditionalCheckFailed"


def _transaction_conflict(exc: ClientError) -> bool:
    """Whether a transaction was cancelled because another one was writing the same item."""
    reasons = exc.response.get("CancellationReasons") or []
    return _code(exc) == "TransactionConflictException" or (
        _code(exc) == "TransactionCanceledException"
        and any(reason.get("Code") == "TransactionConflict" for reason in reasons)
    )


def _role_names(item: dict[str, Any]) -> list[str]:
    """KeyError for an item without roles."""
    if "roles" in item:
        return [value["S"] for value in item["roles"]["L"]]
    return [item["role"]["S"]]


def _roles_of(item: dict[str, Any]) -> tuple[Role, ...]:
    """KeyError or ValueError for an item without roles, or with one this version does not know."""
    return ordered_roles(Role(name) for name in _role_names(item))


def _credential_of(item: dict[str, Any]) -> Credential:
    return Credential(
        item["sk"]["S"],
        listed_roles(_role_names(item)),
        tuple(value["S"] for value in item["services"]["L"]),
        item["description"]["S"],
        format_timestamp(int(item["created_at"]["N"])),
        format_timestamp(int(item["expires_at"]["N"])) if "expires_at" in item else None,
        format_timestamp(int(item["revoked_at"]["N"])) if "revoked_at" in item else None,
    )


def create_auth_table(auth_store: str) -> None:
    """Create a credential table (``pk``/``sk``, on demand) for ``auth_store = dynamodb://TABLE?..``."""
    url = parse_url(auth_store, setting="auth_store", shards=False)
    client = client_for(url, 2)
    try:
        client.create_table(
            TableName=url.table,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": name, "AttributeType": "S"} for name in ("pk", "sk")],
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
        )
        client.get_waiter("table_exists").wait(
            TableName=url.table, WaiterConfig={"Delay": 1, "MaxAttempts": 120}
        )
    except _BACKEND_ERRORS as exc:
        raise ConfigError(f"cannot create DynamoDB table {url.table}: {error_reason(exc)}") from None


class DynamoCredentialStore:
    """The credential store port on DynamoDB. ``master(create)`` gives the master key (``create``: a missing
    key file may be made, only when the table has no data key yet)."""

    def __init__(
        self,
        url: TableUrl,
        *,
        master: Callable[[bool], Wrapper],
        cache_seconds: float = 5.0,
        monotonic: Callable[[], float] = time.monotonic,
        client: Any = None,
    ) -> None:
        self.table = url.table
        self.name = f"credential table {url.table}"
        self._client = client or client_for(url, 4)
        self._monotonic = monotonic
        self._cache_seconds = cache_seconds
        # A copy older than this (DynamoDB unreachable all along) is no longer trusted: 503 until it answers.
        # It bounds how long a revoked key may work; the floor keeps a brief DynamoDB hiccup, with a small
        # cache_seconds, from turning into 503s for every request.
        self._max_stale = max(3 * cache_seconds, _MIN_STALE_SECONDS)
        self._refresh_lock = threading.Lock()
        self._stop = threading.Event()
        self._days: set[str] = set()  # days registered under #auditday (set.add, .discard are atomic)
        self._last_miss_refresh = float("-inf")
        try:
            self._aead = AESGCM(self._data_key(master))
            self._active = self._load_active()
        except _BACKEND_ERRORS as exc:
            raise ConfigError(f"cannot open the credential table {self.table}: {error_reason(exc)}") from None
        self._loaded_at = self._monotonic()
        # Started here, not at the first look-up: an idle replica keeps its copy fresh (else a first request
        # after max_stale would get a 503). close() stops it.
        self._refresher = threading.Thread(
            target=self._refresh_forever, name="logsvc-credentials", daemon=True
        )
        self._refresher.start()

    # ---- the data key -----------------------------------------------------------------------------------

    def _data_key(self, master: Callable[[bool], Wrapper]) -> bytes:
        where = f"the data key of DynamoDB table {self.table}"
        found = self._client.get_item(TableName=self.table, Key=_KEYRING, ConsistentRead=True).get("Item")
        if found is None:
            wrapper = master(True)
            data_key = secrets.token_bytes(KEY_BYTES)
            document = wrapper.wrap(data_key)
            try:
                self._client.put_item(
                    TableName=self.table,
                    Item=_KEYRING | {"wrapped": {"M": {k: {"S": v} for k, v in document.items()}}},
                    ConditionExpression="attribute_not_exists(pk)",
                )
                return data_key
            except ClientError as exc:
                if _code(exc) != "ConditionalCheckFailedException":
                    raise
            # Another replica made it at the same moment: use theirs.
            found = self._client.get_item(TableName=self.table, Key=_KEYRING, ConsistentRead=True)["Item"]
        document = {k: v["S"] for k, v in found["wrapped"]["M"].items()}
        return master(False).unwrap(document, where)

    def _seal(self, access_key_id: str, secret: str) -> bytes:
        nonce = secrets.token_bytes(12)
        return nonce + self._aead.encrypt(nonce, secret.encode(), _SECRET_AAD + access_key_id.encode())

    def _open(self, access_key_id: str, sealed: bytes) -> str | None:
        try:
            plain = self._aead.decrypt(sealed[:12], sealed[12:], _SECRET_AAD + access_key_id.encode())
        except InvalidTag:
            log.warning("the secret of credential %s does not open with this table's data key", access_key_id)
            return None
        return plain.decode()

    # ---- lookups on the request path --------------------------------------------------------------------

    def _query(self, pk: str, **extra: Any) -> Iterator[dict[str, Any]]:
        request: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": pk}},
            "ConsistentRead": True,
            **extra,
        }
        while True:
            answer = self._client.query(**request)
            yield from answer.get("Items", [])
            if "LastEvaluatedKey" not in answer:
                return
            request["ExclusiveStartKey"] = answer["LastEvaluatedKey"]

    def _load_active(self) -> dict[str, ActiveCredential]:
        active = {}
        for item in self._query(_CREDENTIAL_PK):
            if "revoked_at" in item:
                continue
            key_id = item.get("sk", {}).get("S", "?")
            try:
                found = self._active_of(key_id, item)
            except (KeyError, TypeError, ValueError) as exc:
                # A malformed item, or a role this version does not know (a rolling upgrade): skip it alone.
                log.warning("credential table %s: credential %s skipped: %r", self.table, key_id, exc)
                continue
            if found is not None:
                active[key_id] = found
        return active

    def _active_of(self, key_id: str, item: dict[str, Any]) -> ActiveCredential | None:
        services = tuple(value["S"] for value in item["services"]["L"])
        principal = Principal(id=key_id, roles=frozenset(_roles_of(item)), services=services)
        expires = int(item["expires_at"]["N"]) if "expires_at" in item else None
        secret = self._open(key_id, item["secret"]["B"])
        return (
            ActiveCredential(secret, item["api_key_sha256"]["B"], principal, expires)
            if secret is not None
            else None
        )

    def _refresh(self) -> None:
        """Reload the copy now (raises the backend's exception)."""
        with self._refresh_lock:
            self._reload()

    def _reload(self) -> None:
        """Reload the copy; the caller holds ``_refresh_lock``."""
        started = self._monotonic()
        self._active = self._load_active()
        self._loaded_at = started

    def _refresh_forever(self) -> None:
        while not self._stop.wait(self._cache_seconds):
            try:
                self._refresh()
            except _BACKEND_ERRORS as exc:
                log.warning(
                    "credential table %s: reload failed, keeping the copy: %s", self.table, error_reason(exc)
                )
            except Exception:  # the thread must outlive any one reload: it is what keeps the copy fresh
                log.exception("credential table %s: reload failed, keeping the copy", self.table)

    def _current(self) -> dict[str, ActiveCredential]:
        if self._monotonic() - self._loaded_at > self._max_stale:
            raise StoreUnavailable("the credential store could not be reached; retry later")
        return self._active

    def active(self, access_key_id: str) -> ActiveCredential | None:
        found = self._current().get(access_key_id)
        if found is None and access_key_id:
            found = self._after_miss(access_key_id)
        return found

    def _after_miss(self, access_key_id: str) -> ActiveCredential | None:
        """Reload once for an id the copy does not know (perhaps created on another replica a moment ago).

        Called on the event loop, so it never waits: while a reload is under way (the background one, or
        another miss's) the answer comes from the current copy, and there is at most one such Query a second.
        """
        if not self._refresh_lock.acquire(blocking=False):
            return None
        try:
            now = self._monotonic()
            if now - self._last_miss_refresh < _MISS_REFRESH_SECONDS:
                return None
            self._last_miss_refresh = now
            self._reload()
        except _BACKEND_ERRORS as exc:
            raise self._unavailable(exc) from None
        finally:
            self._refresh_lock.release()
        return self._active.get(access_key_id)

    # ---- management ---------------------------------------------------------------------------------------

    def _unavailable(self, exc: ClientError | BotoCoreError) -> StoreUnavailable:
        log.warning("credential table %s: %s", self.table, error_reason(exc))
        return StoreUnavailable("the credential store could not answer; retry later")

    def _item(self, record: CredentialRecord) -> dict[str, Any]:
        item: dict[str, Any] = {
            "pk": {"S": _CREDENTIAL_PK},
            "sk": {"S": record.access_key_id},
            "roles": {"L": [{"S": role.value} for role in record.roles]},
            "services": {"L": [{"S": pattern} for pattern in record.services]},
            "description": {"S": record.description},
            "created_at": {"N": str(record.created_at)},
            "api_key_sha256": {"B": record.api_key_sha256},
            "secret": {"B": self._seal(record.access_key_id, record.secret_access_key)},
        }
        if len(record.roles) == 1:
            item["role"] = {"S": record.roles[0].value}
        if record.expires_at is not None:
            item["expires_at"] = {"N": str(record.expires_at)}
        return item

    def _put_new(self, record: CredentialRecord) -> dict[str, Any]:
        item = self._item(record)
        return {
            "Put": {"TableName": self.table, "Item": item, "ConditionExpression": "attribute_not_exists(sk)"}
        }

    def _audit_puts(self, event: AuditRecord) -> list[dict[str, Any]]:
        """The transaction items that record one audit event (and its day, the first time)."""
        day = _day(event.at)
        puts = [{"Put": {"TableName": self.table, "Item": self._audit_item(event)}}]
        if day not in self._days:
            puts.append({"Put": {"TableName": self.table, "Item": self._day_item(day)}})
        return puts

    def _audit_item(self, event: AuditRecord) -> dict[str, Any]:
        return {
            "pk": {"S": f"#audit#{_day(event.at)}"},
            "sk": {"S": f"{event.at:019d}#{secrets.token_hex(8)}"},
            "at": {"N": str(event.at)},
            "actor": {"S": event.actor},
            "action": {"S": event.action},
            "target": {"S": event.target},
            "source": {"S": event.source},
            "detail": {"S": event.detail},
            "count": {"N": str(event.count)},
        }

    @staticmethod
    def _day_item(day: str) -> dict[str, Any]:
        return {"pk": {"S": _AUDIT_DAYS_PK}, "sk": {"S": day}}

    def put_credential(self, record: CredentialRecord, event: AuditRecord) -> None:
        self._transact([self._put_new(record), *self._audit_puts(event)], _day(event.at))

    def _transact(self, items: list[dict[str, Any]], day: str) -> None:
        try:
            self._client.transact_write_items(TransactItems=items)
        except _BACKEND_ERRORS as exc:
            raise self._unavailable(exc) from None
        self._days.add(day)

    def put_first_admin(
        self,
        record: CredentialRecord,
        event: AuditRecord,
        has_admin: Callable[[Iterable[ActiveCredential]], bool],
    ) -> bool:
        """The first admin, stored by exactly one replica: the write that stores it also moves the
        ``#bootstrap`` epoch, on condition that it is still the epoch this replica read before it found no
        admin. A replica that read the same epoch loses the condition and stores nothing. DynamoDB may
        instead cancel concurrent transactions on ``#bootstrap`` as a conflict: then read again, a few
        times, after a random pause.

        A write that failed may still have been stored: its answer lost after botocore's last retry, or a
        retry refused because the first try had moved the epoch. Reporting that as a failure would leave
        an admin whose secret nobody was shown, and a restart would find it and make none. So after any
        failure ``#bootstrap`` is read again, and it names the admin that was stored."""
        attempts = 0
        while True:
            try:
                return self._first_admin_once(record, event, has_admin)
            except ClientError as exc:
                attempts += 1
                if not _transaction_conflict(exc) or attempts >= _BOOTSTRAP_ATTEMPTS:
                    failure: ClientError | BotoCoreError = exc
                    break
            except BotoCoreError as exc:
                failure = exc
                break
            time.sleep(secrets.SystemRandom().uniform(0.05, 0.2 * attempts))
        try:
            stored = self._stored_first_admin(record, event)
        except _BACKEND_ERRORS:
            stored = False
        if not stored:
            raise self._unavailable(failure) from None
        return True

    def _stored_first_admin(self, record: CredentialRecord, event: AuditRecord) -> bool:
        """Whether ``#bootstrap`` names ``record``'s admin: the transaction that stored it moved the epoch,
        so the whole of it was stored."""
        found = self._client.get_item(TableName=self.table, Key=_BOOTSTRAP, ConsistentRead=True)
        if found.get("Item", {}).get("admin", {}).get("S") != record.access_key_id:
            return False
        self._days.add(_day(event.at))
        return True

    def _first_admin_once(
        self,
        record: CredentialRecord,
        event: AuditRecord,
        has_admin: Callable[[Iterable[ActiveCredential]], bool],
    ) -> bool:
        found = self._client.get_item(TableName=self.table, Key=_BOOTSTRAP, ConsistentRead=True)
        epoch = int(found["Item"]["epoch"]["N"]) if "Item" in found else 0
        self._refresh()  # after reading the epoch: a bootstrap that moved it is visible here
        if has_admin(self._active.values()):
            return False
        claim: dict[str, Any] = {
            "TableName": self.table,
            "Item": _BOOTSTRAP | {"epoch": {"N": str(epoch + 1)}, "admin": {"S": record.access_key_id}},
        }
        if epoch == 0:
            claim["ConditionExpression"] = "attribute_not_exists(pk)"
        else:
            claim["ConditionExpression"] = "epoch = :seen"
            claim["ExpressionAttributeValues"] = {":seen": {"N": str(epoch)}}
        items = [{"Put": claim}, self._put_new(record), *self._audit_puts(event)]
        try:
            self._client.transact_write_items(TransactItems=items)
        except ClientError as exc:
            if _first_condition_failed(exc):
                # The epoch moved: another replica stores its admin, or an earlier try of this
                # transaction, whose answer was lost, stored this one.
                return self._stored_first_admin(record, event)
            raise
        self._days.add(_day(event.at))
        return True

    def put_revocation(self, access_key_id: str, event: AuditRecord) -> Credential:
        update = {
            "Update": {
                "TableName": self.table,
                "Key": {"pk": {"S": _CREDENTIAL_PK}, "sk": {"S": access_key_id}},
                "UpdateExpression": "SET revoked_at = :now",
                "ConditionExpression": "attribute_exists(sk) AND attribute_not_exists(revoked_at)",
                "ExpressionAttributeValues": {":now": {"N": str(event.at)}},
            }
        }
        try:
            self._client.transact_write_items(TransactItems=[update, *self._audit_puts(event)])
        except ClientError as exc:
            if _first_condition_failed(exc):
                raise NotFound(f"no active credential with access key id {access_key_id}") from None
            raise self._unavailable(exc) from None
        except BotoCoreError as exc:
            raise self._unavailable(exc) from None
        self._days.add(_day(event.at))
        with self._refresh_lock:  # here at once; a reload under way read the table before the revocation
            self._active = {k: v for k, v in self._active.items() if k != access_key_id}
        try:
            key = {"pk": {"S": _CREDENTIAL_PK}, "sk": {"S": access_key_id}}
            item = self._client.get_item(TableName=self.table, Key=key, ConsistentRead=True)["Item"]
        except _BACKEND_ERRORS as exc:
            raise self._unavailable(exc) from None
        return _credential_of(item)

    def credentials(self) -> list[Credential]:
        try:
            items = list(self._query(_CREDENTIAL_PK))
        except _BACKEND_ERRORS as exc:
            raise self._unavailable(exc) from None
        return sorted((_credential_of(item) for item in items), key=lambda c: c.created_at)

    def all_active(self) -> list[ActiveCredential]:
        """Asks the table."""
        try:
            self._refresh()
        except _BACKEND_ERRORS as exc:
            raise self._unavailable(exc) from None
        return list(self._active.values())

    # ---- audit ------------------------------------------------------------------------------------------

    def write_audit(self, events: Sequence[AuditRecord]) -> None:
        try:
            for day in sorted({_day(event.at) for event in events} - self._days):
                self._client.put_item(TableName=self.table, Item=self._day_item(day))
                self._days.add(day)
            requests = [{"PutRequest": {"Item": self._audit_item(event)}} for event in events]
            for start in range(0, len(requests), _BATCH):
                self._batch_write(requests[start : start + _BATCH])
        except _BACKEND_ERRORS as exc:
            raise self._unavailable(exc) from None

    def delete_audit_before(self, cutoff_us: int) -> int:
        """By whole days (UTC): a day goes when all of it is older than ``cutoff_us``. Queries and
        BatchWriteItem, never a Scan; how many events."""
        last_kept = _day(cutoff_us)
        deleted = 0
        try:
            for day_item in list(self._query(_AUDIT_DAYS_PK)):
                day = day_item["sk"]["S"]
                if day >= last_kept:
                    break  # the days come in order, oldest first
                batch: list[dict[str, Any]] = []
                # Deleted page by page as the Query reads them: a day may hold many.
                for item in self._query(f"#audit#{day}", ProjectionExpression="pk, sk"):
                    batch.append({"DeleteRequest": {"Key": {"pk": item["pk"], "sk": item["sk"]}}})
                    if len(batch) == _BATCH:
                        self._batch_write(batch)
                        deleted, batch = deleted + len(batch), []
                if batch:
                    self._batch_write(batch)
                    deleted += len(batch)
                # The day's entry goes last: while it exists, a failed run is found and finished next time.
                self._client.delete_item(TableName=self.table, Key=self._day_item(day))
                self._days.discard(day)
        except _BACKEND_ERRORS as exc:
            raise self._unavailable(exc) from None
        return deleted

    def _batch_write(self, requests: list[dict[str, Any]]) -> None:
        for attempt in range(_WRITE_ATTEMPTS):
            answer = self._client.batch_write_item(RequestItems={self.table: requests})
            requests = answer.get("UnprocessedItems", {}).get(self.table, [])
            if not requests:
                return
            time.sleep(min(2.0, 0.05 * 2**attempt) * secrets.SystemRandom().uniform(0.5, 1.0))
        raise StoreUnavailable(f"{len(requests)} audit events left unprocessed (throttled)")

    def read_audit(self, limit: int) -> list[AuditEvent]:
        """The days that hold events, newest first, then each day's events."""
        events: list[AuditEvent] = []
        try:
            for day in self._query(_AUDIT_DAYS_PK, ScanIndexForward=False):
                events_of_day = self._query(f"#audit#{day['sk']['S']}", ScanIndexForward=False, Limit=limit)
                for item in events_of_day:
                    events.append(
                        AuditEvent(
                            format_timestamp(int(item["at"]["N"])),
                            item["actor"]["S"],
                            item["action"]["S"],
                            item["target"]["S"],
                            item["source"]["S"],
                            item["detail"]["S"],
                            int(item["count"]["N"]) if "count" in item else 1,
                        )
                    )
                    if len(events) >= limit:
                        return events
        except _BACKEND_ERRORS as exc:
            raise self._unavailable(exc) from None
        return events

    def close(self) -> None:
        self._stop.set()
        self._refresher.join(timeout=self._cache_seconds + 15)
