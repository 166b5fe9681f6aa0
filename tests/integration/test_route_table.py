"""The route table is the only declaration of the routes: a table with one route more and one less changes the
HTTP server, the OpenAPI document and the Lambda dispatch alike."""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from logsvc.api.openapi import openapi_document
from logsvc.auth.policy import Permission, Role
from logsvc.aws.handlers import LambdaApp
from logsvc.endpoints import ENDPOINTS
from logsvc.routing import Answer, Call, Endpoint, json_answer
from logsvc.settings import load_settings
from tests.aws.helpers import FORMATS, PRINCIPALS, READ_CALLER, read_event, set_path
from tests.conftest import ServerThread, bearer, make_key, make_settings


async def echo(call: Call) -> Answer:
    return json_answer({"word": call.path_params["word"], "caller": call.principal.id})


ECHO = Endpoint(
    path="/echo/{word}",
    method="GET",
    name="echo",
    permission=Permission.READ,
    operation=echo,
    function="read",
    summary="The word, back",
    answers={"200": {"description": "the word"}},
)
# One route added, one removed: GET /logs/{log_id}.
TABLE = (*(endpoint for endpoint in ENDPOINTS if endpoint.name != "get_log"), ECHO)


@pytest.fixture
def changed_server(tmp_path: Path) -> Iterator[ServerThread]:
    running = ServerThread(make_settings(tmp_path / "data"), endpoints=TABLE).start()
    yield running
    running.stop()


@pytest.fixture
def changed_lambda() -> Iterator[LambdaApp]:
    # Neither route used here touches the store: the Lambda never opens one.
    app = LambdaApp(load_settings(environ={}, overrides={"aws_principals": PRINCIPALS}), endpoints=TABLE)
    yield app
    app.close()


def test_the_server_serves_the_table(changed_server: ServerThread) -> None:
    reader = make_key(changed_server.settings, Role.READ)
    with httpx.Client(base_url=changed_server.url, timeout=10, headers=bearer(reader)) as client:
        added = client.get("/echo/hello")
        assert added.status_code == 200
        assert added.json() == {"word": "hello", "caller": reader.access_key_id}
        assert client.get(f"/logs/{uuid.uuid4()}").status_code == 404
        assert client.get("/logs/recent").status_code == 200  # the rest of the table is still there
        served = client.get("/openapi.json").json()
    assert served == openapi_document(TABLE)


def test_the_added_route_keeps_its_permission(changed_server: ServerThread) -> None:
    writer = make_key(changed_server.settings, Role.INGEST)
    with httpx.Client(base_url=changed_server.url, timeout=10) as client:
        assert client.get("/echo/hello").status_code == 401
        assert client.get("/echo/hello", headers=bearer(writer)).status_code == 403


def test_the_openapi_document_describes_the_table() -> None:
    paths = openapi_document(TABLE)["paths"]
    assert "/logs/{log_id}" not in paths
    echo_doc = paths["/echo/{word}"]["get"]
    assert echo_doc["operationId"] == "echo"
    assert echo_doc["parameters"] == [
        {"name": "word", "in": "path", "required": True, "schema": {"type": "string"}}
    ]
    assert {"200", "401", "403", "429", "431"} <= echo_doc["responses"].keys()
    assert "/logs/{log_id}" in openapi_document()["paths"]  # the real table is untouched


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_lambda_dispatches_the_table(changed_lambda: LambdaApp, fmt: str) -> None:
    event = read_event(fmt)
    set_path(event, "/echo/hello", "/echo/{word}", {"word": "hello"})
    added = changed_lambda.read(event, None)
    assert added["statusCode"] == 200, added
    assert json.loads(added["body"]) == {"word": "hello", "caller": READ_CALLER}
    removed = changed_lambda.read(read_event(fmt, f"/logs/{uuid.uuid4()}"), None)
    assert removed["statusCode"] == 404, removed
    # The ingest function does not serve what the table gives to the read function.
    assert changed_lambda.ingest(event, None)["statusCode"] == 404


def test_a_route_for_no_function_is_not_dispatched(changed_lambda: LambdaApp) -> None:
    app = LambdaApp(changed_lambda.settings, endpoints=(dataclasses.replace(ECHO, function=None),))
    try:
        event = read_event("function_url")
        set_path(event, "/echo/hello", "/echo/{word}", {"word": "hello"})
        assert app.read(event, None)["statusCode"] == 404
    finally:
        app.close()
