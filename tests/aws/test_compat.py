"""The older Cognito clients' routes on the Lambda shape: API Gateway's Cognito authorizer has checked the raw
ID token and passes its claims; the handlers answer the same shapes as the server (decision 22)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from logsvc.aws.handlers import LambdaApp
from logsvc.settings import load_settings
from tests.aws.helpers import (
    PRINCIPALS,
    body_of,
    claims_of,
    load_event,
    read_event,
    set_method,
    set_path,
    set_query,
    with_body,
)
from tests.aws.test_handlers import assert_problem

COGNITO_EVENTS = ("rest_v1_cognito_list", "http_v2_jwt_list")


@pytest.fixture
def cognito_app(dynamodb_url: str) -> Iterator[LambdaApp]:
    """A container whose pool users in no group may write and read (jwt_default_roles)."""
    overrides = {"store": dynamodb_url, "aws_principals": PRINCIPALS, "jwt_default_roles": ["ingest", "read"]}
    app = LambdaApp(load_settings(environ={}, overrides=overrides))
    yield app
    app.close()


def cognito_event(
    name: str, method: str, *, groups: Any = None, body: Any = None, query: str = ""
) -> dict[str, Any]:
    """The format's Cognito event, routed to /compat/cognito/logs; ``groups`` None: the user is in none."""
    event = load_event(name)
    set_method(event, method)
    set_path(event, "/compat/cognito/logs", "/compat/cognito/logs", None)
    set_query(event, query)
    claims = claims_of(event)
    claims.pop("cognito:groups", None)
    if groups is not None:
        claims["cognito:groups"] = groups
    return with_body(event, body) if body is not None else event


@pytest.mark.parametrize("name", COGNITO_EVENTS)
def test_a_pool_user_in_no_group_writes_and_reads_with_default_roles(
    cognito_app: LambdaApp, name: str
) -> None:
    made = []
    for n in range(3):
        event = cognito_event(name, "POST", body={"severity": "warning", "message": f"lambda {n}"})
        response = cognito_app.ingest(event, None)
        assert response["statusCode"] == 201, response
        made.append(body_of(response))
    first = body_of(cognito_app.read(cognito_event(name, "GET", query="severity=warning&limit=2"), None))
    assert [item["message"] for item in first["items"]] == ["lambda 2", "lambda 1"]
    assert first["hasMore"] is True
    rest = body_of(
        cognito_app.read(
            cognito_event(name, "GET", query=f"severity=warning&limit=2&startKey={first['nextToken']}"), None
        )
    )
    assert rest == {
        "items": [
            {
                "id": made[0]["id"],
                "datetime": made[0]["datetime"],
                "severity": "warning",
                "message": "lambda 0",
            }
        ],
        "hasMore": False,
    }


@pytest.mark.parametrize("name", COGNITO_EVENTS)
def test_the_lambda_refuses_what_the_server_refuses(cognito_app: LambdaApp, name: str) -> None:
    assert_problem(
        cognito_app.read(cognito_event(name, "GET", query="limit=101"), None), 400, "validation_error"
    )
    bad = cognito_event(name, "POST", body={"severity": "fatal", "message": "m"})
    assert_problem(cognito_app.ingest(bad, None), 400, "validation_error")
    # A groups claim naming none of our roles gets no default roles.
    assert_problem(cognito_app.read(cognito_event(name, "GET", groups="marketing"), None), 403, "forbidden")
    # The ingest function does not serve the read.
    assert cognito_app.ingest(cognito_event(name, "GET"), None)["statusCode"] == 405


def test_without_default_roles_a_pool_user_in_no_group_may_do_nothing(lambda_app: LambdaApp) -> None:
    event = cognito_event("rest_v1_cognito_list", "GET")
    assert "roles: none" in assert_problem(lambda_app.read(event, None), 403, "forbidden")["detail"]
    assert (
        lambda_app.read(cognito_event("rest_v1_cognito_list", "GET", groups="read"), None)["statusCode"]
        == 200
    )


def test_the_function_url_shape_is_not_served_by_the_functions(lambda_app: LambdaApp) -> None:
    """Its clients send no credentials; the AWS stack admits none (decision 22)."""
    event = read_event("rest_v1", "/compat/function-url/logs/recent")
    assert lambda_app.read(event, None)["statusCode"] == 404
