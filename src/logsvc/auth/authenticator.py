"""Turning the credentials on a request into a Principal, whichever of the three schemes it uses."""

from __future__ import annotations

import asyncio
import base64

from logsvc.auth.credential_service import API_KEY_PREFIX, CredentialService
from logsvc.auth.jwt import JwtVerifier
from logsvc.auth.policy import Principal, Role, token_principal
from logsvc.auth.sigv4 import SignedHead, SigV4Verifier, is_normalized
from logsvc.domain.compat import raw_token_accepted
from logsvc.errors import ACCEPTED_CREDENTIALS, AuthenticationFailed, InvalidSignature, SignatureMismatch

__all__ = ["SIGV4_SCHEME", "Authenticator", "credential_token"]

SIGV4_SCHEME = "AWS4-HMAC-SHA256"


def credential_token(authorization: str, *, path: str) -> str:
    """The token an ``Authorization`` header carries (an API key or an OIDC token): ``Bearer <token>``;
    ``Basic base64(user:token)``, as log shippers send an API key (the password, or the user name when the
    password is empty); or, only where the older Cognito clients send it (``raw_token_accepted``), the raw
    token, as API Gateway's Cognito authorizer takes it."""
    scheme, _, rest = authorization.strip().partition(" ")
    if scheme.lower() == "bearer":
        return rest.strip()
    if scheme.lower() == "basic":
        try:
            user, _, password = base64.b64decode(rest.strip(), validate=True).decode().partition(":")
        # All of base64's and UTF-8's refusals are ValueErrors, text that is not ASCII included.
        except ValueError:
            raise AuthenticationFailed(
                "the Basic credentials are not base64 of user:password", code="invalid_token"
            ) from None
        return password or user
    if rest or not raw_token_accepted(path):
        raise AuthenticationFailed(
            f"the Authorization header is not one this service accepts; send {ACCEPTED_CREDENTIALS}",
            code="invalid_token",
        )
    return scheme


class Authenticator:
    def __init__(
        self,
        store: CredentialService,
        *,
        region: str,
        service: str,
        jwt: JwtVerifier | None = None,
        jwt_default_roles: tuple[Role, ...] = (),
        replay_guard: bool = False,
    ) -> None:
        self.store = store
        self.sigv4 = SigV4Verifier(
            store.secret_for, region=region, service=service, replay_guard=replay_guard
        )
        self.jwt = jwt
        self._jwt_default_roles = jwt_default_roles

    def from_signature(
        self, head: SignedHead, *, method: str, path: str, query: str, body: bytes
    ) -> Principal:
        """The signer of a request: ``head`` is what ``sigv4.check_head`` found in its headers before the
        body came; ``path`` is raw (as on the wire), without the query."""
        if not is_normalized(path):
            # The signature covers the path normalized; the router reads it as sent.
            raise InvalidSignature(
                "the path has '.' or '..' segments or repeated slashes; send it as it was signed, normalized"
            )
        access_key_id = self.sigv4.check_body(head, method, path, query, body)
        principal = self.store.principal_for(access_key_id, "sigv4")
        if principal is None:  # revoked or expired between the two look-ups
            raise SignatureMismatch()
        return principal

    async def from_token(self, token: str) -> Principal:
        """An API key (``lsk_...``) or, when OIDC is configured, a JWT."""
        if token.startswith(API_KEY_PREFIX):
            principal = self.store.check_api_key(token)
            if principal is None:
                raise AuthenticationFailed(
                    "the API key is unknown, revoked or expired", code="invalid_api_key"
                )
            return principal
        if self.jwt is None:
            raise AuthenticationFailed(
                "the bearer token is not an API key (lsk_...) and OIDC tokens are not configured",
                code="invalid_token",
            )
        # A JWKS refresh is a blocking HTTP fetch; keep it off the event loop.
        claims = await asyncio.to_thread(self.jwt.verify, token)
        return token_principal(
            claims.subject,
            claims.roles,
            claims.services,
            service_claim=self.jwt.service_claim,
            default_roles=self._jwt_default_roles,
            expires_at_us=claims.expires_at * 1_000_000 if claims.expires_at is not None else None,
        )
