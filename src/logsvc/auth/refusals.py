"""The one rule for auditing refused requests, used by the HTTP middleware, the route guard and the Lambda
functions alike.

A caller whose credentials were refused is recorded as ``unauthenticated`` with the refusal's code (its
claimed identity proves nothing); a known caller refused a permission is recorded by id, with the reason.
Without a credential store (the Lambda functions: docs/aws.md) the record is a line of the function's log.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from logsvc.auth.audit import audit_field
from logsvc.auth.policy import Principal
from logsvc.errors import LogServiceError

if TYPE_CHECKING:  # the Lambda functions import this module and must not load SQLite
    from logsvc.auth.credential_service import CredentialService

__all__ = ["RefusalAudit"]

log = logging.getLogger("logsvc.audit")


class RefusalAudit:
    def __init__(self, store: CredentialService | None) -> None:
        self.store = store

    def refused(self, exc: LogServiceError, *, principal: Principal | None, target: str, source: str) -> None:
        actor, detail = ("unauthenticated", exc.code) if principal is None else (principal.id, exc.detail)
        if self.store is None:
            # The Lambda functions: their log (CloudWatch Logs) is the trail, one bounded, printable line.
            fields = (audit_field(value) for value in (actor, target, source, detail))
            log.warning("request.denied actor=%s target=%s source=%s detail=%s", *fields)
            return
        self.store.record_denied(actor=actor, target=target, source=source, detail=detail)
