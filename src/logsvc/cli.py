"""The ``logsvc`` command. Commands only gather options and call into the package."""

from __future__ import annotations

from typing import Any

import click
from rich.console import Console

from logsvc import __version__
from logsvc.errors import ConfigError
from logsvc.server import serve as run_server
from logsvc.settings import load_settings

__all__ = ["main"]

_err = Console(stderr=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="logsvc")
def main() -> None:
    """Simple Log Service: send, search and tail logs, self-hosted or on AWS."""


@main.command()
@click.option("--host", help="Address to bind.  [default: 127.0.0.1]")
@click.option("--port", type=int, help="TCP port.  [default: 8080]")
@click.option("--data-dir", type=click.Path(file_okay=False), help="Directory of the embedded store.")
@click.option("--store", "store", help="Store URL, e.g. sqlite:////var/lib/logsvc/logs.db.")
@click.option("--workers", type=int, help="Server processes sharing the port.  [default: 1]")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="TOML settings file.")
@click.option(
    "--log-level", type=click.Choice(["debug", "info", "warning", "error"]), help="Service log level."
)
@click.option("--access-log/--no-access-log", default=None, help="Log every request.")
def serve(config_file: str | None, **flags: Any) -> None:
    """Run the HTTP service (embedded store by default).

    Settings come from defaults, then the TOML file (--config or LOGSVC_CONFIG), then LOGSVC_* variables,
    then these flags.
    """
    try:
        settings = load_settings(config_file, overrides=flags)
        run_server(settings)
    except ConfigError as exc:
        _err.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise SystemExit(2) from None
