"""`logsvc send` and `logsvc recent` against a real server: SigV4 from the credentials file, bearer API keys,
AWS credentials from the environment (as for API Gateway with IAM auth), and errors as one readable line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from logsvc.auth.policy import Role
from logsvc.auth.profiles import write_profile
from logsvc.client import region_of
from tests.conftest import ServerThread, make_key, make_settings, run_logsvc


@pytest.fixture
def profiled(server: ServerThread) -> ServerThread:
    write_profile(
        Path(server.settings.credentials_file), "default", endpoint=server.url, credential=server.admin
    )
    return server


def test_send_then_recent_signed_with_sigv4(profiled: ServerThread) -> None:
    sent = run_logsvc(profiled.settings, "send", "disk is full", "--service", "api", "--level", "error")
    assert sent.returncode == 0, sent.stderr
    log_id = json.loads(sent.stdout)["log_id"]
    found = run_logsvc(profiled.settings, "recent", "--service", "api", "--min-level", "warn", "--json")
    assert found.returncode == 0, found.stderr
    (entry,) = json.loads(found.stdout)["logs"]
    assert (entry["log_id"], entry["level"], entry["message"]) == (log_id, "ERROR", "disk is full")
    table = run_logsvc(profiled.settings, "recent", "--q", "disk full")
    assert "disk is full" in table.stdout
    assert "api" in table.stdout


def test_recent_follows_its_cursor(profiled: ServerThread) -> None:
    for message in ("first", "second", "third"):
        assert run_logsvc(profiled.settings, "send", message).returncode == 0
    first = run_logsvc(profiled.settings, "recent", "--limit", "2")
    assert "third" in first.stdout
    assert "second" in first.stdout
    cursor = first.stdout.split("more: --cursor ")[1].split()[0]
    rest = run_logsvc(profiled.settings, "recent", "--limit", "2", "--cursor", cursor, "--json")
    assert [e["message"] for e in json.loads(rest.stdout)["logs"]] == ["first"]


def test_send_a_file_with_a_bearer_key(profiled: ServerThread, tmp_path: Path) -> None:
    batch = tmp_path / "batch.ndjson"
    batch.write_text('{"message": "one"}\n{"message": "two", "service_name": "web"}\n')
    sent = run_logsvc(profiled.settings, "send", "--file", str(batch), "--bearer")
    assert sent.returncode == 0, sent.stderr
    assert json.loads(sent.stdout)["count"] == 2


def test_a_rejected_entry_is_one_line_naming_the_field(profiled: ServerThread) -> None:
    sent = run_logsvc(profiled.settings, "send", "   ")
    assert sent.returncode == 1
    assert sent.stderr == "error: 400 Request validation failed: message: must not be blank\n"
    assert "Traceback" not in sent.stderr


def test_a_wrong_secret_is_refused(profiled: ServerThread) -> None:
    path = Path(profiled.settings.credentials_file)
    path.write_text(path.read_text().replace(profiled.admin.secret_access_key, "x" * 40))
    sent = run_logsvc(profiled.settings, "send", "hello")
    assert sent.returncode == 1
    assert "403" in sent.stderr
    assert "signature" in sent.stderr.lower()


def test_a_scoped_key_may_not_write_elsewhere(server: ServerThread) -> None:
    scoped = make_key(server.settings, Role.INGEST, ("payments*",))
    write_profile(Path(server.settings.credentials_file), "payments", endpoint=server.url, credential=scoped)
    own = run_logsvc(server.settings, "send", "ok", "--service", "payments-api", "--profile", "payments")
    assert own.returncode == 0, own.stderr
    other = run_logsvc(server.settings, "send", "no", "--service", "web", "--profile", "payments")
    assert other.returncode == 1
    assert "403" in other.stderr
    assert "not to web" in other.stderr


def test_aws_credentials_from_the_environment_sign_the_request(
    server: ServerThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", server.admin.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", server.admin.secret_access_key)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    sent = run_logsvc(server.settings, "send", "from aws creds", "--aws", "--endpoint", server.url)
    assert sent.returncode == 0, sent.stderr


def test_an_assumed_role_signs_with_its_session_credentials(
    server: ServerThread, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """STS is moto's (a stand-in): the role's temporary keys are not known to this server, which says so."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", moto_endpoint)
    role = "arn:aws:iam::123456789012:role/logsvc-dev-ingest"
    args = ["send", "hi", "--aws", "--endpoint", server.url, "--role-arn", role, "--external-id", "ext-1"]
    sent = run_logsvc(server.settings, *args)
    assert sent.returncode == 1
    assert "403" in sent.stderr
    assert "403 The request signature does not match" in sent.stderr


def test_a_missing_credentials_file_or_profile_is_named(profiled: ServerThread, tmp_path: Path) -> None:
    missing = run_logsvc(make_settings(tmp_path / "other"), "recent")
    assert missing.returncode == 2
    assert "no credentials file at" in missing.stderr
    unknown = run_logsvc(profiled.settings, "recent", "--profile", "prod")
    assert unknown.returncode == 2
    assert "has no profile 'prod' (it has: default)" in unknown.stderr


@pytest.mark.parametrize(
    ("endpoint", "region"),
    [
        ("https://abc123.execute-api.eu-west-1.amazonaws.com/prod", "eu-west-1"),
        ("https://xyz.lambda-url.ap-southeast-2.on.aws/", "ap-southeast-2"),
        ("http://127.0.0.1:8080", None),
        ("https://logs.example.com", None),
    ],
)
def test_the_region_is_read_off_aws_host_names(endpoint: str, region: str | None) -> None:
    assert region_of(endpoint) == region


def test_a_damaged_credentials_file_is_one_line_naming_it(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data")
    Path(settings.credentials_file).write_text("api_key = lsk_without_a_profile\n")
    shown = run_logsvc(settings, "recent")
    assert shown.returncode == 2
    assert shown.stderr.startswith(f"error: {settings.credentials_file} is not a credentials file")
    assert "Traceback" not in shown.stderr
