"""The identity API Gateway authenticated, mapped to a Principal: a role and the services it covers.

IAM callers are looked up in the ``aws_principals`` setting, keyed by role or user ARN. A caller that assumed
a role signs as ``arn:aws:sts::ACCOUNT:assumed-role/NAME/SESSION``: that ARN carries neither the ``iam``
service nor the role's path, so it is matched on (partition, account, role name), which IAM keeps unique
in an account whatever the path. Cognito and other JWT callers get their roles from ``jwt_role_claim`` (or
``jwt_default_roles`` without one) and their services from ``jwt_service_claim``, as bearer tokens do on
the server.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from logsvc.auth.policy import Principal, Role, claim_values, token_principal
from logsvc.aws.events import Identity
from logsvc.domain.iam import IamKey, iam_role_or_user
from logsvc.errors import AuthenticationFailed, ConfigError, Forbidden
from logsvc.settings import AwsGrant, Settings

__all__ = ["PrincipalMap", "iam_key"]

_ASSUMED_ROLE_ARN = re.compile(r"^arn:(aws[a-z-]*):sts::(\d{12}):assumed-role/([^/]+)/[^/]+$")


def iam_key(arn: str) -> IamKey | None:
    """What identifies an IAM role or user in an ARN: an ``iam`` role or user ARN (any path), or an
    assumed-role session ARN (which names its role). None for anything else (root, federated users)."""
    if key := iam_role_or_user(arn):
        return key
    if match := _ASSUMED_ROLE_ARN.match(arn):
        partition, account, name = match.groups()
        return partition, account, "role", name
    return None


class PrincipalMap:
    """Turns an event's identity into a Principal, or raises 401 (none) / 403 (not mapped)."""

    def __init__(
        self,
        grants: Mapping[str, AwsGrant],
        *,
        role_claim: str = "cognito:groups",
        service_claim: str = "logsvc:services",
        default_roles: tuple[Role, ...] = (),
    ) -> None:
        self._grants: dict[IamKey, AwsGrant] = {}
        for arn, grant in grants.items():
            key = iam_role_or_user(arn)  # a role or user itself, never a session
            if key is None:
                raise ConfigError(f"aws_principals: {arn} is not an IAM role or user ARN")
            if key in self._grants and self._grants[key] != grant:
                raise ConfigError(
                    f"aws_principals: {arn} names the same {key[2]} as another entry with other rights "
                    "(IAM names are unique in an account whatever their path)"
                )
            self._grants[key] = grant
        self._role_claim = role_claim
        self._service_claim = service_claim
        self._default_roles = default_roles

    @classmethod
    def from_settings(cls, settings: Settings) -> PrincipalMap:
        return cls(
            settings.aws_principals,
            role_claim=settings.jwt_role_claim,
            service_claim=settings.jwt_service_claim,
            default_roles=settings.jwt_default_roles,
        )

    def principal(self, identity: Identity | None) -> Principal:
        if identity is None:
            # API Gateway with AWS_IAM or Cognito never lets such a request through; a function URL with
            # auth type NONE does.
            raise AuthenticationFailed(
                "the request carries no AWS identity: call through API Gateway (AWS_IAM or Cognito) or a "
                "function URL with auth type AWS_IAM, signing the request with Signature V4",
                code="missing_authentication_token",
            )
        if identity.kind == "iam":
            return self._iam(identity)
        if identity.kind == "jwt":
            return self._jwt(identity.claims)
        raise Forbidden(
            "callers admitted by a Lambda authorizer are not mapped to a role; use AWS_IAM or Cognito"
        )

    def _iam(self, identity: Identity) -> Principal:
        key = iam_key(identity.arn)
        grant = self._grants.get(key) if key is not None else None
        if grant is None:
            raise Forbidden(
                f"the AWS identity {identity.arn or identity.caller or 'of this request'} is not granted a "
                "role: add its role or user ARN to the aws_principals setting"
            )
        return Principal(
            id=identity.arn, roles=frozenset(grant.granted), services=tuple(grant.services), method="aws_iam"
        )

    def _jwt(self, claims: dict[str, Any]) -> Principal:
        subject = str(claims.get("sub") or claims.get("cognito:username") or claims.get("username") or "")
        return token_principal(
            subject,
            claim_values(claims.get(self._role_claim), self._role_claim),
            claim_values(claims.get(self._service_claim), self._service_claim),
            service_claim=self._service_claim,
            default_roles=self._default_roles,
        )
