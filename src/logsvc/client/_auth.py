"""Credentials as ``httpx.Auth`` (httpx's seam for signing each request as it is sent): SigV4 and bearer.

SigV4 signs with ``logsvc.auth.sigv4.sign``, the one implementation the server verifies with. AWS credentials
come from a value, or from botocore's chain (``AwsChain``), which is imported only when one is made: botocore
is not a dependency of the SDK (the ``aws`` extra installs it).
"""

from __future__ import annotations

import functools
import re
import threading
import uuid
from collections.abc import Callable, Generator
from typing import Any
from urllib.parse import urlsplit

import httpx
import msgspec

from logsvc.auth.sigv4 import SignedRequest, sign
from logsvc.client._errors import CredentialsUnavailable

__all__ = ["AwsChain", "AwsCredentials", "BearerAuth", "CredentialSource", "SigV4Auth", "region_of"]

_AWS_HOST = re.compile(r"\.(?:execute-api|lambda-url)\.([a-z0-9-]+)\.(?:amazonaws\.com|on\.aws)$")


class AwsCredentials(msgspec.Struct, frozen=True):
    """An access key pair (a logsvc SigV4 key, or AWS keys for API Gateway with IAM authorization)."""

    access_key_id: str
    secret_access_key: str
    session_token: str | None = None

    def __repr__(self) -> str:
        return f"AwsCredentials(access_key_id={self.access_key_id!r}, ...)"


CredentialSource = Callable[[], AwsCredentials]
"""Something that gives the credentials to sign the next request with, such as an ``AwsChain``."""


def region_of(endpoint: str) -> str | None:
    """The region in an API Gateway or function URL host name."""
    match = _AWS_HOST.search(urlsplit(endpoint).hostname or "")
    return match.group(1) if match else None


class SigV4Auth(httpx.Auth):
    """AWS Signature V4 (``AWS4-HMAC-SHA256``) on every request, as API Gateway and logsvc verify it.

    Each request also carries a signed random ``X-Request-Id``, so that no two requests share a signature:
    a server with the optional replay guard (``sigv4_replay_guard``) refuses a signature seen before, and a
    retry of the same body in the same second would otherwise be one.
    """

    requires_request_body = True

    def __init__(
        self,
        credentials: AwsCredentials | CredentialSource,
        *,
        region: str = "us-east-1",
        service: str = "execute-api",
    ) -> None:
        self._credentials = credentials
        self.region = region
        self.service = service

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        credentials = (
            self._credentials if isinstance(self._credentials, AwsCredentials) else self._credentials()
        )
        if "x-request-id" not in request.headers:
            request.headers["X-Request-Id"] = uuid.uuid4().hex
        path = request.url.raw_path.partition(b"?")[0].decode("ascii")
        unsigned = SignedRequest(
            request.method,
            path,
            request.url.query.decode("ascii"),
            request.headers.multi_items(),
            request.content,
        )
        for name, value in sign(
            unsigned,
            access_key_id=credentials.access_key_id,
            secret_access_key=credentials.secret_access_key,
            session_token=credentials.session_token,
            region=self.region,
            service=self.service,
        ):
            request.headers[name] = value
        yield request


class BearerAuth(httpx.Auth):
    """``Authorization: Bearer`` with an API key or an OIDC token; a callable is asked before each request,
    so that a token that expires can be renewed."""

    def __init__(self, token: str | Callable[[], str]) -> None:
        self._token = token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        token = self._token if isinstance(self._token, str) else self._token()
        request.headers["Authorization"] = f"Bearer {token}"
        yield request


class AwsChain:
    """Credentials from botocore's chain: environment, shared files and profiles, SSO, container and instance
    roles; renewed by botocore before they expire. With ``role_arn``, that role is assumed with those
    credentials (and ``external_id``, if its trust policy requires one), and assumed again before its
    session ends.

    botocore is imported here, when a chain is made, never by ``import logsvc.client``.
    """

    def __init__(
        self,
        *,
        profile: str | None = None,
        role_arn: str | None = None,
        external_id: str | None = None,
        region: str | None = None,
        session_name: str = "logsvc-client",
    ) -> None:
        try:
            import botocore.credentials  # noqa: PLC0415 (botocore is optional: only this class needs it)
            import botocore.exceptions  # noqa: PLC0415
            import botocore.session  # noqa: PLC0415
        except ModuleNotFoundError:
            raise CredentialsUnavailable("AwsChain needs botocore: pip install 'logsvc[aws]'") from None
        self._failures = (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError)
        session = botocore.session.Session(profile=profile)
        try:
            found = session.get_credentials()
        except self._failures as exc:
            raise CredentialsUnavailable(f"no AWS credentials: {exc}") from exc
        if found is None:
            raise CredentialsUnavailable(
                "no AWS credentials found (environment, ~/.aws, or an instance role)"
            )
        if role_arn:
            extra: dict[str, Any] = {"RoleSessionName": session_name}
            if external_id:
                extra["ExternalId"] = external_id
            fetcher = botocore.credentials.AssumeRoleCredentialFetcher(
                functools.partial(session.create_client, region_name=region),
                found,
                role_arn,
                extra_args=extra,
            )
            found = botocore.credentials.DeferredRefreshableCredentials(
                refresh_using=fetcher.fetch_credentials, method="assume-role"
            )
        self._found = found
        self._lock = threading.Lock()

    def __call__(self) -> AwsCredentials:
        """The credentials now (STS is called here when an assumed role's session is new or ending)."""
        with self._lock:
            try:
                frozen = self._found.get_frozen_credentials()
            except self._failures as exc:
                raise CredentialsUnavailable(f"no AWS credentials: {exc}") from exc
        return AwsCredentials(frozen.access_key, frozen.secret_key, frozen.token)
