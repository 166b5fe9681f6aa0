"""The older clients of the three AWS sample log services, against a real server, sending their requests as
their scripts send them: only the base URL and the credential change (docs/migrating.md).

- IAM/SigV4 (``scripts/test_api.py``): boto3's credential chain, botocore's ``SigV4Auth(creds,
  "execute-api", region)``, ``requests``; ``POST /logs`` then ``GET /logs/recent`` with one key.
- Function URL: no credentials (anonymous access on), ``{"severity", "message"}`` at
  ``/compat/function-url/``.
- Cognito: the raw ID token in ``Authorization``, at ``/compat/cognito/``; real tokens signed by a test key
  whose JWKS a local HTTP server publishes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
import requests
import uuid_utils
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest

from logsvc.auth.policy import Role
from logsvc.domain.timestamps import parse_timestamp
from tests.conftest import ServerThread, bearer, make_key, make_settings
from tests.unit.test_jwt import AUDIENCE, ISSUER, OMIT, JwksServer, SigningKey, claims, rsa_key

FUNCTION_URL = "/compat/function-url"
COGNITO = "/compat/cognito"


def problem(response: Any, status: int, *fields: str) -> dict[str, Any]:
    """The problem document of a refusal, after checking its status and the fields it names."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    document: dict[str, Any] = response.json()
    assert sorted(error["field"] for error in document.get("errors", [])) == sorted(fields)
    return document


# ---- IAM/SigV4: scripts/test_api.py ------------------------------------------------------------------------

REGION = "us-east-1"


@pytest.fixture
def aws_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """boto3's credential chain reads only what a test puts in the environment (no files of the host)."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def use_key(monkeypatch: pytest.MonkeyPatch, access_key_id: str, secret: str) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)


def sign_request(
    method: str, url: str, body: str | None = None, params: dict[str, str] | None = None, region: str = REGION
) -> dict[str, str]:
    """As the script signs: the session's credentials, SigV4Auth for execute-api, the headers as a dict."""
    session = boto3.Session()
    credentials = session.get_credentials()
    request = AWSRequest(method=method, url=url, data=body, params=params)
    SigV4Auth(credentials, "execute-api", region).add_auth(request)
    return dict(request.headers)


def ingest_log(endpoint: str, region: str = REGION) -> requests.Response:
    """The script's test_ingest_log: a signed JSON body, Content-Type added after signing."""
    url = f"{endpoint}/logs"
    log_data = {
        "service_name": "test-service",
        "log_type": "application",
        "level": "INFO",
        "message": f"Test log message at {datetime.now(UTC).isoformat()}",
        "metadata": {"test_id": "12345", "environment": "test"},
    }
    body = json.dumps(log_data)
    headers = sign_request("POST", url, body=body, region=region)
    headers["Content-Type"] = "application/json"
    return requests.post(url, data=body, headers=headers, timeout=10)


def read_recent(endpoint: str) -> list[requests.Response]:
    """The script's test_read_recent: three signed reads, with and without parameters."""
    url = f"{endpoint}/logs/recent"
    answers = []
    for params in (None, {"service_name": "test-service"}, {"limit": "10"}):
        headers = sign_request("GET", url, params=params)
        answers.append(requests.get(url, params=params, headers=headers, timeout=10))
    return answers


