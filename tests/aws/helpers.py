"""The sample events of tests/events/, and ways to change their body, caller, path, method and query."""

from __future__ import annotations

import base64
import copy
import gzip
import json
from pathlib import Path
from typing import Any

EVENTS = Path(__file__).resolve().parents[1] / "events"
ACCOUNT = "123456789012"
# Callers as the sample events name them (assumed-role sessions) and the roles aws_principals grants.
INGEST_CALLER = f"arn:aws:sts::{ACCOUNT}:assumed-role/logsvc-ingest/checkout-app"
READ_CALLER = f"arn:aws:sts::{ACCOUNT}:assumed-role/logsvc-read/oncall-laptop"
CHECKOUT_WRITER = f"arn:aws:sts::{ACCOUNT}:assumed-role/checkout-writer/build-42"
CHECKOUT_READER = f"arn:aws:sts::{ACCOUNT}:assumed-role/checkout-reader/dashboard"
ADMIN_USER = f"arn:aws:iam::{ACCOUNT}:user/ops/alice"
STRANGER = f"arn:aws:sts::{ACCOUNT}:assumed-role/somebody-else/session"
PRINCIPALS = {
    f"arn:aws:iam::{ACCOUNT}:role/logsvc-ingest": {"role": "ingest"},
    f"arn:aws:iam::{ACCOUNT}:role/logsvc-read": {"role": "read"},
    # A role under a path: its sessions' ARNs do not show the path.
    f"arn:aws:iam::{ACCOUNT}:role/teams/checkout/checkout-writer": {
        "role": "ingest",
        "services": ["checkout*"],
    },
    f"arn:aws:iam::{ACCOUNT}:role/checkout-reader": {"role": "read", "services": ["checkout*"]},
    ADMIN_USER: {"role": "admin"},
}
FORMATS = ("rest_v1", "http_v2", "function_url")


def load_event(name: str) -> dict[str, Any]:
    """A fresh copy of tests/events/<name>.json, free to change."""
    event: dict[str, Any] = json.loads((EVENTS / f"{name}.json").read_text())
    return event


