"""The README's examples work as printed, against a real server."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from logsvc.auth.profiles import write_profile
from tests.conftest import ServerThread, read_service

README = Path(__file__).parents[2] / "README.md"


def test_readme_starts_with_the_two_commands() -> None:
    lines = README.read_text().splitlines()
    block = lines[lines.index("```") + 1 : lines.index("```") + 3]
    assert block[0].startswith("make run ")
    assert block[1].startswith("make test ")


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_readme_examples_succeed(server: ServerThread) -> None:
    text = README.read_text()
    script = re.search(r"## Try it.*?```sh\n(.*?)```", text, re.DOTALL)
    assert script is not None
    write_profile(
        Path(server.settings.credentials_file), "default", endpoint=server.url, credential=server.admin
    )
    commands = (
        script.group(1)
        .replace("http://127.0.0.1:8080", server.url)
        .replace("~/.config/logsvc/credentials", server.settings.credentials_file)
        .replace("curl -sS", "curl -sS --fail")
    )
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", commands], check=False, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert '"count":2' in result.stdout.replace(" ", "")
    assert "card declined" in result.stdout
    assert '"roles":["ingest"],"services":["payments*"]' in result.stdout


def test_readme_python_example_delivers(server: ServerThread) -> None:
    text = README.read_text()
    snippet = re.search(r"```python\n(.*?)```", text, re.DOTALL)
    assert snippet is not None
    program = f"TOKEN = {server.admin.api_key!r}\n" + snippet.group(1).replace(
        "http://127.0.0.1:8080", server.url
    )
    result = subprocess.run(
        [sys.executable, "-c", program], check=False, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert [e["message"] for e in read_service(server, "api")] == ["user signed in"]
