"""What a Lambda container pays at start: importing the handlers loads only what the zip holds.

Timing is the benchmark's business (benchmarks/lambda_handlers.py); this checks behaviour: in a fresh
interpreter, importing ``logsvc.aws.handlers`` loads no module of a package the deployment zip leaves out,
and does not open the store or read AWS credentials (boto3 loads at the first request).
"""

from __future__ import annotations

import json
import subprocess
import sys

# Packages the server needs and the Lambda zip does not hold (or, for boto3, loads only when a request comes).
NOT_AT_IMPORT = {
    "apsw",
    "starlette",
    "uvicorn",
    "cryptography",
    "jwt",
    "rich",
    "click",
    "httpx",
    "prometheus_client",
    "boto3",
    "botocore",
}


def _modules_after(statement: str) -> set[str]:
    code = f"import json, sys\n{statement}\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-I", "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    return set(json.loads(done.stdout))


def test_importing_the_handlers_loads_nothing_heavy() -> None:
    loaded = _modules_after("import logsvc.aws.handlers")
    assert "logsvc.aws.handlers" in loaded
    assert {name.split(".")[0] for name in loaded} & NOT_AT_IMPORT == set()
    # The store's port and opener are light; no adapter (SQLite or DynamoDB) loads until a store is opened.
    adapters = ("logsvc.storage.sqlite", "logsvc.storage.dynamodb")
    assert not {name for name in loaded if name.startswith(("logsvc.api", "logsvc.crypto", *adapters))}


def test_the_service_module_stays_free_of_sqlite() -> None:
    loaded = _modules_after("import logsvc.service, logsvc.settings")
    assert {name.split(".")[0] for name in loaded} & {"apsw", "starlette", "cryptography", "jwt"} == set()
