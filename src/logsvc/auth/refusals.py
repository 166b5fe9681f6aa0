"""The one rule for auditing refused requests, used by the HTTP middleware, the route guard and the Lambda
functions alike.

A caller whose credentials were refused is recorded as ``unauthenticated`` with the refusal's code (its
claimed identity proves nothing); a known caller refused a permission is recorded by id, with the reason.
Without a credential store there is no audit trail to write to (the Lambda functions: docs/aws.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from logsvc.auth.policy import Principal
from logsvc.errors import LogServiceError

if TYPE_CHECKING:  # the Lambda functions import this module and must not load SQLite
    from logsvc.auth.credential_service import CredentialService

__all__ = ["RefusalAudit"]


class RefusalAudit:
    def __init__(self, store: CredentialService | None) -> None:
        self.store = store

    def refused(self, exc: LogServiceError, *, principal: Principal | None, target: str, source: str) -> None:
        if self.store is None:
            return
        if principal is None:
            self.store.record_denied(actor="unauthenticated", target=target, source=source, detail=exc.code)
        else:
            self.store.record_denied(actor=principal.id, target=target, source=source, detail=exc.detail)
