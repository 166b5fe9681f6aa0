"""``logsvc.aws.handlers.ingest`` and ``.read`` as Lambda calls them: in a fresh interpreter configured only
by LOGSVC_* variables, against DynamoDB in moto's server mode (a stand-in for DynamoDB, not AWS itself)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.aws.helpers import EVENTS, PRINCIPALS

# Runs each event file given on the command line through its function; answers go to a file, so that
# stdout holds only what the function logs there, as CloudWatch Logs would receive it.
_INVOKE = """
import json, sys
from logsvc.aws import handlers
answers = []
for function, path in zip(sys.argv[2::2], sys.argv[3::2]):
    event = json.load(open(path))
    answers.append(getattr(handlers, function)(event, None))
open(sys.argv[1], "w").write(json.dumps(answers))
"""


def _invoke(tmp_path: Path, env: dict[str, str], *calls: tuple[str, str]) -> tuple[list[dict[str, Any]], str]:
    answers = tmp_path / "answers.json"
    args = [arg for function, name in calls for arg in (function, str(EVENTS / f"{name}.json"))]
    base = {k: v for k, v in os.environ.items() if not k.startswith("LOGSVC_")}
    done = subprocess.run(
        [sys.executable, "-c", _INVOKE, str(answers), *args],
        env=base | env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    found: list[dict[str, Any]] = json.loads(answers.read_text())
    return found, done.stdout


def _log_lines(stdout: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in stdout.splitlines() if line.strip()]
    for line in lines:
        assert {"time", "level", "logger", "message"} <= line.keys()
    return lines


def test_the_entry_points_take_their_settings_from_the_environment(tmp_path: Path, dynamodb_url: str) -> None:
    env = {
        "LOGSVC_STORE": dynamodb_url,
        "LOGSVC_AWS_PRINCIPALS": json.dumps(PRINCIPALS),
        "LOGSVC_ACCESS_LOG": "true",
    }
    answers, stdout = _invoke(
        tmp_path,
        env,
        ("ingest", "rest_v1_iam_ingest"),
        ("ingest", "function_url_iam_ingest"),
        ("read", "http_v2_iam_recent"),
        ("ingest", "function_url_none_ingest"),
    )
    assert [a["statusCode"] for a in answers] == [201, 201, 200, 401]
    assert json.loads(answers[2]["body"])["count"] == 2
    logged = _log_lines(stdout)
    assert [line["message"].split(" -> ")[1].split(" ")[0] for line in logged] == ["201", "201", "200", "401"]
    assert "assumed-role/logsvc-ingest/checkout-app" in logged[0]["message"]


def test_a_misconfigured_function_answers_500_each_time_and_logs_why(tmp_path: Path) -> None:
    env = {"LOGSVC_AWS_PRINCIPALS": '{"arn:aws:iam::1:role/typo": {"role": "ingest"}}'}
    answers, stdout = _invoke(tmp_path, env, ("ingest", "rest_v1_iam_ingest"), ("read", "http_v2_iam_recent"))
    assert [a["statusCode"] for a in answers] == [500, 500]
    assert json.loads(answers[0]["body"])["detail"] == "the server failed to answer; see its log"
    logged = _log_lines(stdout)
    assert len(logged) == 2
    assert all("misconfigured" in line["message"] and "aws_principals" in line["message"] for line in logged)
    assert all(line["level"] == "ERROR" for line in logged)