@pytest.mark.usefixtures("aws_environment")
def test_the_test_api_script_runs_with_one_ingest_and_read_key(
    server: ServerThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = make_key(server.settings, (Role.INGEST, Role.READ))
    use_key(monkeypatch, key.access_key_id, key.secret_access_key)
    ingested = ingest_log(server.url)
    assert ingested.status_code == 201, ingested.text
    reads = read_recent(server.url)
    assert [answer.status_code for answer in reads] == [200, 200, 200]
    counts = [answer.json()["count"] for answer in reads]
    assert counts == [1, 1, 1]
    assert reads[1].json()["logs"][0]["log_id"] == ingested.json()["log_id"]


@pytest.mark.usefixtures("aws_environment")
def test_with_a_key_of_one_role_the_script_fails_half_way(
    server: ServerThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Why the key needs both roles: an ingest key writes, then its reads are refused, naming the role."""
    key = make_key(server.settings, Role.INGEST)
    use_key(monkeypatch, key.access_key_id, key.secret_access_key)
    assert ingest_log(server.url).status_code == 201
    for refused in read_recent(server.url):
        assert "roles: ingest" in problem(refused, 403)["detail"]


@pytest.mark.usefixtures("aws_environment")
def test_a_load_test_signing_for_another_region_is_told_which_region(
    server: ServerThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    """scripts/load_test.py signs for eu-west-2; the service takes us-east-1 (docs/operations.md)."""
    key = make_key(server.settings, (Role.INGEST, Role.READ))
    use_key(monkeypatch, key.access_key_id, key.secret_access_key)
    refused = ingest_log(server.url, region="eu-west-2")
    document = problem(refused, 403)
    assert document["code"] == "invalid_signature"
    assert "'us-east-1', not 'eu-west-2'" in document["detail"]


# ---- Function URL ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def anonymous(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    running = ServerThread(
        make_settings(tmp_path_factory.mktemp("anonymous") / "data", allow_anonymous=True)
    ).start()
    yield running
    running.stop()


def test_a_function_url_client_writes_and_reads_without_credentials(anonymous: ServerThread) -> None:
    with httpx.Client(base_url=anonymous.url, timeout=10) as client:
        sent = []
        for severity in ("info", "warning", "error"):
            answer = client.post(
                f"{FUNCTION_URL}/logs", json={"severity": severity, "message": f"m {severity}"}
            )
            assert answer.status_code == 201, answer.text
            sent.append(answer.json())
        # curl -d sends application/x-www-form-urlencoded; a function URL read the body as JSON anyway.
        form = client.post(
            f"{FUNCTION_URL}/logs",
            content=b'{"severity": "info", "message": "by curl -d"}',
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert form.status_code == 201, form.text
        read = client.get(f"{FUNCTION_URL}/logs/recent")
    assert read.status_code == 200, read.text
    page = read.json()
    assert set(page) == {"count", "logs"}
    assert page["count"] == len(page["logs"]) == 4
    newest_first = [form.json(), *reversed(sent)]
    assert page["logs"] == newest_first
    for log in page["logs"]:
        assert set(log) == {"logId", "timestamp", "datetime", "severity", "message"}
        assert isinstance(log["timestamp"], int)
        assert log["timestamp"] == parse_timestamp(log["datetime"]) // 1000
    assert [log["severity"] for log in page["logs"]] == ["info", "error", "warning", "info"]
    # Stored as entries of service function-url, with our levels.
    native = httpx.get(f"{anonymous.url}/logs", params={"service_name": "function-url"}, timeout=10).json()
    assert [e["level"] for e in native["logs"]] == ["INFO", "ERROR", "WARN", "INFO"]
    assert [e["log_id"] for e in native["logs"]] == [log["logId"] for log in page["logs"]]


def test_the_function_url_read_is_the_newest_100_with_our_levels_shown_as_severities(
    anonymous: ServerThread,
) -> None:
    levels = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"]
    batch = [
        {
            "service_name": "function-url",
            "level": levels[n % 6],
            "message": f"n{n}",
            "timestamp": 1_700_000_000 + n,
        }
        for n in range(120)
    ]
    with httpx.Client(base_url=anonymous.url, timeout=10) as client:
        assert client.post("/logs", json=batch).status_code == 201
        assert (
            client.post("/logs", json={"service_name": "other", "message": "not this service"}).status_code
            == 201
        )
        page = client.get(f"{FUNCTION_URL}/logs/recent").json()
    assert page["count"] == 100
    times = [log["timestamp"] for log in page["logs"]]
    assert times == sorted(times, reverse=True)
    assert all(log["message"] != "not this service" for log in page["logs"])
    shown = {log["message"]: log["severity"] for log in page["logs"]}
    expected = {"TRACE": "info", "DEBUG": "info", "INFO": "info", "WARN": "warning", "ERROR": "error"}
    expected["FATAL"] = "error"
    for n in range(119, 89, -1):
        if f"n{n}" in shown:
            assert shown[f"n{n}"] == expected[levels[n % 6]]


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"severity": "debug", "message": "m"}, ["severity"]),
        ({"severity": "INFO", "message": "m"}, ["severity"]),
        ({"severity": "critical", "message": "m"}, ["severity"]),
        ({"severity": 3, "message": "m"}, ["severity"]),
        ({"message": "m"}, ["severity"]),
        ({"severity": "info"}, ["message"]),
        ({"severity": "info", "message": "   "}, ["message"]),
        ({"severity": "info", "message": "m", "service_name": "x"}, ["service_name"]),
        ([{"severity": "info", "message": "m"}], ["body"]),
        ("not json", ["body"]),
    ],
)
def test_a_function_url_body_outside_its_rules_is_a_400_naming_the_field(
    anonymous: ServerThread, body: Any, fields: list[str]
) -> None:
    content = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    answer = httpx.post(f"{anonymous.url}{FUNCTION_URL}/logs", content=content, timeout=10)
    document = problem(answer, 400, *fields)
    if fields == ["severity"]:
        assert "info, warning, error" in document["detail"]


def test_the_function_url_read_takes_no_parameters(anonymous: ServerThread) -> None:
    answer = httpx.get(f"{anonymous.url}{FUNCTION_URL}/logs/recent", params={"limit": "5"}, timeout=10)
    problem(answer, 400, "limit")


def test_without_anonymous_access_a_function_url_client_gets_a_401_naming_the_schemes(
    server: ServerThread,
) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for answer in (
            client.post(f"{FUNCTION_URL}/logs", json={"severity": "info", "message": "m"}),
            client.get(f"{FUNCTION_URL}/logs/recent"),
        ):
            document = problem(answer, 401)
            assert document["code"] == "missing_authentication_token"
            assert "Bearer" in document["detail"]
            assert "Signature V4" in document["detail"]
            assert (
                answer.headers["www-authenticate"] == 'Bearer realm="logsvc", AWS4-HMAC-SHA256 realm="logsvc"'
            )


def test_without_anonymous_access_the_usual_credentials_work_and_scopes_hold(server: ServerThread) -> None:
    both = make_key(server.settings, (Role.INGEST, Role.READ))
    scoped = make_key(server.settings, (Role.INGEST, Role.READ), ("payments*",))
    reader = make_key(server.settings, Role.READ)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        body = {"severity": "error", "message": "with a key"}
        assert client.post(f"{FUNCTION_URL}/logs", json=body, headers=bearer(both)).status_code == 201
        assert client.get(f"{FUNCTION_URL}/logs/recent", headers=bearer(both)).json()["count"] == 1
        refused = client.post(f"{FUNCTION_URL}/logs", json=body, headers=bearer(scoped))
        assert "not to function-url" in problem(refused, 403)["detail"]
        assert (
            "not function-url"
            in problem(client.get(f"{FUNCTION_URL}/logs/recent", headers=bearer(scoped)), 403)["detail"]
        )
        assert (
            "may not ingest"
            in problem(client.post(f"{FUNCTION_URL}/logs", json=body, headers=bearer(reader)), 403)["detail"]
        )


# ---- Cognito -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def signer() -> SigningKey:
    return rsa_key("cognito-1")


@pytest.fixture(scope="module")
def jwks(signer: SigningKey) -> Iterator[JwksServer]:
    published = JwksServer([signer.jwk])
    published.thread.start()
    yield published
    published.httpd.shutdown()
    published.httpd.server_close()
    published.thread.join()


def cognito_server(folder: Path, jwks: JwksServer, **settings: Any) -> ServerThread:
    return ServerThread(
        make_settings(
            folder / "data", jwt_issuer=ISSUER, jwt_audience=AUDIENCE, jwt_jwks_url=jwks.url, **settings
        )
    ).start()


@pytest.fixture(scope="module")
def cognito(tmp_path_factory: pytest.TempPathFactory, jwks: JwksServer) -> Iterator[ServerThread]:
    running = cognito_server(tmp_path_factory.mktemp("cognito"), jwks)
    yield running
    running.stop()


def id_token(signer: SigningKey, groups: Any = OMIT, **more: Any) -> str:
    """A Cognito ID token; ``groups`` is its cognito:groups claim (left out by default, as for a user in
    no group)."""
    return signer.sign(claims(token_use="id", **{"cognito:groups": groups}, **more))


def raw(token: str) -> dict[str, str]:
    """As the Cognito sample's clients send it: the token itself, no scheme."""
    return {"Authorization": token}


def test_a_cognito_client_writes_and_pages_with_its_raw_id_token(
    cognito: ServerThread, signer: SigningKey
) -> None:
    user = raw(id_token(signer, ["ingest", "read"]))
    with httpx.Client(base_url=cognito.url, timeout=10, headers=user) as client:
        made = []
        for n, severity in enumerate(["info", "warning", "error", "warning", "warning"]):
            answer = client.post(f"{COGNITO}/logs", json={"severity": severity, "message": f"c{n}"})
            assert answer.status_code == 201, answer.text
            assert set(answer.json()) == {"id", "datetime"}
            made.append(answer.json())
        default = client.post(f"{COGNITO}/logs", json={"message": "no severity: info"})
        assert default.status_code == 201

        first = client.get(f"{COGNITO}/logs", params={"severity": "warning", "limit": "2"}).json()
        assert first["hasMore"] is True
        assert [item["message"] for item in first["items"]] == ["c4", "c3"]
        second = client.get(
            f"{COGNITO}/logs", params={"severity": "warning", "limit": "2", "startKey": first["nextToken"]}
        ).json()
        assert second == {
            "items": [
                {"id": made[1]["id"], "datetime": made[1]["datetime"], "severity": "warning", "message": "c1"}
            ],
            "hasMore": False,
        }
        everything = client.get(f"{COGNITO}/logs").json()
    assert [item["message"] for item in everything["items"]] == [
        "no severity: info",
        "c4",
        "c3",
        "c2",
        "c1",
        "c0",
    ]
    assert [item["severity"] for item in everything["items"]][:2] == ["info", "warning"]
    assert everything["hasMore"] is False
    assert "nextToken" not in everything


def test_a_cognito_client_id_makes_a_retry_a_no_op(cognito: ServerThread, signer: SigningKey) -> None:
    """With a UUIDv7 the retry's answer is the first one's too (the entry's time is the id's)."""
    client_id = str(uuid_utils.uuid7())
    body = {"id": client_id, "severity": "error", "message": f"once {client_id}"}
    with httpx.Client(
        base_url=cognito.url, timeout=10, headers=raw(id_token(signer, ["logsvc-ingest", "read"]))
    ) as client:
        answers = [client.post(f"{COGNITO}/logs", json=body) for _ in range(2)]
        assert [a.status_code for a in answers] == [201, 201]
        assert answers[0].json() == answers[1].json()
        assert answers[0].json()["id"] == client_id
        items = client.get(f"{COGNITO}/logs", params={"severity": "error", "limit": "100"}).json()["items"]
    assert [item["id"] for item in items].count(client_id) == 1


@pytest.mark.parametrize(
    ("params", "fields"),
    [
        ({"limit": "101"}, ["limit"]),
        ({"limit": "0"}, ["limit"]),
        ({"limit": "ten"}, ["limit"]),
        ({"severity": "debug"}, ["severity"]),
        ({"severity": "WARNING"}, ["severity"]),
        ({"startKey": "not-a-token"}, ["startKey"]),
        ({"level": "ERROR"}, ["level"]),
    ],
)
def test_a_cognito_read_outside_its_rules_is_a_400(
    cognito: ServerThread, signer: SigningKey, params: dict[str, str], fields: list[str]
) -> None:
    answer = httpx.get(
        f"{cognito.url}{COGNITO}/logs", params=params, headers=raw(id_token(signer, ["read"])), timeout=10
    )
    problem(answer, 400, *fields)


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"severity": "fatal", "message": "m"}, ["severity"]),
        ({"id": "not-a-uuid", "message": "m"}, ["id"]),
        ({"id": "not-a-uuid", "severity": "x", "message": "m"}, ["id", "severity"]),
        ({"message": "m", "logId": "x"}, ["logId"]),
        ({}, ["message"]),
    ],
)
def test_a_cognito_body_outside_its_rules_is_a_400(
    cognito: ServerThread, signer: SigningKey, body: dict[str, Any], fields: list[str]
) -> None:
    answer = httpx.post(
        f"{cognito.url}{COGNITO}/logs", json=body, headers=raw(id_token(signer, ["ingest"])), timeout=10
    )
    problem(answer, 400, *fields)


