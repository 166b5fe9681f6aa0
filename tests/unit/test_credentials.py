"""The credential store on a real SQLite file: secrets at rest, expiry, cross-process changes, timing."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from logsvc.auth.credential_service import CredentialService
from logsvc.auth.credentials import AuthStore
from logsvc.auth.policy import Role
from logsvc.errors import NotFound


@pytest.fixture
def store(tmp_path: Path) -> CredentialService:
    return CredentialService(AuthStore(tmp_path / "auth.db"))


def test_api_keys_are_kept_only_as_hashes(store: CredentialService, tmp_path: Path) -> None:
    credential = store.create(Role.INGEST, services=("web*",), actor="test", source="test")
    store.close()
    on_disk = b"".join(path.read_bytes() for path in tmp_path.iterdir() if path.name.startswith("auth.db"))
    assert credential.api_key.encode() not in on_disk
    # The random part may itself contain "_": cut the known prefix, not at the last underscore.
    secret = credential.api_key.removeprefix(f"lsk_{credential.access_key_id}_")
    assert len(secret) >= 40
    assert secret.encode() not in on_disk
    assert (tmp_path / "auth.db").stat().st_mode & 0o777 == 0o600


def test_a_change_in_another_process_is_seen_on_the_next_look_up(tmp_path: Path) -> None:
    server, cli = (CredentialService(AuthStore(tmp_path / "auth.db")) for _ in range(2))
    try:
        assert server.credentials() == []
        created = cli.create(Role.READ, actor="cli", source="local")
        principal = server.check_api_key(created.api_key)
        assert principal is not None
        assert principal.roles == frozenset({Role.READ})
        assert server.secret_for(created.access_key_id) == created.secret_access_key
        cli.revoke(created.access_key_id, actor="cli", source="local")
        assert server.check_api_key(created.api_key) is None
        assert server.secret_for(created.access_key_id) is None
        with pytest.raises(NotFound):
            cli.revoke(created.access_key_id, actor="cli", source="local")
    finally:
        server.close()
        cli.close()


def test_expiry_follows_the_clock(tmp_path: Path) -> None:
    now = [1_000_000_000_000_000]
    store = CredentialService(AuthStore(tmp_path / "auth.db"), clock_us=lambda: now[0])
    try:
        credential = store.create(Role.ADMIN, expires_at_us=now[0] + 10, actor="test", source="test")
        assert store.check_api_key(credential.api_key) is not None
        now[0] += 10
        assert store.check_api_key(credential.api_key) is None
        assert store.secret_for(credential.access_key_id) is None
        assert not store.has_admin()  # so the next start creates a new admin instead of locking one out
    finally:
        store.close()


def test_unknown_keys_cost_what_wrong_secrets_cost(store: CredentialService) -> None:
    """Fastest of many interleaved runs filters out scheduling noise. An unknown key id still hashes and
    compares, so that timing does not tell an attacker which key ids exist."""
    real = store.create(Role.READ, actor="test", source="test")
    cases = [
        "lsk_LSKNOBODYHASTHISKEY_" + "x" * 43,
        real.api_key[:-4] + "xxxx",
    ]
    fastest = [float("inf")] * len(cases)
    for _ in range(3000):
        for index, key in enumerate(cases):
            started = time.perf_counter()
            assert store.check_api_key(key) is None
            fastest[index] = min(fastest[index], time.perf_counter() - started)
    unknown, wrong = fastest
    assert 0.7 < unknown / wrong < 1.4


def test_audit_keeps_no_secrets(store: CredentialService) -> None:
    credential = store.create(Role.ADMIN, description="ops", actor="alice", source="10.0.0.1")
    store.revoke(credential.access_key_id, actor="alice", source="10.0.0.1")
    store.record_denied(
        actor="unauthenticated", target="GET /logs", source="10.0.0.2", detail="invalid_api_key"
    )
    events = store.audit(limit=10)
    assert [e.action for e in events] == ["request.denied", "key.revoke", "key.create"]
    assert events[2].actor == "alice"
    assert events[2].source == "10.0.0.1"
    text = repr(events)
    assert credential.api_key not in text
    assert credential.secret_access_key not in text
