"""What a Lambda container pays at start: importing the handlers loads only what the zip holds.

Timing is the benchmark's business (benchmarks/lambda_handlers.py); this checks behaviour: in a fresh
interpreter, importing ``logsvc.aws.handlers`` loads no module of a package the deployment zip leaves out,
and does not open the store or read AWS credentials (boto3 loads at the first request).
"""

from __future__ import annotations

import json
import subprocess
import sys

from tests.aws.helpers import INGEST_CALLER, PRINCIPALS, READ_CALLER, ingest_event, read_event

# Packages the server needs and the Lambda zip does not hold (or, for boto3, protobuf and cramjam, loads only
# when a request that needs them comes).
NOT_AT_IMPORT = {
    "google",
    "cramjam",
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


_SERVE_WITHOUT_THE_SERVER_PACKAGES = """
import json, sys

blocked = set(json.loads(sys.argv[1]))


class LeftOutOfTheZip:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in blocked:
            raise ImportError(f"{name} is not in the Lambda zip")
        return None


sys.meta_path.insert(0, LeftOutOfTheZip())
from logsvc.aws.handlers import LambdaApp
from logsvc.settings import load_settings

given = json.load(sys.stdin)
app = LambdaApp(load_settings(environ={}, overrides=given["settings"]))
answers = [app.ingest(given["ingest"], None)["statusCode"], app.read(given["read"], None)["statusCode"]]
app.close()
print(json.dumps(answers))
"""


def test_requests_are_served_without_the_packages_the_zip_leaves_out(
    dynamodb_url: str, aws_credentials: None
) -> None:
    """Not only the import: an ingest and a read open the DynamoDB store and answer, with every package the
    zip leaves out made unimportable (boto3 is the runtime's)."""
    given = {
        "settings": {"store": dynamodb_url, "aws_principals": PRINCIPALS},
        "ingest": ingest_event("rest_v1", {"message": "from a cold container"}, caller=INGEST_CALLER),
        "read": read_event("rest_v1", caller=READ_CALLER),
    }
    blocked = sorted(NOT_AT_IMPORT - {"boto3", "botocore"})
    done = subprocess.run(
        [sys.executable, "-c", _SERVE_WITHOUT_THE_SERVER_PACKAGES, json.dumps(blocked)],
        input=json.dumps(given),
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [201, 200], done.stderr
