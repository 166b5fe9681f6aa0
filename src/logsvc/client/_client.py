"""``Client`` and ``AsyncClient``: the HTTP API as methods, one request each, answers as typed values.

The two share every rule (what a request holds, how an answer is read, which exception an error becomes);
only the call differs. Neither retries on its own: ``LogHandler`` does, with client-made log ids that make
a retry harmless. httpx's ``transport=`` is the seam for tests and for in-process use.
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Self, TypeVar, Unpack
from urllib.parse import quote
from uuid import UUID

import httpx
import msgspec

from logsvc import __version__
from logsvc.client._auth import AwsCredentials, BearerAuth, CredentialSource, SigV4Auth, region_of
from logsvc.client._errors import ClientError, Unreachable, error_for
from logsvc.client._models import BatchCreated, Created, Entry, Filters, Page, entry_document, read_params
from logsvc.sse import TailEvent, afollow, follow

__all__ = ["AsyncClient", "Client"]

_T = TypeVar("_T")
_JSON = {"Content-Type": "application/json"}
_READ_PATH = "/logs"
_TAIL_PATH = "/logs/tail"


def _auth(
    url: str,
    api_key: str | None,
    aws_credentials: AwsCredentials | CredentialSource | None,
    token: str | Callable[[], str] | None,
    region: str | None,
) -> httpx.Auth | None:
    given = [
        name
        for name, value in (("api_key", api_key), ("aws_credentials", aws_credentials), ("token", token))
        if value is not None
    ]
    if len(given) > 1:
        raise ValueError(f"give one credential, not {' and '.join(given)}")
    if aws_credentials is not None:
        return SigV4Auth(aws_credentials, region=region or region_of(url) or "us-east-1")
    bearer = api_key if api_key is not None else token
    # No credential at all is allowed: a server with anonymous access enabled takes such requests.
    return None if bearer is None else BearerAuth(bearer)


def _options(
    url: str,
    api_key: str | None,
    aws_credentials: AwsCredentials | CredentialSource | None,
    token: str | Callable[[], str] | None,
    region: str | None,
    timeout: float,
    headers: Mapping[str, str] | None,
) -> dict[str, Any]:
    """What both httpx clients are made with."""
    return {
        "base_url": url,
        "auth": _auth(url, api_key, aws_credentials, token, region),
        "timeout": timeout,
        "headers": {
            "User-Agent": f"logsvc-client/{__version__}",
            "Accept": "application/json",
            **(headers or {}),
        },
    }


def _reason(exc: httpx.RequestError) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _answer(response: httpx.Response, kind: type[_T]) -> _T:
    if response.status_code >= 400:
        raise error_for(response)
    try:
        return msgspec.json.decode(response.content, type=kind)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        # A proxy's page, or a server that is not logsvc, answering 2xx.
        raise ClientError(response.status_code, {"detail": f"unexpected answer: {exc}"}) from None


def _batch(entries: Iterable[Mapping[str, Any] | msgspec.Raw]) -> list[Mapping[str, Any] | msgspec.Raw]:
    batch = list(entries)
    if not batch:
        raise ValueError("send_batch needs at least one entry")
    return batch


def _tail_params(filters: Mapping[str, Any]) -> tuple[str | None, list[tuple[str, str]]]:
    """A tail's cursor and query: the read filters without ``limit``, which does not apply to it."""
    query = dict(filters)
    cursor = query.pop("cursor", None)
    query.pop("limit", None)
    return cursor, sorted(read_params(query).items())


def _tail_timeout(http: httpx.Client | httpx.AsyncClient) -> httpx.Timeout:
    # A stream is quiet between entries; its heartbeats come every 15 s by default.
    return httpx.Timeout(http.timeout.connect, read=max(60.0, http.timeout.read or 0))


def _entry_path(log_id: str | UUID) -> str:
    return f"/logs/{quote(str(log_id), safe='')}"


