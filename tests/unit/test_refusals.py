"""The one rule for auditing refused requests (auth.refusals), on a real credential store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from logsvc.auth.credential_service import CredentialService
from logsvc.auth.credentials import AuthStore
from logsvc.auth.policy import Permission, Principal, Role
from logsvc.auth.refusals import RefusalAudit
from logsvc.endpoints import ENDPOINTS
from logsvc.errors import AuthenticationFailed, Forbidden
from logsvc.routing import authorize


@pytest.fixture
def store(tmp_path: Path) -> Iterator[CredentialService]:
    service = CredentialService(AuthStore(tmp_path / "auth.db"))
    yield service
    service.close()


def test_refused_credentials_are_recorded_as_unauthenticated_with_the_code(store: CredentialService) -> None:
    refused = AuthenticationFailed("the API key is unknown, revoked or expired", code="invalid_api_key")
    RefusalAudit(store).refused(refused, principal=None, target="GET /logs", source="10.0.0.1")
    (event,) = store.audit(limit=10)
    assert (event.actor, event.action, event.target, event.source, event.detail) == (
        "unauthenticated",
        "request.denied",
        "GET /logs",
        "10.0.0.1",
        "invalid_api_key",
    )


def test_a_known_caller_refused_a_permission_is_recorded_by_id_with_the_reason(
    store: CredentialService,
) -> None:
    reader = Principal(id="LSKREADER", roles=frozenset({Role.READ}))
    admin_route = next(endpoint for endpoint in ENDPOINTS if endpoint.permission is Permission.ADMIN)
    with pytest.raises(Forbidden) as refused:
        authorize(admin_route, reader, RefusalAudit(store), source="10.0.0.2")
    (event,) = store.audit(limit=10)
    assert (event.actor, event.target, event.source) == ("LSKREADER", admin_route.target, "10.0.0.2")
    assert event.detail == refused.value.detail


def test_a_request_without_credentials_is_refused_but_not_recorded(store: CredentialService) -> None:
    guarded = next(endpoint for endpoint in ENDPOINTS if endpoint.permission is Permission.READ)
    with pytest.raises(AuthenticationFailed):
        authorize(guarded, None, RefusalAudit(store), source="10.0.0.3")
    assert store.audit(limit=10) == []
