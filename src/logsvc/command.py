"""The entry point of the ``logsvc`` command. The command needs the ``server`` extra; an install of the SDK
alone has the script too, and running it says which extra to install rather than ending in a traceback."""

from __future__ import annotations

import sys

__all__ = ["main"]

# The top-level modules of the server extra's packages (pyproject.toml), and the ones they bring.
_SERVER_MODULES = frozenset(
    {
        "apsw",
        "boto3",
        "botocore",
        "click",
        "cryptography",
        "google",
        "jwt",
        "opentelemetry",
        "prometheus_client",
        "rich",
        "starlette",
        "uvicorn",
    }
)


def main() -> None:
    try:
        from logsvc.cli import main as command  # noqa: PLC0415 (the import is what may fail)
    except ModuleNotFoundError as exc:
        if (exc.name or "").partition(".")[0] not in _SERVER_MODULES:
            raise
        sys.exit(
            f"logsvc: the command needs the server's dependencies ({exc.name} is not installed): "
            "pip install 'logsvc[server]'"
        )
    command()
