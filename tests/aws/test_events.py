"""Reading the three event formats into one request shape (no AWS, no store)."""

from __future__ import annotations

import base64

import pytest

from logsvc.aws.events import Identity, parse_event
from logsvc.errors import ValidationFailed
from tests.aws.helpers import ACCOUNT, INGEST_CALLER, READ_CALLER, load_event, read_event

LOG_ID = "018e4a2b-7c3d-7e5f-8a9b-0c1d2e3f4a5b"


def test_rest_v1_ingest_event() -> None:
    request = parse_event(load_event("rest_v1_iam_ingest"))
    assert (request.format, request.method, request.path, request.route) == ("rest", "POST", "/logs", "/logs")
    assert request.headers["content-type"] == "application/json"  # sent as Content-Type
    assert request.body.startswith(b'{"service_name": "checkout"')
    assert request.request_id == "6f1d2c3b-4a59-4e8f-9d7c-1b2a3c4d5e6f"
    assert request.identity == Identity(
        kind="iam",
        arn=INGEST_CALLER,
        caller="AROAEXAMPLEROLEID1234:checkout-app",
        access_key="ASIAEXAMPLEKEYID",
        account=ACCOUNT,
    )


def test_rest_v1_get_event_takes_the_resource_and_path_parameters() -> None:
    request = parse_event(load_event("rest_v1_iam_get"))
    assert (request.method, request.path, request.route) == ("GET", f"/logs/{LOG_ID}", "/logs/{log_id}")
    assert request.path_params == {"log_id": LOG_ID}
    assert request.body == b""
    assert request.identity is not None
    assert request.identity.arn == READ_CALLER


def test_rest_v1_keeps_repeated_query_parameters() -> None:
    request = parse_event(read_event("rest_v1", "/logs/recent", "level=WARN&q=disk%20full&level=ERROR"))
    # API Gateway's REST events carry values already percent-decoded; these are as the helper set them.
    assert request.query == [("level", "WARN"), ("level", "ERROR"), ("q", "disk%20full")]


def test_rest_v1_cognito_event_carries_the_claims() -> None:
    request = parse_event(load_event("rest_v1_cognito_list"))
    assert request.identity is not None
    assert request.identity.kind == "jwt"
    assert request.identity.claims["cognito:groups"] == "read"
    assert request.query == [("min_level", "WARN")]


def test_http_v2_events() -> None:
    ingest = parse_event(load_event("http_v2_iam_ingest"))
    assert (ingest.format, ingest.method, ingest.path, ingest.route) == ("http", "POST", "/logs", "/logs")
    assert ingest.identity is not None
    assert (ingest.identity.kind, ingest.identity.arn) == ("iam", INGEST_CALLER)
    assert ingest.identity.caller == "AROAEXAMPLEROLEID1234:checkout-app"

    get = parse_event(load_event("http_v2_iam_get"))
    assert (get.route, get.path_params) == ("/logs/{log_id}", {"log_id": LOG_ID})

    jwt = parse_event(load_event("http_v2_jwt_list"))
    assert jwt.identity is not None
    assert jwt.identity.kind == "jwt"
    assert jwt.identity.claims["cognito:groups"] == "[admin read]"


def test_v2_reads_the_raw_query_string_not_the_comma_joined_copy() -> None:
    event = load_event("http_v2_iam_recent")
    event["rawQueryString"] = "level=WARN&level=ERROR&q=disk%20full%2C%20again&empty="
    event["queryStringParameters"] = {"level": "WARN,ERROR", "q": "disk full, again", "empty": ""}
    request = parse_event(event)
    assert request.query == [("level", "WARN"), ("level", "ERROR"), ("q", "disk full, again"), ("empty", "")]


def test_function_url_events() -> None:
    request = parse_event(load_event("function_url_iam_get"))
    assert (request.format, request.method, request.path, request.route) == (
        "url",
        "GET",
        f"/logs/{LOG_ID}",
        None,
    )
    assert request.path_params == {}
    assert request.identity is not None
    assert request.identity.arn == READ_CALLER
    assert parse_event(load_event("function_url_none_ingest")).identity is None


def test_an_http_api_stage_is_not_part_of_the_path() -> None:
    event = load_event("http_v2_iam_recent")
    event["routeKey"] = event["requestContext"]["routeKey"] = "$default"
    event["requestContext"]["stage"] = "prod"
    event["rawPath"] = "/prod/logs/recent"
    request = parse_event(event)
    assert (request.path, request.route) == ("/logs/recent", None)


def test_base64_bodies_are_decoded() -> None:
    event = load_event("function_url_iam_ingest")
    event["body"] = base64.b64encode(b"\x1f\x8b binary").decode()
    event["isBase64Encoded"] = True
    assert parse_event(event).body == b"\x1f\x8b binary"
    event["body"] = "%%%"
    with pytest.raises(ValidationFailed, match="base64"):
        parse_event(event)


def test_headers_are_case_insensitive_by_lower_casing() -> None:
    event = load_event("rest_v1_iam_ingest")
    event["headers"] = {"Content-Encoding": "gzip", "X-Custom": "1"}
    assert parse_event(event).headers == {"content-encoding": "gzip", "x-custom": "1"}
    event["headers"] = None
    assert parse_event(event).headers == {}


def test_a_rest_event_without_an_authorizer_has_no_identity() -> None:
    """powertools' apiGatewayProxyEvent.json shape: ``authorizer: {claims: null, scopes: null}``."""
    event = load_event("rest_v1_iam_recent")
    event["requestContext"]["identity"]["userArn"] = None
    event["requestContext"]["authorizer"] = {"claims": None, "scopes": None}
    assert parse_event(event).identity is None
    event["requestContext"]["authorizer"] = {"principalId": "user-1", "integrationLatency": 12}
    assert parse_event(event).identity == Identity(kind="lambda")


@pytest.mark.parametrize(
    "event",
    [
        [],
        {"Records": [{"eventSource": "aws:sqs"}]},
        {"httpMethod": "GET"},
        {"version": "2.0", "requestContext": {"routeKey": "$default"}},
        {"version": "1.0", "requestContext": {}, "resource": "/logs"},
    ],
)
def test_other_events_are_refused(event: object) -> None:
    with pytest.raises(ValidationFailed) as refused:
        parse_event(event)
    assert refused.value.errors[0].field == "event"
