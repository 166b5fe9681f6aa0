"""The rules of credentials and of the audit trail (``CredentialService``), each shown on both credential
stores: a real auth.db in tmp_path, and a DynamoDB table on moto's server. Each ``opened`` call is another
process on the same store."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

import pytest

from logsvc.auth.audit import MAX_FIELD_CHARS
from logsvc.auth.credential_service import CredentialService
from logsvc.auth.credentials import AuthStore
from logsvc.auth.dynamodb_credentials import DynamoCredentialStore, create_auth_table
from logsvc.auth.policy import Role
from logsvc.crypto import key_source, master_key_from
from logsvc.errors import Conflict, NotFound
from logsvc.storage.dynamodb_table import parse_url
from tests.conftest import make_settings
from tests.integration.test_shared_credentials import eventually

DAY_US = 86_400_000_000
NOW_US = 1_800_000_000_000_000


class Clock:
    """The service's clock (µs), moved by the test."""

    def __init__(self, now_us: int = NOW_US) -> None:
        self.now = now_us

    def __call__(self) -> int:
        return self.now


class Opener(Protocol):
    def __call__(self, clock: Clock, *, audit_retention_days: float = 0) -> CredentialService: ...


@pytest.fixture(params=["sqlite", "dynamodb"])
def opened(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    """Opens services on one store of the kind the test runs on; closes them all at the end."""
    services: list[CredentialService] = []
    make_store: Callable[[], AuthStore | DynamoCredentialStore]
    if request.param == "sqlite":

        def make_store() -> AuthStore | DynamoCredentialStore:
            return AuthStore(tmp_path / "auth.db")
    else:
        endpoint = request.getfixturevalue("moto_endpoint")
        request.getfixturevalue("aws_credentials")
        url = f"dynamodb://rules-{uuid.uuid4().hex[:12]}?region=us-east-1&endpoint={endpoint}"
        create_auth_table(url)
        settings = make_settings(
            tmp_path / "data", auth_store=url, master_key_file=str(tmp_path / "shared.master.key")
        )
        source = key_source(settings)

        def make_store() -> AuthStore | DynamoCredentialStore:
            return DynamoCredentialStore(
                parse_url(url),
                master=lambda create: master_key_from(source, data_dir=tmp_path / "data", create=create),
                cache_seconds=30,
            )

    def open_service(clock: Clock, *, audit_retention_days: float = 0) -> CredentialService:
        service = CredentialService(make_store(), clock_us=clock, audit_retention_days=audit_retention_days)
        services.append(service)
        return service

    yield open_service
    for service in services:
        service.close()


def test_a_credential_is_unusable_from_its_expiry_on(opened: Opener) -> None:
    clock = Clock()
    service = opened(clock)
    made = service.create(Role.ADMIN, expires_at_us=clock.now + 10, actor="test", source="test")
    assert service.check_api_key(made.api_key) is not None
    assert service.secret_for(made.access_key_id) == made.secret_access_key
    assert service.has_admin()
    clock.now += 10  # expires_at <= now: no longer usable
    assert service.check_api_key(made.api_key) is None
    assert service.secret_for(made.access_key_id) is None
    assert service.principal_for(made.access_key_id, "sigv4") is None
    assert not service.has_admin()
    # Listed still, and not revoked: expiry is a rule of use, not a change of the record.
    (listed,) = service.credentials()
    assert (listed.access_key_id, listed.revoked_at) == (made.access_key_id, None)


def test_the_first_admin_is_created_once_and_again_only_when_none_is_usable(opened: Opener) -> None:
    clock = Clock()
    first, second = opened(clock), opened(clock)
    made = first.bootstrap_admin(description="first start", actor="logsvc", source="local")
    assert made is not None
    assert made.roles == (Role.ADMIN,)
    assert second.bootstrap_admin(description="first start", actor="logsvc", source="local") is None
    assert first.bootstrap_admin(description="first start", actor="logsvc", source="local") is None
    # An admin that expires counts until it has expired; then the next start creates one.
    second.revoke(made.access_key_id, actor="test", source="test")
    expiring = first.create(Role.ADMIN, expires_at_us=clock.now + 10, actor="test", source="test")
    assert second.bootstrap_admin(description="again", actor="logsvc", source="local") is None
    clock.now += 10
    again = second.bootstrap_admin(description="again", actor="logsvc", source="local")
    assert again is not None
    assert first.check_api_key(again.api_key) is not None
    assert {c.access_key_id for c in first.credentials()} == {
        made.access_key_id,
        expiring.access_key_id,
        again.access_key_id,
    }


def test_the_last_usable_admin_is_kept(opened: Opener) -> None:
    clock = Clock()
    service = opened(clock)
    one = service.create(Role.ADMIN, actor="test", source="test")
    two = service.create(Role.ADMIN, actor="test", source="test")
    service.create(Role.ADMIN, expires_at_us=clock.now + 10, actor="test", source="test")
    service.create(Role.READ, actor="test", source="test")
    service.revoke_keeping_an_admin(one.access_key_id, actor="test", source="test")
    clock.now += 10  # the third admin has expired: it does not count
    with pytest.raises(Conflict, match="last usable admin credential"):
        service.revoke_keeping_an_admin(two.access_key_id, actor="test", source="test")
    assert service.check_api_key(two.api_key) is not None
    with pytest.raises(NotFound):
        service.revoke_keeping_an_admin(one.access_key_id, actor="test", source="test")


def test_audit_events_say_who_did_what_the_same_way(opened: Opener) -> None:
    clock = Clock()
    service, other = opened(clock), opened(clock)
    reader = service.create(Role.READ, services=("web*", "api"), actor="alice", source="10.0.0.1")
    clock.now += 1  # events of the same microsecond have no order
    boot = service.bootstrap_admin(description="first", actor="logsvc", source="local")
    assert boot is not None
    clock.now += 1
    service.revoke(reader.access_key_id, actor="bob", source="10.0.0.2")
    events = other.audit(limit=10)
    assert [(e.actor, e.action, e.target, e.source, e.detail, e.count) for e in events] == [
        ("bob", "key.revoke", reader.access_key_id, "10.0.0.2", "", 1),
        ("logsvc", "key.create", boot.access_key_id, "local", "role=admin services=*", 1),
        ("alice", "key.create", reader.access_key_id, "10.0.0.1", "role=read services=web*,api", 1),
    ]
    assert [e.at for e in events] == [f"2027-01-15T08:00:00.00000{n}Z" for n in (2, 1, 0)]
    assert reader.api_key not in repr(events)
    assert reader.secret_access_key not in repr(events)


def test_a_flood_of_refusals_is_aggregated_bounded_and_written_without_being_asked(opened: Opener) -> None:
    clock = Clock()
    service, reader = opened(clock), opened(clock)
    for _ in range(3000):
        service.record_denied(actor="unauthenticated", target="GET /logs", source="10.0.0.1", detail="flood")
    long_target = "GET /\x1b[2J" + "A" * 5000
    service.record_denied(actor="unauthenticated", target=long_target, source="10.0.0.1", detail="x")

    def written() -> list[tuple[str, str, int]]:
        return [(e.target, e.detail, e.count) for e in reader.audit(limit=10) if e.action == "request.denied"]

    # The service's own thread writes them, about a second later: another process sees them.
    assert eventually(lambda: len(written()) == 2)
    by_detail = {detail: (target, count) for target, detail, count in written()}
    assert by_detail["flood"] == ("GET /logs", 3000)
    target, count = by_detail["x"]
    assert count == 1
    assert target.startswith("GET /\\x1b[2J")
    assert target.endswith("…(+4812 chars)")
    assert len(target) < MAX_FIELD_CHARS + 20


def test_audit_records_past_their_retention_are_deleted(opened: Opener) -> None:
    old = opened(Clock(NOW_US - 40 * DAY_US))
    old.create(Role.READ, actor="past", source="local")
    old.record_denied(actor="unauthenticated", target="GET /", source="10.0.0.1", detail="old")
    old.flush_audit()
    kept = opened(Clock(), audit_retention_days=30)
    kept.create(Role.READ, actor="now", source="local")
    forever = opened(Clock())
    assert forever.expire_audit() == 0  # no retention: nothing goes
    assert kept.expire_audit() == 2
    assert [e.actor for e in kept.audit(limit=10)] == ["now"]