def ingest_event(
    fmt: str, body: Any, *, caller: str = INGEST_CALLER, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    """The format's POST /logs event carrying ``body`` (JSON-encoded unless bytes or str), from ``caller``."""
    event = with_caller(load_event(f"{fmt}_iam_ingest"), caller)
    return with_body(event, body, headers=headers)


def read_event(
    fmt: str, path: str = "/logs/recent", query: str = "", *, caller: str = READ_CALLER
) -> dict[str, Any]:
    """The format's GET event for ``path`` (``/logs``, ``/logs/recent`` or ``/logs/<id>``) with ``query``."""
    if path.startswith("/logs/") and path != "/logs/recent":
        event = load_event(f"{fmt}_iam_get")
        log_id = path.rsplit("/", 1)[1]
        set_path(event, path, "/logs/{log_id}", {"log_id": log_id})
    else:
        event = load_event(f"{fmt}_iam_recent")
        set_path(event, path, path, None)
    set_query(event, query)
    return with_caller(event, caller)


def set_path(event: dict[str, Any], path: str, template: str, params: dict[str, str] | None) -> None:
    """Point an event at ``path`` as API Gateway would have routed it to ``template``."""
    if event.get("version") == "2.0":
        method = event["requestContext"]["http"]["method"]
        event["rawPath"] = event["requestContext"]["http"]["path"] = path
        if event["routeKey"] != "$default":  # a function URL has no routes
            event["routeKey"] = event["requestContext"]["routeKey"] = f"{method} {template}"
            event["pathParameters"] = params
    else:
        event["path"] = path
        event["resource"] = event["requestContext"]["resourcePath"] = template
        event["requestContext"]["path"] = f"/{event['requestContext']['stage']}{path}"
        event["pathParameters"] = params


def set_method(event: dict[str, Any], method: str) -> dict[str, Any]:
    if event.get("version") == "2.0":
        event["requestContext"]["http"]["method"] = method
    else:
        event["httpMethod"] = event["requestContext"]["httpMethod"] = method
    return event


def set_query(event: dict[str, Any], query: str) -> None:
    """The query string as each format carries it (format 2.0's parsed copy joins repeats with commas)."""
    pairs = [tuple(part.split("=", 1)) for part in query.split("&") if part]
    if event.get("version") == "2.0":
        event["rawQueryString"] = query
        joined: dict[str, str] = {}
        for name, value in pairs:
            joined[name] = f"{joined[name]},{value}" if name in joined else value
        event["queryStringParameters"] = joined or None
    else:
        multi: dict[str, list[str]] = {}
        for name, value in pairs:
            multi.setdefault(name, []).append(value)
        event["multiValueQueryStringParameters"] = multi or None
        event["queryStringParameters"] = {name: values[-1] for name, values in multi.items()} or None


def with_caller(event: dict[str, Any], caller: str | None) -> dict[str, Any]:
    """The event as signed by the IAM identity ``caller`` (an ARN), or by nobody."""
    event = copy.deepcopy(event)
    context = event["requestContext"]
    session = caller.rsplit("/", 1)[1] if caller else None
    if event.get("version") == "2.0":
        if caller is None:
            context.pop("authorizer", None)
        else:
            context["authorizer"] = {
                "iam": {
                    "accessKey": "ASIAEXAMPLEKEYID",
                    "accountId": ACCOUNT,
                    "callerId": f"AROAEXAMPLEROLEID1234:{session}",
                    "cognitoIdentity": None,
                    "principalOrgId": None,
                    "userArn": caller,
                    "userId": f"AROAEXAMPLEROLEID1234:{session}",
                }
            }
    else:
        identity = context["identity"]
        identity["userArn"] = caller
        identity["caller"] = identity["user"] = f"AROAEXAMPLEROLEID1234:{session}" if caller else None
        identity["accessKey"] = "ASIAEXAMPLEKEYID" if caller else None
        identity["accountId"] = ACCOUNT if caller else None
    return event


def with_body(
    event: dict[str, Any], body: Any, *, base64_encoded: bool = False, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    raw = (
        body
        if isinstance(body, bytes)
        else body.encode()
        if isinstance(body, str)
        else json.dumps(body).encode()
    )
    if base64_encoded or not _is_text(raw):
        event["body"] = base64.b64encode(raw).decode()
        event["isBase64Encoded"] = True
    else:
        event["body"] = raw.decode()
        event["isBase64Encoded"] = False
    for name, value in (headers or {}).items():
        set_header(event, name, value)
    return event


def gzipped(body: Any) -> bytes:
    return gzip.compress(json.dumps(body).encode())


def set_header(event: dict[str, Any], name: str, value: str | None) -> None:
    """Set (or, with None, remove) a header in the case the format uses (v2 lower-cases names)."""
    headers = event.setdefault("headers", {}) or {}
    event["headers"] = headers
    for existing in [key for key in headers if key.lower() == name.lower()]:
        del headers[existing]
        if event.get("multiValueHeaders"):
            event["multiValueHeaders"].pop(existing, None)
    if value is None:
        return
    key = name.lower() if event.get("version") == "2.0" else name
    headers[key] = value
    if event.get("multiValueHeaders") is not None:
        event["multiValueHeaders"][key] = [value]


def _is_text(raw: bytes) -> bool:
    try:
        raw.decode()
    except UnicodeDecodeError:
        return False
    return True


def body_of(response: dict[str, Any]) -> Any:
    assert response["isBase64Encoded"] is False
    return json.loads(response["body"])


def claims_of(event: dict[str, Any]) -> dict[str, Any]:
    """The JWT claims of a Cognito event, where its format keeps them."""
    authorizer = event["requestContext"]["authorizer"]
    found: dict[str, Any] = authorizer["jwt"]["claims"] if "jwt" in authorizer else authorizer["claims"]
    return found
