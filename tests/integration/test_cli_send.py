"""`logsvc send` with --type and --metadata, and NDJSON entries from stdin in batches, against a real server:
bad options and bad lines are named, and what was stored before a failure is said."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from logsvc.auth.profiles import write_profile
from logsvc.client import Client, Entry
from tests.conftest import ServerThread, eventually, logsvc_environment, run_logsvc


@pytest.fixture
def profiled(server: ServerThread) -> ServerThread:
    write_profile(
        Path(server.settings.credentials_file), "default", endpoint=server.url, credential=server.admin
    )
    return server


def entries(server: ServerThread, service: str) -> list[Entry]:
    with Client(server.url, api_key=server.admin.api_key) as client:
        return [e for page in client.pages(service_name=service, limit=1000) for e in page.logs]


def test_type_and_metadata(profiled: ServerThread) -> None:
    sent = run_logsvc(
        profiled.settings,
        "send",
        "user signed in",
        "--service",
        "auth",
        "--type",
        "audit",
        "--metadata",
        "user=alice",
        "--metadata",
        "query=a=b&c=d",
        "--metadata",
        "empty=",
    )
    assert sent.returncode == 0, sent.stderr
    (entry,) = entries(profiled, "auth")
    assert entry.log_id == json.loads(sent.stdout)["log_id"]
    assert entry.log_type == "audit"
    assert entry.metadata == {"user": "alice", "query": "a=b&c=d", "empty": ""}


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--metadata", "user"], "error: --metadata takes KEY=VALUE, not 'user'\n"),
        (["--metadata", "=alice"], "error: --metadata takes KEY=VALUE, not '=alice'\n"),
        (["--metadata", "a=1", "--metadata", "a=2"], "error: --metadata a is given twice\n"),
    ],
)
def test_a_bad_metadata_option_is_named(profiled: ServerThread, args: list[str], error: str) -> None:
    sent = run_logsvc(profiled.settings, "send", "hello", *args)
    assert (sent.returncode, sent.stderr) == (2, error)


def test_ndjson_from_stdin_in_batches(profiled: ServerThread) -> None:
    lines = [json.dumps({"message": f"line {n}", "metadata": {"n": n}}) for n in range(1, 2501)]
    lines[9] = json.dumps(
        {"message": "its own", "service_name": "other", "level": "error", "metadata": {"user": "x"}}
    )
    lines[10] = json.dumps({"message": "older client", "severity": "warning"})
    stdin = "\n".join(lines[:100]) + "\n\n" + "\n".join(lines[100:]) + "\n"
    args = ["send", "--service", "piped", "--level", "debug", "--type", "batch", "--metadata", "host=h1"]
    sent = run_logsvc(profiled.settings, *args, "--batch-size", "1000", stdin=stdin)
    assert sent.returncode == 0, sent.stderr
    answers = [json.loads(line) for line in sent.stdout.splitlines()]
    assert [a["count"] for a in answers] == [1000, 1000, 500]
    stored = entries(profiled, "piped")
    assert len(stored) == 2499
    first = next(e for e in stored if e.message == "line 1")
    assert (first.level, first.log_type, first.metadata) == ("DEBUG", "batch", {"host": "h1", "n": 1})
    assert next(e for e in stored if e.message == "older client").level == "WARN"
    (own,) = entries(profiled, "other")
    assert (own.level, own.log_type, own.metadata) == ("ERROR", "batch", {"host": "h1", "user": "x"})


def test_a_dash_reads_stdin(profiled: ServerThread) -> None:
    sent = run_logsvc(profiled.settings, "send", "-", "--service", "dash", stdin='{"message": "one"}')
    assert sent.returncode == 0, sent.stderr
    assert json.loads(sent.stdout)["count"] == 1
    assert [e.message for e in entries(profiled, "dash")] == ["one"]


def test_a_bad_line_is_named_after_the_batches_before_it(profiled: ServerThread) -> None:
    stdin = '{"message": "1"}\n\n{"message": "3"}\n{"message": "4"}\n{"message": "5"}\n'
    stdin += '{"message": 6\n{"message": "7"}\n'
    sent = run_logsvc(profiled.settings, "send", "--service", "bad", "--batch-size", "2", stdin=stdin)
    assert sent.returncode == 2
    assert sent.stderr.startswith("error: line 6: not JSON (")
    assert sent.stderr.endswith("; 4 entries before line 6 were stored, none from it on\n")
    assert "Traceback" not in sent.stderr
    assert sorted(e.message for e in entries(profiled, "bad")) == ["1", "3", "4", "5"]
    assert len(sent.stdout.splitlines()) == 2


def test_a_line_that_is_not_an_object_is_named(profiled: ServerThread) -> None:
    sent = run_logsvc(profiled.settings, "send", "-", stdin='{"message": "ok"}\n["a", "list"]\n')
    assert (sent.returncode, sent.stderr) == (
        2,
        "error: line 2: must be a JSON object, not list; "
        "0 entries before line 1 were stored, none from it on\n",
    )


def test_an_entry_the_service_refuses_is_named_by_its_line(profiled: ServerThread) -> None:
    stdin = '{"message": "fine"}\n{"message": "also fine"}\n{"message": "  "}\n'
    stdin += '{"message": "x", "level": "loud"}\n'
    sent = run_logsvc(profiled.settings, "send", "--service", "refused", "--batch-size", "1", stdin=stdin)
    assert sent.returncode == 1
    assert sent.stderr == (
        "error: 400 Request validation failed: line 3: message: must not be blank; "
        "2 entries before line 3 were stored, none from it on\n"
    )
    assert sorted(e.message for e in entries(profiled, "refused")) == ["also fine", "fine"]


def test_empty_stdin_says_what_to_give(profiled: ServerThread) -> None:
    sent = run_logsvc(profiled.settings, "send", stdin="\n\n")
    assert (sent.returncode, sent.stderr) == (2, "error: no entries to send: the input holds none\n")


def test_lines_are_sent_as_they_come(profiled: ServerThread) -> None:
    """A pipe that stays open (tail -f): what came is sent within a second, before the batch is full."""
    with subprocess.Popen(
        [sys.executable, "-m", "logsvc", "send", "--service", "live"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=logsvc_environment(profiled.settings),
    ) as process:
        try:
            assert process.stdin is not None
            process.stdin.write(b'{"message": "first"}\n{"message": "second"}\n')
            process.stdin.flush()
            assert eventually(lambda: len(entries(profiled, "live")) == 2)
            process.stdin.write(b'{"message": "third"}')
            out, err = process.communicate(timeout=60)
        finally:
            process.kill()
    assert process.returncode == 0, err
    assert [json.loads(line)["count"] for line in out.splitlines()] == [2, 1]
    assert sorted(e.message for e in entries(profiled, "live")) == ["first", "second", "third"]


def test_a_json_file_is_sent_in_batches(profiled: ServerThread, tmp_path: Path) -> None:
    path = tmp_path / "entries.json"
    path.write_text(json.dumps([{"message": f"m{n}"} for n in range(5)]))
    sent = run_logsvc(
        profiled.settings, "send", "--file", str(path), "--service", "file", "--batch-size", "2"
    )
    assert sent.returncode == 0, sent.stderr
    assert [json.loads(line)["count"] for line in sent.stdout.splitlines()] == [2, 2, 1]
    assert len(entries(profiled, "file")) == 5
