"""The Python SDK of Simple Log Service (docs/sdk.md), also what the ``logsvc`` command calls.

- ``Client`` / ``AsyncClient``: the HTTP API (send, send_batch, recent, pages, get) with typed answers and
  typed errors (``ClientError`` and its subclasses, each carrying the problem document).
- ``LogHandler``: a ``logging.Handler`` that sends in the background and never blocks the application;
  ``LogProcessor``: the same for structlog.
- ``SigV4Auth``, ``AwsCredentials``, ``AwsChain``: AWS Signature V4 as an ``httpx.Auth``.

Importing it loads none of the server's dependencies: an application that only ships logs installs
``logsvc`` without the ``server`` extra (decision 21).
"""

from logsvc.client._auth import AwsChain, AwsCredentials, BearerAuth, CredentialSource, SigV4Auth, region_of
from logsvc.client._client import AsyncClient, Client
from logsvc.client._errors import (
    AuthError,
    BadRequest,
    ClientError,
    CredentialsUnavailable,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    ServerError,
    Throttled,
    Unauthenticated,
    Unreachable,
)
from logsvc.client._handler import LogHandler, LogProcessor
from logsvc.client._models import BatchCreated, Created, Entry, Filters, Page
from logsvc.client._profiles import Profile, load_profile

__all__ = [
    "AsyncClient",
    "AuthError",
    "AwsChain",
    "AwsCredentials",
    "BadRequest",
    "BatchCreated",
    "BearerAuth",
    "Client",
    "ClientError",
    "Created",
    "CredentialSource",
    "CredentialsUnavailable",
    "Entry",
    "Filters",
    "LogHandler",
    "LogProcessor",
    "NotFound",
    "Page",
    "PayloadTooLarge",
    "PermissionDenied",
    "Profile",
    "ServerError",
    "SigV4Auth",
    "Throttled",
    "Unauthenticated",
    "Unreachable",
    "load_profile",
    "region_of",
]
