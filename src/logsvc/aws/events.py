"""API Gateway and Lambda function URL events, read into one request shape.

Three formats reach the handlers:

- **REST API** (API Gateway v1, proxy integration; also an HTTP API with payload format 1.0): ``httpMethod``,
  ``resource`` (the route template, e.g. ``/logs/{log_id}``), ``pathParameters``,
  ``multiValueQueryStringParameters``; an IAM caller in ``requestContext.identity`` (``userArn``, ``caller``,
  ``accessKey``), Cognito claims in ``requestContext.authorizer.claims``.
- **HTTP API** (payload format 2.0): ``routeKey`` (``"GET /logs/{log_id}"`` or ``$default``), ``rawPath``,
  ``rawQueryString``; an IAM caller in ``requestContext.authorizer.iam``, JWT claims in
  ``requestContext.authorizer.jwt.claims``.
- **Function URL** (payload format 2.0, ``domainName`` under ``lambda-url``): as the HTTP API without routes;
  an IAM caller in ``requestContext.authorizer.iam``, nothing at all with auth type NONE.

Repeated query parameters are kept in order: format 2.0's ``queryStringParameters`` joins repeats with commas,
so the raw query string is parsed instead.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import parse_qsl

import msgspec

from logsvc.errors import FieldError, ValidationFailed

__all__ = ["EventFormat", "Identity", "Request", "parse_event"]

EventFormat = Literal["rest", "http", "url"]


class Identity(msgspec.Struct, frozen=True, kw_only=True):
    """Who API Gateway or Lambda authenticated, before it is mapped to a role.

    ``kind`` is ``iam`` (SigV4: ``arn`` is the caller's ARN, e.g. an assumed-role session), ``jwt`` (a Cognito
    or OIDC token checked by an authorizer: ``claims``) or ``lambda`` (a Lambda authorizer: not mapped).
    """

    kind: Literal["iam", "jwt", "lambda"]
    arn: str = ""
    caller: str = ""
    access_key: str = ""
    account: str = ""
    claims: dict[str, Any] = {}


class Request(msgspec.Struct, frozen=True, kw_only=True):
    """One HTTP request, whichever event carried it. ``headers`` has lower-case names.

    ``route`` is the route template API Gateway matched (``/logs/{log_id}``), or None when it matched none of
    its own (a function URL, a ``$default`` route); ``path`` is the path as requested, without the stage.
    """

    format: EventFormat
    method: str
    path: str
    route: str | None
    path_params: dict[str, str]
    query: list[tuple[str, str]]
    headers: dict[str, str]
    body: bytes
    identity: Identity | None
    request_id: str = ""


def _not_an_http_event(why: str) -> ValidationFailed:
    return ValidationFailed([FieldError("event", f"is not an API Gateway or function URL event: {why}")])


def parse_event(event: object) -> Request:
    """The request an event describes; ValidationFailed if it is not an HTTP event of a known format."""
    if not isinstance(event, dict):
        raise _not_an_http_event("not a JSON object")
    context = event.get("requestContext")
    if not isinstance(context, dict):
        raise _not_an_http_event("no requestContext")
    try:
        if event.get("version") == "2.0":
            return _parse_v2(event, context)
        if "httpMethod" in event:
            return _parse_v1(event, context)
    except (KeyError, TypeError, AttributeError) as exc:
        raise _not_an_http_event(f"missing or malformed {exc}") from None
    raise _not_an_http_event("neither payload format 1.0 nor 2.0")


def _parse_v1(event: dict[str, Any], context: dict[str, Any]) -> Request:
    query: list[tuple[str, str]] = []
    multi = event.get("multiValueQueryStringParameters")
    if multi:
        query = [(name, value) for name, values in multi.items() for value in values or ()]
    elif single := event.get("queryStringParameters"):
        query = list(single.items())
    return Request(
        format="rest",
        method=str(event["httpMethod"]).upper(),
        path=str(event.get("path") or context.get("resourcePath") or "/"),
        route=event.get("resource") or context.get("resourcePath"),
        path_params=dict(event.get("pathParameters") or {}),
        query=query,
        headers=_lower(event.get("headers")),
        body=_body(event),
        identity=_v1_identity(context),
        request_id=str(context.get("requestId") or ""),
    )


def _parse_v2(event: dict[str, Any], context: dict[str, Any]) -> Request:
    http = context["http"]
    route_key = str(event.get("routeKey") or context.get("routeKey") or "$default")
    route = route_key.split(" ", 1)[1] if " " in route_key else None
    path = str(event.get("rawPath") or http.get("path") or "/")
    stage = context.get("stage")
    if stage and stage != "$default" and path.startswith(f"/{stage}/"):
        path = path[len(stage) + 1 :]  # an HTTP API stage other than $default prefixes rawPath
    domain = str(context.get("domainName") or "")
    return Request(
        format="url" if ".lambda-url." in domain else "http",
        method=str(http["method"]).upper(),
        path=path,
        route=route,
        path_params=dict(event.get("pathParameters") or {}),
        query=parse_qsl(str(event.get("rawQueryString") or ""), keep_blank_values=True),
        headers=_lower(event.get("headers")),
        body=_body(event),
        identity=_v2_identity(context),
        request_id=str(context.get("requestId") or ""),
    )


def _lower(headers: Mapping[str, str] | None) -> dict[str, str]:
    return {str(name).lower(): str(value) for name, value in (headers or {}).items()}


def _body(event: dict[str, Any]) -> bytes:
    body = event.get("body")
    if body is None:
        return b""
    if event.get("isBase64Encoded"):
        try:
            return base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise ValidationFailed([FieldError("body", "is not valid base64")]) from None
    # Lone surrogates pass through as bytes that are not UTF-8, so the JSON decoder rejects them (400).
    return str(body).encode("utf-8", "surrogatepass")


def _v1_identity(context: dict[str, Any]) -> Identity | None:
    identity = context.get("identity") or {}
    if identity.get("userArn"):
        return Identity(
            kind="iam",
            arn=str(identity["userArn"]),
            caller=str(identity.get("caller") or ""),
            access_key=str(identity.get("accessKey") or ""),
            account=str(identity.get("accountId") or ""),
        )
    authorizer = context.get("authorizer") or {}
    # A REST API's Cognito authorizer puts the claims here; an HTTP API with payload format 1.0 under jwt.
    claims = authorizer.get("claims") or (authorizer.get("jwt") or {}).get("claims")
    if claims:
        return Identity(kind="jwt", claims=dict(claims))
    if authorizer.get("principalId") or authorizer.get("lambda"):
        return Identity(kind="lambda")
    return None


def _v2_identity(context: dict[str, Any]) -> Identity | None:
    authorizer = context.get("authorizer") or {}
    iam = authorizer.get("iam")
    if iam:
        return Identity(
            kind="iam",
            arn=str(iam.get("userArn") or ""),
            caller=str(iam.get("callerId") or ""),
            access_key=str(iam.get("accessKey") or ""),
            account=str(iam.get("accountId") or ""),
        )
    claims = (authorizer.get("jwt") or {}).get("claims")
    if claims:
        return Identity(kind="jwt", claims=dict(claims))
    if authorizer.get("lambda"):
        return Identity(kind="lambda")
    return None
