"""Authentication and throttling in front of every route.

The middleware establishes *who* is calling (or refuses bad credentials) and applies the per-credential
rate limit; each route declares *what* it needs (``logsvc.endpoints``) and ``routing.authorize`` enforces
it, so no route can forget to check.
A SigV4 signature covers the body, so for signed requests the body is read here, within the same limits
as everywhere, and left in the scope for the route; everything else about the signature is checked before.
"""

from __future__ import annotations

import logging
import math
from itertools import chain

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Receive, Scope, Send

from logsvc.api._asgi import PARTS_KEY, STATUS_KEY, Parts, request_headers
from logsvc.api.body import receive_body
from logsvc.api.problems import problem_response
from logsvc.auth.authenticator import SIGV4_SCHEME, Authenticator, credential_token
from logsvc.auth.policy import ANONYMOUS, Principal
from logsvc.auth.ratelimit import FailedAuthThrottle, RateLimiter
from logsvc.connection import BODY_ARRIVED
from logsvc.errors import HeadersTooLarge, LogServiceError, TooManyFailedAuthentications, TooManyRequests
from logsvc.settings import Settings

__all__ = ["BODY_KEY", "PRINCIPAL_KEY", "SecurityMiddleware", "client_address"]

PRINCIPAL_KEY = "logsvc.principal"
# The body as sent, when authentication had to read it (a SigV4 signature covers it); the route uses it.
BODY_KEY = "logsvc.body"
log = logging.getLogger("logsvc.security")


def client_address(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


class SecurityMiddleware:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self.limiter = RateLimiter(settings.rate_limit_per_second, settings.rate_limit_burst)
        self.failures = FailedAuthThrottle(settings.failed_auth_per_minute)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        parts: Parts = scope[PARTS_KEY]
        authenticator = parts.authenticator
        headers = request_headers(scope)
        authorization = headers.get("authorization", "")
        try:
            if authorization and self.failures.anyone_failed:
                self._throttle_failures(scope)
            principal = await self._authenticate(scope, receive, headers, authorization, authenticator)
            if principal is not None:
                wait = self.limiter.take(principal.id)
                if wait:
                    raise TooManyRequests(
                        f"this credential is over its rate limit of {self.settings.rate_limit_per_second:g} "
                        "requests per second",
                        retry_after_seconds=max(1, math.ceil(wait)),
                    )
        except ClientDisconnect:
            return  # gone while sending the body of a signed request: nobody to answer
        except LogServiceError as exc:
            if exc.status in (401, 403):
                self.failures.failed(client_address(scope))
                parts.refusals.refused(
                    exc,
                    principal=None,
                    target=f"{scope['method']} {scope['path']}",
                    source=client_address(scope),
                )
            response = problem_response(exc.status, exc.code, exc.title, exc.detail, headers=exc.headers)
            scope[STATUS_KEY] = exc.status
            await response(scope, receive, send)
            return
        scope[PRINCIPAL_KEY] = principal
        if not authorization.startswith(SIGV4_SCHEME):
            await self.app(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            if scope.get(STATUS_KEY, 500) >= 500:
                authenticator.sigv4.forget(authorization)

    def _throttle_failures(self, scope: Scope) -> None:
        """Refuse an address over its failed authentications before checking (or reading) anything, so
        that guessing costs the server nothing and fills no audit trail."""
        wait = self.failures.delay(client_address(scope))
        if wait:
            raise TooManyFailedAuthentications(
                "too many failed authentications from this address: over "
                f"{self.failures.per_minute:g} a minute",
                retry_after_seconds=max(1, math.ceil(wait)),
            )

    async def _authenticate(
        self,
        scope: Scope,
        receive: Receive,
        headers: dict[str, str],
        authorization: str,
        authenticator: Authenticator,
    ) -> Principal | None:
        if sum(map(len, chain.from_iterable(scope["headers"]))) > self.settings.max_header_bytes:
            raise HeadersTooLarge(f"the request headers are over {self.settings.max_header_bytes} bytes")
        if not authorization:
            return ANONYMOUS if self.settings.allow_anonymous else None
        if authorization.startswith(SIGV4_SCHEME):
            raw = scope["headers"]
            # The header dict holds every header unless a name is repeated; then all are decoded again.
            # All but the signature itself is checked first: a malformed or unknown credential costs no body.
            head = authenticator.sigv4.check_head(
                headers
                if len(headers) == len(raw)
                else [(name.decode("latin-1"), value.decode("latin-1")) for name, value in raw]
            )
            body = await receive_body(
                receive,
                headers,
                max_bytes=self.settings.max_body_bytes,
                timeout=self.settings.body_timeout,
                arrived=BODY_ARRIVED in scope,
            )
            scope[BODY_KEY] = body
            raw_path: bytes | None = scope.get("raw_path")
            return authenticator.from_signature(
                head,
                method=scope["method"],
                path=(scope["path"].encode() if raw_path is None else raw_path)
                .decode("latin-1")
                .split("?", 1)[0],
                query=scope["query_string"].decode("latin-1"),
                body=body,
            )
        return await authenticator.from_token(credential_token(authorization, path=scope["path"]))
