"""The SDK is light: importing logsvc.client loads none of the server's dependencies, and an application
that installed only the base package (no `server` extra) can import it and ship logs with it."""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

from tests.conftest import ServerThread, make_settings

ROOT = Path(__file__).resolve().parents[2]
# The list, and what the server's packages bring (protobuf under the name google).
SERVER_ONLY = (
    "apsw",
    "starlette",
    "uvicorn",
    "cryptography",
    "boto3",
    "botocore",
    "jwt",
    "prometheus_client",
    "opentelemetry",
    "google",
)


def _python(code: str) -> subprocess.CompletedProcess[str]:
    env = {"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env, check=False
    )


def test_importing_the_sdk_loads_no_server_dependency() -> None:
    shown = _python(
        textwrap.dedent(
            """
            import json, sys
            import logsvc.client
            from logsvc.client import AsyncClient, AwsCredentials, Client, LogHandler, LogProcessor
            from logsvc.client.ndjson import read_batches
            Client("http://127.0.0.1:9", aws_credentials=AwsCredentials("AKID", "secret")).close()
            handler = LogHandler("http://127.0.0.1:9", service="light", api_key="k")
            handler.close()
            print(json.dumps(sorted(sys.modules)))
            """
        )
    )
    assert shown.returncode == 0, shown.stderr
    loaded = {name.partition(".")[0] for name in json.loads(shown.stdout)}
    assert loaded.isdisjoint(SERVER_ONLY), loaded & set(SERVER_ONLY)
    assert "logsvc.client" in json.loads(shown.stdout)


def _base_closure() -> set[str]:
    """The distributions that `pip install logsvc` brings: the base dependencies and theirs, no extras."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = [Requirement(text) for text in project["dependencies"]]
    found: set[str] = set()
    while wanted:
        requirement = wanted.pop()
        name = requirement.name.lower().replace("_", "-")
        if name in found or (requirement.marker and not requirement.marker.evaluate({"extra": ""})):
            continue
        found.add(name)
        wanted += [Requirement(text) for text in importlib.metadata.requires(name) or []]
    return found


def _not_installed_without_extras() -> list[str]:
    """Every installed top-level module that the base install would not have."""
    base = _base_closure()
    modules = importlib.metadata.packages_distributions()
    return sorted(
        module
        for module, distributions in modules.items()
        if module != "logsvc"
        and not any(d.lower().replace("_", "-") in base for d in distributions)
        and module not in sys.stdlib_module_names
    )


def test_the_base_install_is_enough_to_ship_logs(tmp_path: Path) -> None:
    """Every module outside the base dependencies made unimportable, as on a machine where they are not
    installed: the handler and the client still send and read."""
    blocked = _not_installed_without_extras()
    assert {"starlette", "apsw", "click", "botocore"} <= set(blocked)  # the server extra is among them
    server = ServerThread(make_settings(tmp_path / "data")).start()
    try:
        code = textwrap.dedent(
            f"""
            import importlib.abc, logging, sys
            BLOCKED = set({blocked!r})
            class NotInstalled(importlib.abc.MetaPathFinder):
                def find_spec(self, name, path, target=None):
                    if name.partition(".")[0] in BLOCKED:
                        raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
                    return None
            sys.meta_path.insert(0, NotInstalled())
            for name in list(sys.modules):
                if name.partition(".")[0] in BLOCKED:
                    del sys.modules[name]

            from logsvc.client import Client, LogHandler
            handler = LogHandler({server.url!r}, service="light", api_key={server.admin.api_key!r})
            log = logging.getLogger("light")
            log.addHandler(handler)
            log.setLevel(logging.INFO)
            for n in range(20):
                log.info("light %d", n)
            assert handler.flush(30), handler.pending
            with Client({server.url!r}, api_key={server.admin.api_key!r}) as client:
                assert len(client.recent(service_name="light")) == 20
            try:
                import logsvc.cli
            except ModuleNotFoundError:
                pass
            else:
                raise SystemExit("the command's modules should be missing here")
            from logsvc.command import main
            sys.argv = ["logsvc", "--help"]
            main()
            """
        )
        shown = _python(code)
    finally:
        server.stop()
    assert shown.returncode == 1, shown.stderr
    assert "the command needs the server's dependencies" in shown.stderr
    assert "pip install 'logsvc[server]'" in shown.stderr
    assert "Traceback" not in shown.stderr
