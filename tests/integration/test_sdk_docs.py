"""The quick start of docs/sdk.md works as printed, against a real server."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from logsvc.client import Client
from tests.conftest import ServerThread

ROOT = Path(__file__).resolve().parents[2]
SDK_DOC = ROOT / "docs" / "sdk.md"


def test_the_quick_start_runs(server: ServerThread) -> None:
    section = SDK_DOC.read_text().split("## Quick start", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.DOTALL)
    assert len(blocks) == 3
    for block in blocks:
        code = f"KEY = {server.admin.api_key!r}\norder_id = 'A-1'\n" + block.replace(
            "http://127.0.0.1:8080", server.url
        )
        ran = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            timeout=60,
            env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"},
            check=False,
        )
        assert ran.returncode == 0, ran.stderr
        assert "logsvc.client:" not in ran.stderr, ran.stderr
    with Client(server.url, api_key=server.admin.api_key) as client:
        (paid,) = client.recent(service_name="api", q="paid")
        assert (paid.message, paid.metadata and paid.metadata["user"]) == ("order A-1 paid", {"id": 7})
        (login,) = client.recent(service_name="api", q="logged")
        assert login.metadata is not None
        assert login.metadata["user_id"] == 7
        assert len(client.recent(service_name="worker", limit=1000)) == 100
