"""A small client for the HTTP API, used by `logsvc send`, `logsvc recent` and `logsvc tail`.

It signs with SigV4 (a profile's keys, or AWS credentials for API Gateway with IAM authorization) or sends
an API key as a bearer token. Answers of 400 and above become ``RequestFailed`` carrying the problem.
"""

from __future__ import annotations

import configparser
import contextlib
import re
import uuid
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import httpx
import msgspec

from logsvc.auth.sigv4 import SignedRequest, sign
from logsvc.errors import ConfigError
from logsvc.sse import TailEvent, follow

__all__ = ["AwsKeys", "LogClient", "RequestFailed", "aws_keys", "load_profile", "region_of"]

_AWS_HOST = re.compile(r"\.(?:execute-api|lambda-url)\.([a-z0-9-]+)\.(?:amazonaws\.com|on\.aws)$")


class AwsKeys(msgspec.Struct, frozen=True):
    access_key_id: str
    secret_access_key: str
    session_token: str | None = None


class Profile(msgspec.Struct, frozen=True):
    endpoint: str
    keys: AwsKeys | None
    api_key: str | None


class RequestFailed(Exception):
    """The service answered with an error; ``problem`` is its problem+json body when it sent one."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        self.status = status
        self.problem = problem
        title = problem.get("title") or "error"
        errors = [_describe(e) for e in problem.get("errors", [])]
        detail = "; ".join(errors) if errors else str(problem.get("detail") or problem.get("message") or "")
        super().__init__(f"{status} {title}" + (f": {detail}" if detail and detail != title else ""))


def _describe(error: dict[str, Any]) -> str:
    where = "" if error.get("index") is None else f"[{error['index']}] "
    return f"{where}{error.get('field')}: {error.get('message')}"


def _answer(response: httpx.Response) -> dict[str, Any]:
    try:
        answer: dict[str, Any] = msgspec.json.decode(response.content) if response.content else {}
    except msgspec.DecodeError:
        answer = {"detail": response.text[:500]}
    return answer


def load_profile(path: Path, name: str) -> Profile:
    """A profile of the client credentials file that `logsvc serve` writes at first start."""
    parser = configparser.ConfigParser(interpolation=None)
    try:
        found = parser.read(path)
    except configparser.Error as exc:
        raise ConfigError(f"{path} is not a credentials file: {exc}") from None
    if not found:
        raise ConfigError(f"no credentials file at {path}: start the server once, or pass --endpoint")
    if name not in parser:
        raise ConfigError(
            f"{path} has no profile {name!r} (it has: {', '.join(parser.sections()) or 'none'})"
        )
    section = parser[name]
    keys = None
    if section.get("access_key_id") and section.get("secret_access_key"):
        keys = AwsKeys(section["access_key_id"], section["secret_access_key"])
    return Profile(endpoint=section.get("endpoint", ""), keys=keys, api_key=section.get("api_key") or None)


def region_of(endpoint: str) -> str | None:
    """The region in an API Gateway or function URL host name."""
    match = _AWS_HOST.search(urlsplit(endpoint).hostname or "")
    return match.group(1) if match else None


def aws_keys(*, role_arn: str | None = None, external_id: str | None = None, region: str) -> AwsKeys:
    """Credentials from the AWS chain (environment, profile, instance role); with ``role_arn``, those of
    that role, assumed with the external ID its trust policy requires."""
    import boto3  # noqa: PLC0415 (only the --aws path needs it)

    session = boto3.Session()
    if role_arn:
        request: dict[str, Any] = {"RoleArn": role_arn, "RoleSessionName": "logsvc-cli"}
        if external_id:
            request["ExternalId"] = external_id
        given = session.client("sts", region_name=region).assume_role(**request)["Credentials"]
        return AwsKeys(given["AccessKeyId"], given["SecretAccessKey"], given["SessionToken"])
    found = session.get_credentials()
    if found is None:
        raise ConfigError("no AWS credentials found (environment, ~/.aws, or an instance role)")
    frozen = found.get_frozen_credentials()
    return AwsKeys(frozen.access_key, frozen.secret_key, frozen.token)


class LogClient:
    """Requests to one endpoint (a base URL, with the API Gateway stage if there is one)."""

    def __init__(
        self,
        endpoint: str,
        *,
        keys: AwsKeys | None = None,
        api_key: str | None = None,
        region: str = "us-east-1",
        timeout: float = 30.0,
    ) -> None:
        if keys is None and api_key is None:
            raise ConfigError("give credentials: SigV4 keys or an API key")
        self.endpoint = endpoint.rstrip("/")
        self.keys = keys
        self.api_key = api_key
        self.region = region
        self._http = httpx.Client(timeout=timeout)

    def send(self, entries: Sequence[dict[str, Any]]) -> dict[str, Any]:
        body = msgspec.json.encode(entries[0] if len(entries) == 1 else list(entries))
        return self._request("POST", "/logs", (), body)

    def recent(self, params: Iterable[tuple[str, str]]) -> dict[str, Any]:
        return self._request("GET", "/logs/recent", params, b"")

    def tail(
        self, params: Sequence[tuple[str, str]], *, cursor: str | None = None, retries: int | None = None
    ) -> Iterator[TailEvent]:
        """New entries as they commit (``logsvc.sse.follow``): streamed, or polled where the service
        cannot stream; resumed after a dropped connection (``retries`` times in a row at most)."""
        return follow(self._open_tail, params, cursor=cursor, retries=retries)

    @contextlib.contextmanager
    def _open_tail(
        self, params: Sequence[tuple[str, str]], headers: dict[str, str]
    ) -> Iterator[httpx.Response]:
        url, sent = self._prepare("GET", "/logs/tail", params, b"", headers)
        # A stream is quiet between entries; its heartbeats come every 15 s (by default).
        timeout = httpx.Timeout(self._http.timeout.connect, read=max(60.0, self._http.timeout.read or 0))
        with self._http.stream("GET", url, headers=sent, timeout=timeout) as response:
            if response.status_code >= 400:
                response.read()
                raise RequestFailed(response.status_code, _answer(response))
            yield response

    def _request(
        self, method: str, path: str, params: Iterable[tuple[str, str]], body: bytes
    ) -> dict[str, Any]:
        url, headers = self._prepare(method, path, params, body, {"Accept": "application/json"})
        response = self._http.request(method, url, headers=headers, content=body)
        answer = _answer(response)
        if response.status_code >= 400:
            raise RequestFailed(response.status_code, answer)
        return answer

    def _prepare(
        self,
        method: str,
        path: str,
        params: Iterable[tuple[str, str]],
        body: bytes,
        extra: dict[str, str],
    ) -> tuple[httpx.URL, list[tuple[str, str]]]:
        """The URL and the headers of a request, signed (SigV4) or with the API key."""
        url = httpx.URL(self.endpoint + path)
        query = urlencode(list(params), quote_via=quote, safe="-_.~")
        # A signed request id makes every signature unique, so that a server with the optional replay
        # guard on never takes two identical sends (a heartbeat) for a replay.
        headers = [("Host", url.netloc.decode()), *extra.items(), ("X-Request-Id", uuid.uuid4().hex)]
        if body:
            headers.append(("Content-Type", "application/json"))
        if self.keys is not None:
            signed = SignedRequest(method, url.raw_path.decode(), query, headers, body)
            headers += sign(
                signed,
                access_key_id=self.keys.access_key_id,
                secret_access_key=self.keys.secret_access_key,
                session_token=self.keys.session_token,
                region=self.region,
            )
        else:
            headers.append(("Authorization", f"Bearer {self.api_key}"))
        return url.copy_with(query=query.encode()), headers

    def close(self) -> None:
        self._http.close()
