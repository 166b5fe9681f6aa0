"""The Lambda handlers fed with real-shaped REST v1, HTTP API v2 and function-URL events, over DynamoDB in
moto's server mode (a stand-in for DynamoDB, not AWS itself)."""

from __future__ import annotations

import gzip
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from logsvc.aws.handlers import LambdaApp
from logsvc.settings import load_settings
from tests.aws.helpers import (
    ADMIN_USER,
    CHECKOUT_READER,
    CHECKOUT_WRITER,
    FORMATS,
    INGEST_CALLER,
    PRINCIPALS,
    READ_CALLER,
    STRANGER,
    body_of,
    claims_of,
    gzipped,
    ingest_event,
    load_event,
    read_event,
    set_method,
    set_path,
    set_query,
    with_body,
    with_caller,
)
from tests.conftest import eventually

PROBLEM_KEYS = {"type", "title", "status", "detail", "code"}


def _ago(seconds: float) -> str:
    return (datetime.now(UTC) - timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def _service() -> str:
    return f"svc-{uuid.uuid4().hex[:8]}"


def assert_problem(response: dict[str, Any], status: int, code: str) -> dict[str, Any]:
    """A problem+json answer of this status and code, with no trace of the code that failed."""
    assert response["statusCode"] == status, response
    assert response["headers"]["content-type"] == "application/problem+json"
    assert "Traceback" not in response["body"]
    problem = body_of(response)
    assert PROBLEM_KEYS <= problem.keys() <= PROBLEM_KEYS | {"errors"}
    assert problem["status"] == status
    assert problem["code"] == code
    assert problem["type"] == f"https://logsvc.dev/problems/{code}"
    return problem


def recent(app: LambdaApp, fmt: str, query: str, *, caller: str = READ_CALLER) -> dict[str, Any]:
    response = app.read(read_event(fmt, "/logs/recent", query, caller=caller), None)
    assert response["statusCode"] == 200, response
    assert response["headers"]["content-type"] == "application/json"
    page: dict[str, Any] = body_of(response)
    return page


@pytest.mark.parametrize("fmt", FORMATS)
def test_ingest_one_entry_then_get_it_by_id(lambda_app: LambdaApp, fmt: str) -> None:
    service = _service()
    entry = {
        "service_name": service,
        "level": "warning",
        "message": "disk 91% full",
        "metadata": {"disk": "/"},
    }
    response = lambda_app.ingest(ingest_event(fmt, entry), None)
    assert response["statusCode"] == 201, response
    created = body_of(response)
    assert set(created) == {"message", "log_id", "timestamp"}
    assert created["message"] == "Log entry created successfully"
    assert response["headers"]["location"] == f"/logs/{created['log_id']}"

    got = lambda_app.read(read_event(fmt, f"/logs/{created['log_id']}"), None)
    assert got["statusCode"] == 200, got
    stored = body_of(got)
    assert stored["log_id"] == created["log_id"]
    assert stored["timestamp"] == created["timestamp"]
    assert (stored["service_name"], stored["level"], stored["message"]) == (service, "WARN", "disk 91% full")
    assert stored["metadata"] == {"disk": "/"}


@pytest.mark.parametrize("fmt", FORMATS)
def test_ingest_a_batch_then_read_it_newest_first(lambda_app: LambdaApp, fmt: str) -> None:
    service = _service()
    batch = [{"service_name": service, "message": f"step {i}", "timestamp": _ago(60 - i)} for i in range(3)]
    response = lambda_app.ingest(ingest_event(fmt, {"logs": batch}), None)
    assert response["statusCode"] == 201, response
    created = body_of(response)
    assert created["count"] == 3
    assert "location" not in response["headers"]

    page = recent(lambda_app, fmt, f"service_name={service}")
    assert page["count"] == 3
    assert [e["log_id"] for e in page["logs"]] == created["log_ids"][::-1]
    assert [e["message"] for e in page["logs"]] == ["step 2", "step 1", "step 0"]
    assert page["next_cursor"] is None


@pytest.mark.parametrize("fmt", FORMATS)
def test_recent_filters_and_follows_the_cursor(lambda_app: LambdaApp, fmt: str) -> None:
    service = _service()
    levels = ["DEBUG", "WARN", "INFO", "ERROR", "FATAL", "WARN"]
    batch = [
        {"service_name": service, "level": level, "message": f"{level} {i}", "timestamp": _ago(100 - i)}
        for i, level in enumerate(levels)
    ]
    batch.append({"service_name": _service(), "level": "FATAL", "message": "another service"})
    assert lambda_app.ingest(ingest_event(fmt, batch), None)["statusCode"] == 201

    first = recent(lambda_app, fmt, f"service_name={service}&min_level=WARN&limit=2")
    assert [e["message"] for e in first["logs"]] == ["WARN 5", "FATAL 4"]
    assert first["next_cursor"]
    second = recent(
        lambda_app, fmt, f"service_name={service}&min_level=WARN&limit=2&cursor={first['next_cursor']}"
    )
    assert [e["message"] for e in second["logs"]] == ["ERROR 3", "WARN 1"]
    if second["next_cursor"]:
        assert (
            recent(lambda_app, fmt, f"service_name={service}&min_level=WARN&cursor={second['next_cursor']}")[
                "logs"
            ]
            == []
        )

    exact = recent(lambda_app, fmt, f"service_name={service}&level=warn")
    assert [e["message"] for e in exact["logs"]] == ["WARN 5", "WARN 1"]
    # GET /logs answers as GET /logs/recent.
    listed = lambda_app.read(read_event(fmt, "/logs", f"service_name={service}&level=warn"), None)
    assert body_of(listed) == exact


def tail_page(app: LambdaApp, fmt: str, query: str, *, caller: str = READ_CALLER) -> dict[str, Any]:
    """GET /logs/tail as a streaming client asks for it: a Lambda answers the polling page all the same."""
    event = load_event(f"{fmt}_iam_recent")
    set_path(event, "/logs/tail", "/logs/tail", None)
    set_query(event, query)
    event = with_caller(event, caller)
    event["headers"]["accept"] = "text/event-stream"
    response = app.read(event, None)
    assert response["statusCode"] == 200, response
    assert response["headers"]["content-type"] == "application/json"
    page: dict[str, Any] = body_of(response)
    return page


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_tail_is_a_polling_page_in_commit_order(lambda_app: LambdaApp, fmt: str) -> None:
    service = _service()
    start = tail_page(lambda_app, fmt, f"service_name={service}")
    assert (start["count"], start["logs"], start["more"]) == (0, [], False)
    batch = [
        {"service_name": service, "message": f"t{i}", "timestamp": _ago(3600 * (3 - i))} for i in range(3)
    ]
    batch.append({"service_name": _service(), "message": "another service"})
    assert lambda_app.ingest(ingest_event(fmt, batch), None)["statusCode"] == 201
    later = {"service_name": service, "message": "t3", "timestamp": _ago(7200)}  # older, committed later
    assert lambda_app.ingest(ingest_event(fmt, later), None)["statusCode"] == 201
    seen: list[str] = []
    cursor = start["next_cursor"]

    def polled() -> bool:
        nonlocal cursor
        page = tail_page(lambda_app, fmt, f"service_name={service}&cursor={cursor}")
        seen.extend(entry["message"] for entry in page["logs"])
        cursor = page["next_cursor"]
        return len(seen) >= 4

    assert eventually(polled)
    assert seen == ["t0", "t1", "t2", "t3"]
    scoped = tail_page(lambda_app, fmt, f"cursor={start['next_cursor']}", caller=CHECKOUT_READER)
    assert scoped["logs"] == []


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_invalid_batch_is_refused_whole_naming_every_bad_field(lambda_app: LambdaApp, fmt: str) -> None:
    service = _service()
    batch = [
        {"service_name": service, "message": "fine"},
        {"service_name": service, "message": "", "level": "LOUD"},
        {"service_name": "bad name!", "message": "x", "colour": "red"},
    ]
    problem = assert_problem(lambda_app.ingest(ingest_event(fmt, batch), None), 400, "validation_error")
    assert {(e["index"], e["field"]) for e in problem["errors"]} == {
        (1, "message"),
        (1, "level"),
        (2, "service_name"),
        (2, "colour"),
    }
    assert recent(lambda_app, fmt, f"service_name={service}")["logs"] == []


@pytest.mark.parametrize("fmt", FORMATS)
def test_malformed_json_is_a_400_naming_the_body(lambda_app: LambdaApp, fmt: str) -> None:
    problem = assert_problem(
        lambda_app.ingest(ingest_event(fmt, '{"message": "x",'), None), 400, "validation_error"
    )
    assert problem["errors"][0]["field"] == "body"
    assert "not valid JSON" in problem["errors"][0]["message"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_gzip_body_in_base64_is_inflated(lambda_app: LambdaApp, fmt: str) -> None:
    service = _service()
    entries = [{"service_name": service, "message": f"compressed {i}"} for i in range(50)]
    event = ingest_event(fmt, gzipped(entries), headers={"Content-Encoding": "gzip"})
    assert event["isBase64Encoded"] is True
    response = lambda_app.ingest(event, None)
    assert response["statusCode"] == 201, response
    assert body_of(response)["count"] == 50
    assert recent(lambda_app, fmt, f"service_name={service}&limit=1000")["count"] == 50


def test_a_body_the_rest_api_already_gunzipped_is_taken_as_it_is(lambda_app: LambdaApp) -> None:
    """A REST API inflates a gzip body before invoking the integration, and the header may come along."""
    service = _service()
    event = ingest_event("rest_v1", [{"service_name": service, "message": "inflated by API Gateway"}])
    event["headers"]["Content-Encoding"] = "gzip"
    response = lambda_app.ingest(event, None)
    assert response["statusCode"] == 201, response
    assert recent(lambda_app, "rest_v1", f"service_name={service}")["count"] == 1


@pytest.mark.parametrize("fmt", FORMATS)
def test_ndjson_and_base64_plain_json(lambda_app: LambdaApp, fmt: str) -> None:
    service = _service()
    lines = "\n".join(json.dumps({"service_name": service, "message": f"line {i}"}) for i in range(3)) + "\n"
    ndjson = ingest_event(fmt, lines, headers={"Content-Type": "application/x-ndjson"})
    assert body_of(lambda_app.ingest(ndjson, None))["count"] == 3
    event = with_body(ingest_event(fmt, ""), {"service_name": service, "message": "b64"}, base64_encoded=True)
    assert lambda_app.ingest(event, None)["statusCode"] == 201
    assert recent(lambda_app, fmt, f"service_name={service}")["count"] == 4


@pytest.mark.parametrize("fmt", FORMATS)
def test_bodies_that_cannot_be_read(lambda_app: LambdaApp, fmt: str) -> None:
    truncated = gzipped([{"message": "x" * 1000}])[:-20]
    event = ingest_event(fmt, truncated, headers={"Content-Encoding": "gzip"})
    problem = assert_problem(lambda_app.ingest(event, None), 400, "validation_error")
    assert problem["errors"] == [{"field": "body", "message": "is truncated gzip data"}]

    event = ingest_event(fmt, {"message": "x"})
    event["isBase64Encoded"] = True
    event["body"] = "not base64!"
    problem = assert_problem(lambda_app.ingest(event, None), 400, "validation_error")
    assert problem["errors"] == [{"field": "body", "message": "is not valid base64"}]

    event = ingest_event(fmt, "message=x", headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert_problem(lambda_app.ingest(event, None), 415, "unsupported_media_type")
    event = ingest_event(fmt, {"message": "x"}, headers={"Content-Encoding": "br"})
    assert_problem(lambda_app.ingest(event, None), 415, "unsupported_media_type")


def test_body_limits_apply_as_on_the_server(dynamodb_url: str) -> None:
    settings = load_settings(
        environ={},
        overrides={
            "store": dynamodb_url,
            "aws_principals": PRINCIPALS,
            "max_body_bytes": 2048,
            "max_decompressed_bytes": 4096,
        },
    )
    app = LambdaApp(settings)
    try:
        big = [{"message": "x" * 3000}]
        assert_problem(app.ingest(ingest_event("rest_v1", big), None), 413, "payload_too_large")
        bomb = gzipped([{"message": "y" * 10_000}])
        assert len(bomb) < 2048
        event = ingest_event("http_v2", bomb, headers={"Content-Encoding": "gzip"})
        assert_problem(app.ingest(event, None), 413, "payload_too_large")
    finally:
        app.close()


@pytest.mark.parametrize(
    ("content_type", "inflated", "status", "detail"),
    [
        (
            "application/json",
            b"[" + b"{}," * 11_184_809 + b"{}]",
            413,
            "the body holds more than 1032768 JSON values; a batch holds at most 10000 entries",
        ),
        (
            "application/x-ndjson",
            b"{}\n" * 11_184_810,
            400,
            "body: a batch holds at most 10000 entries; got more",
        ),
    ],
)
def test_a_gzip_bomb_of_tiny_entries_is_refused_before_it_is_decoded(
    lambda_app: LambdaApp, content_type: str, inflated: bytes, status: int, detail: str
) -> None:
    bomb = gzip.compress(inflated)
    assert len(bomb) < 64 * 1024
    event = ingest_event("http_v2", bomb, headers={"Content-Type": content_type, "Content-Encoding": "gzip"})
    problem = assert_problem(
        lambda_app.ingest(event, None), status, "payload_too_large" if status == 413 else "validation_error"
    )
    assert problem["detail"].startswith(detail)


@pytest.mark.parametrize("fmt", FORMATS)
def test_repeated_query_parameters_are_seen_as_repeated(lambda_app: LambdaApp, fmt: str) -> None:
    """Format 2.0 joins repeats with commas in queryStringParameters; the handlers read rawQueryString."""
    response = lambda_app.read(read_event(fmt, "/logs/recent", "limit=1&limit=2"), None)
    problem = assert_problem(response, 400, "validation_error")
    assert problem["errors"] == [{"field": "limit", "message": "given more than once"}]
    response = lambda_app.read(read_event(fmt, "/logs/recent", "limit=0&colour=red"), None)
    assert {e["field"] for e in assert_problem(response, 400, "validation_error")["errors"]} == {
        "limit",
        "colour",
    }


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_scoped_writer_writes_only_its_services(lambda_app: LambdaApp, fmt: str) -> None:
    """checkout-writer sits under the path /teams/checkout/; its session ARN does not show it."""
    mine = {"service_name": "checkout-api", "message": "ok"}
    assert lambda_app.ingest(ingest_event(fmt, mine, caller=CHECKOUT_WRITER), None)["statusCode"] == 201
    theirs = [mine, {"service_name": "payments", "message": "not mine"}]
    problem = assert_problem(
        lambda_app.ingest(ingest_event(fmt, theirs, caller=CHECKOUT_WRITER), None), 403, "forbidden"
    )
    assert "payments" in problem["detail"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_scoped_reader_sees_only_its_services(lambda_app: LambdaApp, fmt: str) -> None:
    checkout = f"checkout-{uuid.uuid4().hex[:6]}"
    batch = [
        {"service_name": checkout, "message": "visible"},
        {"service_name": _service(), "message": "hidden"},
    ]
    hidden_id = body_of(lambda_app.ingest(ingest_event(fmt, batch), None))["log_ids"][1]

    page = recent(lambda_app, fmt, "limit=1000", caller=CHECKOUT_READER)
    assert all(e["service_name"].startswith("checkout") for e in page["logs"])
    assert "hidden" not in {e["message"] for e in page["logs"]}
    assert "visible" in {e["message"] for e in page["logs"]}
    # Another service's entry does not exist for this reader; asking for that service is refused.
    assert_problem(
        lambda_app.read(read_event(fmt, f"/logs/{hidden_id}", caller=CHECKOUT_READER), None), 404, "not_found"
    )
    assert (
        lambda_app.read(read_event(fmt, f"/logs/{hidden_id}", caller=READ_CALLER), None)["statusCode"] == 200
    )
    response = lambda_app.read(
        read_event(fmt, "/logs/recent", "service_name=payments", caller=CHECKOUT_READER), None
    )
    assert_problem(response, 403, "forbidden")


@pytest.mark.parametrize("fmt", FORMATS)
def test_roles_decide_which_function_a_caller_may_use(lambda_app: LambdaApp, fmt: str) -> None:
    entry = {"message": "from a reader"}
    assert_problem(lambda_app.ingest(ingest_event(fmt, entry, caller=READ_CALLER), None), 403, "forbidden")
    assert_problem(lambda_app.read(read_event(fmt, caller=INGEST_CALLER), None), 403, "forbidden")
    # An IAM user (not a role), granted admin, may do both.
    assert lambda_app.ingest(ingest_event(fmt, entry, caller=ADMIN_USER), None)["statusCode"] == 201
    assert lambda_app.read(read_event(fmt, caller=ADMIN_USER), None)["statusCode"] == 200


def test_refusals_are_audited_in_the_function_log_by_the_servers_rule(
    lambda_app: LambdaApp, caplog: pytest.LogCaptureFixture
) -> None:
    """No credential store on Lambda: the same record as the server's (actor, target, source, detail) is a
    line of the function's log, bounded and printable."""
    caplog.set_level("WARNING", logger="logsvc.audit")
    assert_problem(
        lambda_app.ingest(ingest_event("rest_v1", {"m": 1}, caller=STRANGER), None), 403, "forbidden"
    )
    assert_problem(lambda_app.read(read_event("rest_v1", caller=INGEST_CALLER), None), 403, "forbidden")
    lines = [record.getMessage() for record in caplog.records if record.name == "logsvc.audit"]
    assert (
        lines[0] == "request.denied actor=unauthenticated target=POST /logs source=unknown detail=forbidden"
    )
    assert lines[1].startswith(f"request.denied actor={INGEST_CALLER} target=GET /logs")
    assert "may not read" in lines[1]


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_unknown_identity_is_forbidden(lambda_app: LambdaApp, fmt: str) -> None:
    problem = assert_problem(
        lambda_app.ingest(ingest_event(fmt, {"message": "x"}, caller=STRANGER), None), 403, "forbidden"
    )
    assert STRANGER in problem["detail"]
    assert "aws_principals" in problem["detail"]
    # The same role name in another account is another role.
    other_account = INGEST_CALLER.replace("123456789012", "210987654321")
    assert_problem(
        lambda_app.ingest(ingest_event(fmt, {"message": "x"}, caller=other_account), None), 403, "forbidden"
    )
    assert_problem(lambda_app.read(read_event(fmt, caller=STRANGER), None), 403, "forbidden")


@pytest.mark.parametrize("fmt", FORMATS)
def test_no_identity_at_all_is_a_401(lambda_app: LambdaApp, fmt: str) -> None:
    event = with_caller(ingest_event(fmt, {"message": "x"}), None)
    response = lambda_app.ingest(event, None)
    assert_problem(response, 401, "missing_authentication_token")
    assert response["headers"]["www-authenticate"] == 'Bearer realm="logsvc", AWS4-HMAC-SHA256 realm="logsvc"'


def test_a_function_url_with_auth_type_none_gets_a_401(lambda_app: LambdaApp) -> None:
    response = lambda_app.ingest(load_event("function_url_none_ingest"), None)
    assert_problem(response, 401, "missing_authentication_token")


@pytest.mark.parametrize("fmt", FORMATS)
def test_wrong_method_or_route_on_a_function(lambda_app: LambdaApp, fmt: str) -> None:
    # GET /logs exists, but on the read function: the ingest function knows only POST /logs.
    get_on_ingest = set_method(ingest_event(fmt, {"message": "x"}), "GET")
    response = lambda_app.ingest(get_on_ingest, None)
    problem = assert_problem(response, 405, "method_not_allowed")
    assert response["headers"]["allow"] == "POST"
    assert problem["title"] == "Method Not Allowed"
    assert problem["detail"] == "GET /logs: Method Not Allowed"

    post_on_read = set_method(read_event(fmt, "/logs"), "POST")
    assert lambda_app.read(post_on_read, None)["headers"]["allow"] == "GET"
    delete_one = set_method(read_event(fmt, f"/logs/{uuid.uuid4()}"), "DELETE")
    assert_problem(lambda_app.read(delete_one, None), 405, "method_not_allowed")

    elsewhere = read_event(fmt, "/logs/recent")
    set_path(elsewhere, "/admin/keys", "/admin/keys", None)
    problem = assert_problem(lambda_app.read(elsewhere, None), 404, "not_found")
    assert problem == {
        "type": "https://logsvc.dev/problems/not_found",
        "title": "Not Found",
        "status": 404,
        "detail": "GET /admin/keys: Not Found",
        "code": "not_found",
    }
    recent_on_ingest = read_event(fmt, "/logs/recent")
    assert_problem(lambda_app.ingest(recent_on_ingest, None), 404, "not_found")


@pytest.mark.parametrize("fmt", FORMATS)
def test_get_by_id_answers_404_or_400(lambda_app: LambdaApp, fmt: str) -> None:
    missing = str(uuid.uuid4())
    problem = assert_problem(lambda_app.read(read_event(fmt, f"/logs/{missing}"), None), 404, "not_found")
    assert problem["detail"] == f"no log entry with log_id {missing}"
    problem = assert_problem(
        lambda_app.read(read_event(fmt, "/logs/not-a-uuid"), None), 400, "validation_error"
    )
    assert problem["errors"][0]["field"] == "log_id"


@pytest.mark.parametrize(
    ("name", "groups"),
    [
        ("rest_v1_cognito_list", "read"),
        ("rest_v1_cognito_list", "ingest,read"),
        ("http_v2_jwt_list", "[admin read]"),
    ],
)
def test_cognito_callers_get_roles_from_their_groups(lambda_app: LambdaApp, name: str, groups: str) -> None:
    event = load_event(name)
    claims = claims_of(event)
    claims["cognito:groups"] = groups
    response = lambda_app.read(event, None)
    assert response["statusCode"] == 200, response
    claims["cognito:groups"] = ["ingest"]
    problem = assert_problem(lambda_app.read(event, None), 403, "forbidden")
    assert "roles: ingest" in problem["detail"]
    claims["cognito:groups"] = "[]"
    assert_problem(lambda_app.read(event, None), 403, "forbidden")


def test_a_cognito_service_claim_limits_what_is_read(lambda_app: LambdaApp) -> None:
    event = load_event("http_v2_jwt_list")
    claims_of(event)["logsvc:services"] = "[checkout* billing]"
    event["rawQueryString"] = "service_name=payments"
    assert_problem(lambda_app.read(event, None), 403, "forbidden")
    event["rawQueryString"] = "service_name=billing"
    assert lambda_app.read(event, None)["statusCode"] == 200


def test_a_lambda_authorizer_caller_is_not_mapped(lambda_app: LambdaApp) -> None:
    event = load_event("http_v2_jwt_list")
    event["requestContext"]["authorizer"] = {"lambda": {"user": "someone"}}
    assert_problem(lambda_app.read(event, None), 403, "forbidden")


def test_an_event_that_is_not_http_is_a_400(lambda_app: LambdaApp) -> None:
    for event in (
        {"Records": []},
        {"requestContext": {}},
        {"version": "2.0", "requestContext": {"http": None}},
    ):
        problem = assert_problem(lambda_app.read(event, None), 400, "validation_error")
        assert problem["errors"][0]["field"] == "event"


def test_a_misconfigured_function_answers_500_and_logs_why(caplog: pytest.LogCaptureFixture) -> None:
    """No stack trace and no internal detail in the answer; the reason is in the log."""
    app = LambdaApp(load_settings(environ={}, overrides={"aws_principals": PRINCIPALS}))  # no store set
    try:
        response = app.read(read_event("rest_v1"), None)
    finally:
        app.close()
    problem = assert_problem(response, 500, "internal_error")
    assert problem["detail"] == "the server failed to answer; see its log"
    assert "LOGSVC_STORE=dynamodb://" in caplog.text


def test_a_route_without_its_path_parameter_is_not_found(lambda_app: LambdaApp) -> None:
    event = read_event("rest_v1", f"/logs/{uuid.uuid4()}")
    event["pathParameters"] = None
    assert_problem(lambda_app.read(event, None), 404, "not_found")


def test_large_entries_come_in_pages_under_the_lambda_response_limit(lambda_app: LambdaApp) -> None:
    """Lambda answers at most 6 MB (more reaches the client as API Gateway's bare 502): the store ends a
    page before that and hands a cursor on."""
    service = _service()
    for _ in range(7):  # bodies under 10 MB: the request escapes each é as 6 bytes
        batch = [{"service_name": service, "message": "é" * 125_000} for _ in range(4)]
        assert lambda_app.ingest(ingest_event("http_v2", batch), None)["statusCode"] == 201
    seen, query = 0, f"service_name={service}"
    for _ in range(10):
        response = lambda_app.read(read_event("http_v2", "/logs/recent", query), None)
        assert response["statusCode"] == 200
        assert len(json.dumps(response, ensure_ascii=False).encode()) < 6 * 1024 * 1024
        page = body_of(response)
        seen += page["count"]
        if page["next_cursor"] is None:
            break
        query = f"service_name={service}&cursor={page['next_cursor']}"
    assert seen == 28


def test_a_page_that_escaping_would_blow_past_the_limit_is_refused_with_advice(lambda_app: LambdaApp) -> None:
    """A control character takes 6 bytes as JSON: such pages can outgrow the answer the store measured."""
    service = _service()
    for _ in range(8):
        batch = [{"service_name": service, "message": "\x01" * 200_000} for _ in range(2)]
        assert lambda_app.ingest(ingest_event("http_v2", batch), None)["statusCode"] == 201
    problem = assert_problem(
        lambda_app.read(read_event("http_v2", "/logs/recent", f"service_name={service}"), None),
        400,
        "validation_error",
    )
    assert problem["errors"][0]["field"] == "limit"
    assert "next_cursor" in problem["errors"][0]["message"]
    fits = lambda_app.read(read_event("http_v2", "/logs/recent", f"service_name={service}&limit=4"), None)
    assert fits["statusCode"] == 200
    assert len(json.dumps(fits)) < 6 * 1024 * 1024