class Client:
    """The HTTP API of one logsvc endpoint (a base URL, with the API Gateway stage if there is one).

    Give at most one credential: ``api_key`` (sent as a bearer token), ``aws_credentials`` (SigV4: an
    ``AwsCredentials``, or a source such as ``AwsChain()`` asked before each request) or ``token`` (an OIDC
    token, or a callable that returns a fresh one). ``region`` is the SigV4 region; by default the one in
    an AWS host name, else us-east-1. Errors are ``ClientError`` subclasses; a connection that fails or
    times out is ``Unreachable``. Use it as a context manager, or ``close()`` it.
    """

    def __init__(
        self,
        url: str,
        *,
        api_key: str | None = None,
        aws_credentials: AwsCredentials | CredentialSource | None = None,
        token: str | Callable[[], str] | None = None,
        region: str | None = None,
        timeout: float = 10.0,
        headers: Mapping[str, str] | None = None,
        verify: bool | ssl.SSLContext = True,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        options = _options(self.url, api_key, aws_credentials, token, region, timeout, headers)
        self._http = httpx.Client(**options, verify=verify, transport=transport)

    def send(
        self,
        message: str,
        *,
        service: str | None = None,
        level: str | None = None,
        log_type: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        timestamp: str | float | datetime | None = None,
        log_id: str | UUID | None = None,
    ) -> Created:
        """Store one entry; returns once it is durable. A ``log_id`` of your own makes a resend harmless:
        the service keeps one entry per service and log id."""
        document = entry_document(
            message,
            service=service,
            level=level,
            log_type=log_type,
            metadata=metadata,
            timestamp=timestamp,
            log_id=log_id,
        )
        return self._call("POST", "/logs", Created, body=document)

    def send_batch(self, entries: Iterable[Mapping[str, Any] | msgspec.Raw]) -> BatchCreated:
        """Store entries (``POST /logs`` documents, at most 10,000) all or none: a 400 names every bad one.
        An entry may also be a ``msgspec.Raw`` holding one already encoded as JSON."""
        return self._call("POST", "/logs", BatchCreated, body=_batch(entries))

    def page(self, **filters: Unpack[Filters]) -> Page:
        """One page of entries, newest first, with the cursor of the next."""
        return self._call("GET", _READ_PATH, Page, params=httpx.QueryParams(read_params(filters)))

    def recent(self, **filters: Unpack[Filters]) -> list[Entry]:
        """The newest entries that match, newest first (``limit`` of them, 100 by default)."""
        return self.page(**filters).logs

    def pages(self, **filters: Unpack[Filters]) -> Iterator[Page]:
        """Every page that matches, following ``next_cursor``; pages are fetched as the iteration goes."""
        query: dict[str, Any] = dict(filters)
        while True:
            page = self.page(**query)
            yield page
            if page.next_cursor is None:
                return
            query["cursor"] = page.next_cursor

    def get(self, log_id: str | UUID) -> Entry:
        """One entry by id; ``NotFound`` if none this credential may read has it."""
        return self._call("GET", _entry_path(log_id), Entry)

    def tail(self, *, retries: int | None = None, **filters: Unpack[Filters]) -> Iterator[TailEvent]:
        """New entries as they are stored, for as long as it is iterated (``logsvc.sse.follow``): streamed
        by a server, polled from the Lambda shape, which cannot stream; resumed without gaps or repeats
        after a dropped connection (``retries`` times in a row at most; None: for ever). ``cursor`` (an
        event's) goes on after it instead of from now. Each event is an entry or a count the service
        dropped because this reader was too slow. ``limit`` does not apply."""
        cursor, params = _tail_params(filters)
        try:
            yield from follow(self._open_tail, params, cursor=cursor, retries=retries)
        except httpx.TransportError as exc:
            raise Unreachable(self.url, _reason(exc)) from exc

    @contextlib.contextmanager
    def _open_tail(
        self, params: Sequence[tuple[str, str]], headers: dict[str, str]
    ) -> Iterator[httpx.Response]:
        with self._http.stream(
            "GET", _TAIL_PATH, params=list(params), headers=headers, timeout=_tail_timeout(self._http)
        ) as response:
            if response.status_code >= 400:
                response.read()
                raise error_for(response)
            yield response

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _call(
        self,
        method: str,
        path: str,
        kind: type[_T],
        *,
        params: httpx.QueryParams | None = None,
        body: object = None,
    ) -> _T:
        content = None if body is None else msgspec.json.encode(body)
        try:
            response = self._http.request(
                method, path, params=params, content=content, headers=None if content is None else _JSON
            )
        except httpx.RequestError as exc:
            raise Unreachable(self.url, _reason(exc)) from exc
        return _answer(response, kind)


class AsyncClient:
    """``Client`` for asyncio: the same options and methods, each a coroutine (``pages`` an async iterator).
    Concurrent calls share one connection pool."""

    def __init__(
        self,
        url: str,
        *,
        api_key: str | None = None,
        aws_credentials: AwsCredentials | CredentialSource | None = None,
        token: str | Callable[[], str] | None = None,
        region: str | None = None,
        timeout: float = 10.0,
        headers: Mapping[str, str] | None = None,
        verify: bool | ssl.SSLContext = True,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        options = _options(self.url, api_key, aws_credentials, token, region, timeout, headers)
        self._http = httpx.AsyncClient(**options, verify=verify, transport=transport)

    async def send(
        self,
        message: str,
        *,
        service: str | None = None,
        level: str | None = None,
        log_type: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        timestamp: str | float | datetime | None = None,
        log_id: str | UUID | None = None,
    ) -> Created:
        """See ``Client.send``."""
        document = entry_document(
            message,
            service=service,
            level=level,
            log_type=log_type,
            metadata=metadata,
            timestamp=timestamp,
            log_id=log_id,
        )
        return await self._call("POST", "/logs", Created, body=document)

    async def send_batch(self, entries: Iterable[Mapping[str, Any] | msgspec.Raw]) -> BatchCreated:
        """See ``Client.send_batch``."""
        return await self._call("POST", "/logs", BatchCreated, body=_batch(entries))

    async def page(self, **filters: Unpack[Filters]) -> Page:
        return await self._call("GET", _READ_PATH, Page, params=httpx.QueryParams(read_params(filters)))

    async def recent(self, **filters: Unpack[Filters]) -> list[Entry]:
        return (await self.page(**filters)).logs

    async def pages(self, **filters: Unpack[Filters]) -> AsyncIterator[Page]:
        query: dict[str, Any] = dict(filters)
        while True:
            page = await self.page(**query)
            yield page
            if page.next_cursor is None:
                return
            query["cursor"] = page.next_cursor

    async def get(self, log_id: str | UUID) -> Entry:
        return await self._call("GET", _entry_path(log_id), Entry)

    async def tail(
        self, *, retries: int | None = None, **filters: Unpack[Filters]
    ) -> AsyncIterator[TailEvent]:
        """See ``Client.tail``."""
        cursor, params = _tail_params(filters)
        try:
            async for event in afollow(self._open_tail, params, cursor=cursor, retries=retries):
                yield event
        except httpx.TransportError as exc:
            raise Unreachable(self.url, _reason(exc)) from exc

    @contextlib.asynccontextmanager
    async def _open_tail(
        self, params: Sequence[tuple[str, str]], headers: dict[str, str]
    ) -> AsyncIterator[httpx.Response]:
        async with self._http.stream(
            "GET", _TAIL_PATH, params=list(params), headers=headers, timeout=_tail_timeout(self._http)
        ) as response:
            if response.status_code >= 400:
                await response.aread()
                raise error_for(response)
            yield response

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def _call(
        self,
        method: str,
        path: str,
        kind: type[_T],
        *,
        params: httpx.QueryParams | None = None,
        body: object = None,
    ) -> _T:
        content = None if body is None else msgspec.json.encode(body)
        try:
            response = await self._http.request(
                method, path, params=params, content=content, headers=None if content is None else _JSON
            )
        except httpx.RequestError as exc:
            raise Unreachable(self.url, _reason(exc)) from exc
        return _answer(response, kind)