def test_the_raw_token_is_taken_under_the_cognito_prefix_only(
    cognito: ServerThread, signer: SigningKey
) -> None:
    token = id_token(signer, ["read"])
    with httpx.Client(base_url=cognito.url, timeout=10) as client:
        assert client.get(f"{COGNITO}/logs", headers=raw(token)).status_code == 200
        assert client.get(f"{COGNITO}/logs", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        native = client.get("/logs", headers=raw(token))
        assert problem(native, 401)["code"] == "invalid_token"
        assert token not in native.text
        assert client.get("/logs", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        assert problem(client.get(f"{COGNITO}/logs"), 401)["code"] == "missing_authentication_token"
        forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
        assert problem(client.get(f"{COGNITO}/logs", headers=raw(forged)), 401)["code"] == "invalid_token"


def test_a_pool_user_in_no_group_may_do_nothing_unless_default_roles_are_set(
    cognito: ServerThread, signer: SigningKey, jwks: JwksServer, tmp_path: Path
) -> None:
    nobody = raw(id_token(signer))
    with httpx.Client(base_url=cognito.url, timeout=10) as client:
        assert "roles: none" in problem(client.get(f"{COGNITO}/logs", headers=nobody), 403)["detail"]
    opted_in = cognito_server(tmp_path, jwks, jwt_default_roles=["ingest", "read"])
    try:
        with httpx.Client(base_url=opted_in.url, timeout=10) as client:
            made = client.post(f"{COGNITO}/logs", json={"message": "no group"}, headers=nobody)
            assert made.status_code == 201, made.text
            assert client.get(f"{COGNITO}/logs", headers=nobody).json()["items"][0]["id"] == made.json()["id"]
            assert problem(
                client.get("/admin/keys", headers={"Authorization": f"Bearer {id_token(signer)}"}), 403
            )
            # A groups claim naming none of our roles is not "no claim": no default roles then.
            other = raw(id_token(signer, ["marketing"]))
            assert problem(client.get(f"{COGNITO}/logs", headers=other), 403)
    finally:
        opted_in.stop()


def test_a_cognito_user_scoped_to_other_services_reads_and_writes_nothing_here(
    cognito: ServerThread, signer: SigningKey
) -> None:
    scoped = raw(id_token(signer, ["ingest", "read"], **{"logsvc:services": ["payments*"]}))
    with httpx.Client(base_url=cognito.url, timeout=10, headers=scoped) as client:
        assert (
            "not to cognito" in problem(client.post(f"{COGNITO}/logs", json={"message": "m"}), 403)["detail"]
        )
        assert "not cognito" in problem(client.get(f"{COGNITO}/logs"), 403)["detail"]


# ---- The native read's severity alias ----------------------------------------------------------------------


def test_severity_is_an_alias_of_level_on_the_native_read(client: httpx.Client) -> None:
    batch = [
        {"service_name": "alias", "level": level, "message": level} for level in ("INFO", "ERROR", "ERROR")
    ]
    assert client.post("/logs", json=batch).status_code == 201
    by_level = client.get("/logs", params={"service_name": "alias", "level": "error"}).json()
    by_severity = client.get("/logs", params={"service_name": "alias", "severity": "error"}).json()
    assert by_severity == by_level
    assert by_severity["count"] == 2
    assert (
        client.get("/logs/recent", params={"service_name": "alias", "severity": "warning"}).json()["count"]
        == 0
    )
    both = client.get("/logs", params={"level": "ERROR", "severity": "ERROR"})
    assert "alias of level" in problem(both, 400, "severity")["detail"]
    problem(client.get("/logs", params={"severity": "loud"}), 400, "severity")
