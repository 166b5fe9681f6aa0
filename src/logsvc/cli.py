"""The ``logsvc`` command. Commands only gather options and call into the package."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import click
import msgspec
from rich.console import Console
from rich.table import Column, Table
from rich.text import Text

from logsvc import __version__
from logsvc.archive import restore_to_time
from logsvc.auth.credential_service import check_master_rotation
from logsvc.auth.policy import Principal, Role
from logsvc.aws.package import ARCHITECTURES, PackageError
from logsvc.aws.package import build as build_lambda_zips
from logsvc.backup import create_backup, restore_backup
from logsvc.client import AwsChain, Client, ClientError, CredentialsUnavailable, load_profile, region_of
from logsvc.client.ndjson import BadLine, Batch, batches, read_batches
from logsvc.crypto import database_ciphers, key_source, rekey_store, rotate_master_key, store_key
from logsvc.crypto.sqlite import CIPHER_NAMES, CIPHERS
from logsvc.datadir import DataDir
from logsvc.display import json_line, printable, untrusted
from logsvc.domain.queries import QUERY_PARAMETERS
from logsvc.domain.timestamps import format_timestamp, parse_timestamp
from logsvc.errors import ConfigError, LogServiceError
from logsvc.root import Root
from logsvc.server import serve as run_server
from logsvc.service import check_destroy, purge
from logsvc.settings import Settings, load_settings
from logsvc.storage.open import store_files
from logsvc.store_url import sqlite_path, store_databases, tiered_url

__all__ = ["main"]

_err = Console(stderr=True)
_out = Console(highlight=False)


class Failed(click.ClickException):
    """An error an operator can act on: one line, never wrapped (paths and ids stay copyable) and printed as
    text (the message may quote a server or a file); exit status 2."""

    exit_code = 2

    def show(self, file: IO[Any] | None = None) -> None:
        _err.print(
            Text.assemble(("error:", "bold red"), " ", untrusted(self.message)),
            highlight=False,
            soft_wrap=True,
        )


class Unanswered(Failed):
    """The service refused the request or could not be reached: exit status 1."""

    exit_code = 1


class _Main(click.Group):
    """The command group that maps the service's errors to the CLI's, once for every command."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            raise Failed(str(exc)) from None
        except LogServiceError as exc:
            raise Failed(exc.detail) from None
        except PackageError as exc:
            raise Failed(str(exc)) from None
        except CredentialsUnavailable as exc:
            raise Failed(str(exc)) from None
        except ClientError as exc:
            raise Unanswered(str(exc)) from None


# Whoever runs the CLI on the host holds the data directory, so acts as an admin.
_OPERATOR = Principal(id="cli", roles=frozenset({Role.ADMIN}), method="local")
_DATA_DIR = click.option("--data-dir", type=click.Path(file_okay=False), help="Directory of the local store.")
_CONFIG = click.option("--config", "config_file", type=click.Path(dir_okay=False), help="TOML settings file.")


@click.group(cls=_Main, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="logsvc")
def main() -> None:
    """Simple Log Service: send and search logs, self-hosted or on AWS."""


@main.command()
@click.option("--host", help="Address to bind.  [default: 127.0.0.1]")
@click.option("--port", type=int, help="TCP port.  [default: 8080]")
@click.option("--data-dir", type=click.Path(file_okay=False), help="Directory of the embedded store.")
@click.option("--store", "store", help="Store URL, e.g. sqlite:////var/lib/logsvc/logs.db.")
@click.option(
    "--store-engine",
    type=click.Choice(["sqlite", "tiered"]),
    help="Embedded store when --store is empty: one SQLite file, or storage v2.  [default: sqlite]",
)
@click.option("--workers", type=int, help="Server processes sharing the port.  [default: 1]")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="TOML settings file.")
@click.option(
    "--log-level", type=click.Choice(["debug", "info", "warning", "error"]), help="Service log level."
)
@click.option("--access-log/--no-access-log", default=None, help="Log every request.")
@click.option(
    "--tls-cert", type=click.Path(dir_okay=False), help="PEM certificate chain: serve HTTPS (TLS 1.2+)."
)
@click.option("--tls-key", type=click.Path(dir_okay=False), help="PEM private key for --tls-cert.")
@click.option("--syslog-port", type=int, help="Also take syslog on this port, TCP and UDP.  [default: off]")
@click.option(
    "--syslog-service",
    "syslog_services",
    multiple=True,
    help="A service pattern syslog may write (* and ?; repeat). Needed with --syslog-port.",
)
@click.option(
    "--syslog-tls/--no-syslog-tls", default=None, help="TLS on the syslog TCP port (the --tls-cert), no UDP."
)
def serve(config_file: str | None, syslog_services: tuple[str, ...], **flags: Any) -> None:
    """Run the HTTP service (embedded store by default).

    Settings come from defaults, then the TOML file (--config or LOGSVC_CONFIG), then LOGSVC_* variables,
    then these flags.
    """
    flags["syslog_services"] = syslog_services or None  # none given: the file's or the environment's
    settings = load_settings(config_file, overrides=flags)
    run_server(settings)


@contextmanager
def _local(config_file: str | None, data_dir: str | None) -> Iterator[Root]:
    """The service's parts on the configured stores, closed afterwards."""
    root = Root(load_settings(config_file, overrides={"data_dir": data_dir}))
    try:
        yield root
    finally:
        asyncio.run(root.close())


def _json_out(value: Any) -> None:
    click.echo(json_line(value))


@main.group()
def keys() -> None:
    """Manage credentials in the credential store (also over HTTP under /admin/keys)."""


@keys.command("create")
@click.option(
    "--role",
    "roles",
    required=True,
    multiple=True,
    type=click.Choice([role.value for role in Role]),
    help="What it may do; repeat for several roles (--role ingest --role read).",
)
@click.option(
    "--service", "services", multiple=True, help="Only services matching this pattern (* and ?; repeat)."
)
@click.option("--expires", help="Lifetime such as 90d, 12h, 30m, or an RFC 3339 date-time.")
@click.option("--description", default="", help="A note for whoever reads `keys list`.")
@click.option("--json", "as_json", is_flag=True, help="Print the new credential as one JSON object.")
@_DATA_DIR
@_CONFIG
def create_key(
    roles: tuple[str, ...],
    services: tuple[str, ...],
    expires: str | None,
    description: str,
    as_json: bool,
    data_dir: str | None,
    config_file: str | None,
) -> None:
    """Create a credential; its secrets are shown this once."""
    with _local(config_file, data_dir) as root:
        doc = {
            "roles": list(roles),
            "services": list(services),
            "expires": expires,
            "description": description,
        }
        credential = root.credentials().create_requested(doc, actor=_OPERATOR.id, source="local")
    if as_json:
        _json_out(credential)
        return
    # Plain lines, never wrapped: a secret split over two lines cannot be copied.
    click.echo(f"access key id:     {credential.access_key_id}")
    click.echo(f"secret access key: {credential.secret_access_key}")
    click.echo(f"API key:           {credential.api_key}")
    scope = ", ".join(credential.services) or "*"
    held = ", ".join(credential.roles)
    click.echo(printable(f"roles: {held}  services: {scope}  expires: {credential.expires_at or 'never'}"))
    _err.print("Store the secrets now: they cannot be shown again.")


@keys.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@_DATA_DIR
@_CONFIG
def list_keys(as_json: bool, data_dir: str | None, config_file: str | None) -> None:
    """List credentials (never their secrets)."""
    with _local(config_file, data_dir) as root:
        credentials = root.credentials().credentials()
    if as_json:
        _json_out(credentials)
        return
    # Whole ids, never cut short however narrow the terminal (an id is what `keys revoke` takes); the other
    # cells wrap rather than lose their end.
    widest = max((len(c.access_key_id) for c in credentials), default=0)
    table = Table(
        Column("access key id", no_wrap=True, min_width=widest),
        *(Column(name, overflow="fold") for name in ("roles", "services", "created", "expires", "revoked")),
        Column("description", overflow="fold"),
    )
    for c in credentials:
        table.add_row(
            untrusted(c.access_key_id),
            untrusted(", ".join(c.roles)),
            untrusted(", ".join(c.services) or "*"),
            *(untrusted(at[:19].replace("T", " ")) for at in (c.created_at, c.expires_at or "never")),
            untrusted((c.revoked_at or "")[:19].replace("T", " ")),
            untrusted(c.description),
        )
    _out.print(table)


@keys.command("revoke")
@click.argument("access_key_id")
@_DATA_DIR
@_CONFIG
def revoke_key(access_key_id: str, data_dir: str | None, config_file: str | None) -> None:
    """Revoke a credential; a running server refuses it from its next request on."""
    with _local(config_file, data_dir) as root:
        root.admin().revoke_key(access_key_id, principal=_OPERATOR, source="local")
    _out.print("revoked", untrusted(access_key_id))


@keys.command("rotate-master")
@_DATA_DIR
@_CONFIG
def rotate_master(data_dir: str | None, config_file: str | None) -> None:
    """Make a new master key and rewrap the store's data key with it; the data is not touched.

    The old master key no longer opens the store afterwards. The server need not stop: it holds the data
    key already, and reads the master key only when it starts.
    """
    settings = load_settings(config_file, overrides={"data_dir": data_dir})
    check_master_rotation(settings)
    new = rotate_master_key(Path(settings.data_dir).resolve(), key_file=Path(settings.master_key_file))
    click.echo(f"new master key (fingerprint {new.fingerprint}) written to {settings.master_key_file}")


@main.group()
def store() -> None:
    """Maintain the local store."""


@store.command("stats")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@_DATA_DIR
@_CONFIG
def stats(as_json: bool, data_dir: str | None, config_file: str | None) -> None:
    """Entries, bytes, oldest and newest entry per service (reads the whole store)."""
    settings = load_settings(config_file, overrides={"data_dir": data_dir})
    files = store_files(settings.store_url)
    key = store_key(settings)
    result = files.stats(key)
    ciphers = database_ciphers(Path(settings.data_dir), key, store_databases(settings.store_url))
    if as_json:
        _json_out({**msgspec.to_builtins(result), "encryption": ciphers})
        return
    table = Table("service", "entries", "bytes", "oldest", "newest")
    for service in result.services:
        table.add_row(
            untrusted(service.service_name),
            f"{service.entries:,}",
            f"{service.bytes:,}",
            untrusted(service.oldest),
            untrusted(service.newest),
        )
    _out.print(table)
    _out.print(untrusted(f"{result.entries:,} entries; {result.file_bytes:,} bytes on disk in {result.path}"))
    _out.print(
        untrusted(
            "encryption: " + ", ".join(f"{name} {CIPHER_NAMES.get(c, c)}" for name, c in ciphers.items())
        ),
        soft_wrap=True,
    )
    if any(cipher not in (CIPHERS[0], "none") for cipher in ciphers.values()):
        _out.print(
            f"`logsvc store rekey` (the server stopped) moves every file to {CIPHER_NAMES[CIPHERS[0]]}",
            soft_wrap=True,
        )


@store.command("purge")
@click.option(
    "--service", "pattern", required=True, help="Service name, or pattern (* and ?), to delete entirely."
)
@_DATA_DIR
@_CONFIG
def purge_service(pattern: str, data_dir: str | None, config_file: str | None) -> None:
    """Delete every entry of a service (refused while deletion_protection is on)."""

    async def run(settings: Settings) -> int:
        root = Root(settings)
        try:
            return await purge(root.store(), pattern, protection=settings.deletion_protection)
        finally:
            await root.close()

    settings = load_settings(config_file, overrides={"data_dir": data_dir})
    deleted = asyncio.run(run(settings))
    click.echo(printable(f"deleted {deleted:,} entries of {pattern}"))


@store.command("destroy")
@_DATA_DIR
@_CONFIG
def destroy(data_dir: str | None, config_file: str | None) -> None:
    """Delete the log store's files (refused while deletion_protection is on, or while a server runs)."""
    settings = load_settings(config_file, overrides={"data_dir": data_dir})
    check_destroy(protection=settings.deletion_protection)
    files = store_files(settings.store_url)
    files.destroy(store_key(settings))
    click.echo(f"destroyed the store at {files.path}")


@store.command("migrate")
@click.option(
    "--into",
    type=click.Path(file_okay=False),
    help="The new tiered store's directory.  [default: logs-v2 in the data directory]",
)
@click.option(
    "--batch-size",
    type=click.IntRange(64, 1_048_576),
    default=16_384,
    show_default=True,
    help="Entries copied per durable step (one compacted generation).",
)
@_DATA_DIR
@_CONFIG
def migrate_store(into: str | None, batch_size: int, data_dir: str | None, config_file: str | None) -> None:
    """Copy the SQLite store into a new tiered store (storage v2), keeping arrival numbers.

    Stop the server first (refused while it runs). An interrupted run is resumed by running the command
    again. The SQLite file is left as it was; serve the copy once this reports it complete.
    """
    from logsvc.storage.migrate import migrate  # noqa: PLC0415 (the tiered store's code, loaded when used)

    settings = load_settings(config_file, overrides={"data_dir": data_dir})
    data = DataDir(settings.data_dir)
    # The SQLite store the settings name: the configured URL, else logs.db (also when the engine setting
    # already says tiered, as an operator may set it before migrating); any other URL is refused by name.
    source = sqlite_path(settings.store) if settings.store else data.logs
    target = Path(into).resolve() if into else data.tiered
    copied = migrate(
        source,
        target,
        store_key(settings),
        jobs_lock=data.jobs_lock,
        batch=batch_size,
        progress=lambda seq: _err.print(f"copied up to arrival {seq:,}", highlight=False),
    )
    switch = 'store_engine = "tiered"' if target == data.tiered else f'store = "{tiered_url(target)}"'
    click.echo(
        printable(
            f"migrated: {copied:,} entries copied into {target}; the copy is complete. Serve it by setting "
            f"{switch} (and stop using {source}, which is left as it was)"
        )
    )


@store.command("rekey")
@_DATA_DIR
@_CONFIG
def rekey(data_dir: str | None, config_file: str | None) -> None:
    """Re-encrypt the store with a new data key (stop the server first: a short maintenance window)."""
    settings = load_settings(config_file, overrides={"data_dir": data_dir})
    rekey_store(Path(settings.data_dir).resolve(), key_source(settings), store_databases(settings.store_url))
    click.echo(f"re-encrypted the store in {settings.data_dir} with a new data key")


@main.command()
@click.option(
    "--to", "into", required=True, type=click.Path(file_okay=False), help="Where to put the backup."
)
@_DATA_DIR
@_CONFIG
def backup(into: str, data_dir: str | None, config_file: str | None) -> None:
    """Back the store up (consistent, encrypted, checksummed), also while the server runs."""
    settings = load_settings(config_file, overrides={"data_dir": data_dir})
    target, manifest = create_backup(settings, Path(into))
    size = sum(f.bytes for f in manifest.files.values())
    click.echo(f"backed up {size:,} bytes into {target}")


@main.command()
@click.option(
    "--from",
    "source",
    required=True,
    type=click.Path(file_okay=False, exists=True),
    help="A backup (or the --to directory of `backup`: its newest), or with --to-time an archive directory.",
)
@click.option("--into", required=True, type=click.Path(file_okay=False), help="A new data directory.")
@click.option("--to-time", help="Restore from the archive the entries committed up to this RFC 3339 time.")
@click.option(
    "--store-engine",
    type=click.Choice(["sqlite", "tiered"]),
    help="The embedded store the restore is served with (--to-time: replayed into).  "
    "[default: the configured store_engine]",
)
@_CONFIG
def restore(
    source: str, into: str, to_time: str | None, store_engine: str | None, config_file: str | None
) -> None:
    """Restore a backup, or an archive up to a point in time, into a new data directory.

    Every checksum is verified before anything is written. Serve the result with --data-dir pointing there,
    the configuration given here (refused if it would serve another store: a store setting elsewhere, or
    another store_engine) and the master key that wrapped the backup's or archive's keyring.
    """
    # The configuration the restore will be served with: its store, with the restore as the data directory.
    settings = load_settings(config_file, overrides={"data_dir": into, "store_engine": store_engine})
    if to_time is None:
        manifest = restore_backup(Path(source), Path(into), settings.store_url)
        click.echo(printable(f"restored the backup of {manifest.created_at} into {into}"))
        return
    try:
        to_us = parse_timestamp(to_time)
    except ValueError as exc:
        raise ConfigError(f"--to-time {exc}") from None
    count = restore_to_time(
        Path(source),
        Path(into).resolve(),
        to_us,
        key_source(settings),
        served=settings.store_url,
        engine=settings.store_engine,
    )
    click.echo(f"restored {count:,} entries committed up to {format_timestamp(to_us)} into {into}")


@main.command()
@click.option("--limit", default="100", show_default=True, help="Newest events (1-1000).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@_DATA_DIR
@_CONFIG
def audit(limit: str, as_json: bool, data_dir: str | None, config_file: str | None) -> None:
    """Show the audit trail: credentials created and revoked, requests refused."""
    with _local(config_file, data_dir) as root:
        events = root.admin().audit(
            [("limit", limit)], principal=_OPERATOR
        )  # the rule of GET /admin/audit?limit=
    if as_json:
        _json_out(events)
        return
    table = Table("time", "actor", "action", "target", "source", "detail", "count")
    for e in events:
        table.add_row(
            *(untrusted(v) for v in (e.at[:23], e.actor, e.action, e.target, e.source, e.detail)),
            str(e.count),
        )
    _out.print(table)


_CLIENT_OPTIONS = [
    click.option(
        "--profile", help="Profile of the credentials file (or LOGSVC_PROFILE).  [default: default]"
    ),
    click.option("--endpoint", help="Base URL (with the API Gateway stage); default: the profile's."),
    click.option(
        "--aws",
        "use_aws",
        is_flag=True,
        help="Sign with AWS credentials (environment, ~/.aws, instance role) for API Gateway IAM auth.",
    ),
    click.option("--role-arn", help="With --aws: assume this client role first (logsvc-ingest, ...)."),
    click.option("--external-id", envvar="LOGSVC_EXTERNAL_ID", help="External ID the role's trust requires."),
    click.option("--region", help="SigV4 region; default: from the endpoint's host name, else us-east-1."),
    click.option("--bearer", is_flag=True, help="Send the profile's API key instead of signing with SigV4."),
    _CONFIG,
]


def _client_options(function: Any) -> Any:
    for option in reversed(_CLIENT_OPTIONS):
        function = option(function)
    return function


def _client(config_file: str | None, options: dict[str, Any]) -> Client:
    """A client from the credentials file's profile, or from AWS credentials with --aws."""
    endpoint = options["endpoint"]
    profile = None
    if not options["use_aws"] or not endpoint:
        settings = load_settings(config_file, overrides={"profile": options["profile"]})
        profile = load_profile(Path(settings.credentials_file), settings.profile)
        endpoint = endpoint or profile.endpoint
    region = options["region"] or region_of(endpoint) or "us-east-1"
    if options["use_aws"]:
        chain = AwsChain(role_arn=options["role_arn"], external_id=options["external_id"], region=region)
        return Client(endpoint, aws_credentials=chain, region=region, timeout=_TIMEOUT)
    if profile is None:
        raise Failed("give --endpoint with --aws, or a profile with an endpoint")
    if profile.keys is not None and not options["bearer"]:
        return Client(endpoint, aws_credentials=profile.keys, region=region, timeout=_TIMEOUT)
    if profile.api_key is None:
        raise Failed("the profile has no API key" if options["bearer"] else "the profile has no credentials")
    return Client(endpoint, api_key=profile.api_key, timeout=_TIMEOUT)


_TIMEOUT = 30.0
# Entries per request when sending what stdin or a file holds: well under the service's 10,000, so that a
# request stays small (a few MB) and a refused batch sends little again.
_BATCH_DEFAULT = 1000


def _metadata(pairs: tuple[str, ...]) -> dict[str, str] | None:
    """--metadata KEY=VALUE options as an object; VALUE is text, and may hold '='."""
    fields: dict[str, str] = {}
    for pair in pairs:
        key, equals, value = pair.partition("=")
        if not equals or not key.strip():
            raise Failed(f"--metadata takes KEY=VALUE, not {pair!r}")
        if key in fields:
            raise Failed(f"--metadata {key} is given twice")
        fields[key] = value
    return fields or None


def _stdin_is_piped() -> bool:
    return sys.stdin is not None and not sys.stdin.isatty()


@main.command()
@click.argument("message", required=False)
@click.option("--service", "service_name", help="service_name (of each entry read that has none).")
@click.option("--level", help="TRACE, DEBUG, INFO, WARN, ERROR or FATAL (likewise).")
@click.option("--type", "log_type", help="log_type, e.g. application, audit, security (likewise).")
@click.option(
    "--metadata",
    "metadata_pairs",
    multiple=True,
    metavar="KEY=VALUE",
    help="A metadata field, as text (repeat; an entry read keeps its own fields).",
)
@click.option(
    "--file",
    "source",
    type=click.File("rb"),
    help="Send the JSON or NDJSON entries of this file (- for stdin).",
)
@click.option(
    "--batch-size",
    type=click.IntRange(1, 10_000),
    default=_BATCH_DEFAULT,
    show_default=True,
    help="Entries per request when reading entries.",
)
@_client_options
def send(
    message: str | None,
    service_name: str | None,
    level: str | None,
    log_type: str | None,
    metadata_pairs: tuple[str, ...],
    source: Any,
    batch_size: int,
    config_file: str | None,
    **options: Any,
) -> None:
    """Send one entry, or entries read from stdin or a file, and print what the service stored.

    With MESSAGE "-", or with no MESSAGE while stdin is a pipe or a file, entries are read from stdin as
    NDJSON (one JSON object a line) and sent as they come: a batch when --batch-size are in, or when no
    line came for a second. --service, --level, --type and --metadata fill in what an entry read lacks.
    Each batch stored prints one line; a bad line stops the command, naming it, after the batches before.
    """
    metadata = _metadata(metadata_pairs)
    if source is not None and message is not None:
        raise Failed("give a MESSAGE or --file, not both")
    if message is not None and message != "-":
        with _client(config_file, options) as client:
            created = client.send(
                message, service=service_name, level=level, log_type=log_type, metadata=metadata
            )
        _json_out(created)
        return
    if source is not None:
        reader = _file_batches(source.read(), batch_size)
    elif message == "-" or _stdin_is_piped():
        reader = read_batches(sys.stdin.buffer, size=batch_size)
    else:
        raise Failed("give a MESSAGE, --file, or NDJSON entries on stdin (MESSAGE -)")
    fields = {"service_name": service_name, "level": level, "log_type": log_type}
    with _client(config_file, options) as client:
        _send_batches(client, reader, fields, metadata)


def _file_batches(data: bytes, size: int) -> Iterator[Batch]:
    """A file's entries: one JSON document (an object or an array of them), else NDJSON."""
    try:
        doc = msgspec.json.decode(data)
    except msgspec.DecodeError:
        return batches(data.split(b"\n"), size=size)
    entries = doc if isinstance(doc, list) else [doc]
    # The entries of one document are numbered by their position, from 1, where NDJSON's are by line.
    return (
        Batch(
            list(range(start + 1, start + 1 + len(entries[start : start + size]))),
            entries[start : start + size],
        )
        for start in range(0, len(entries), size)
    )


def _with_defaults(
    entry: dict[str, Any], fields: dict[str, str | None], metadata: dict[str, str] | None
) -> dict[str, Any]:
    for name, value in fields.items():
        # "severity" is the older clients' name for level: an entry that has it has a level.
        if value is not None and name not in entry and not (name == "level" and "severity" in entry):
            entry[name] = value
    own = entry.get("metadata")
    if metadata is not None and (own is None or isinstance(own, dict)):
        entry["metadata"] = metadata | (own or {})
    return entry


def _send_batches(
    client: Client, reader: Iterable[Batch], fields: dict[str, str | None], metadata: dict[str, str] | None
) -> None:
    stored = 0
    next_line = 1
    try:
        for batch in reader:
            entries = [_with_defaults(entry, fields, metadata) for entry in batch.entries]
            try:
                _json_out(client.send_batch(entries))
            except ClientError as exc:
                raise Unanswered(
                    f"{_refusal(exc, batch)}; {_stored_before(stored, batch.lines[0])}"
                ) from None
            stored += len(entries)
            next_line = batch.lines[-1] + 1
    except BadLine as exc:
        raise Failed(f"{exc}; {_stored_before(stored, next_line)}") from None
    if stored == 0:
        raise Failed("no entries to send: the input holds none")


def _stored_before(stored: int, line: int) -> str:
    return f"{stored} entries before line {line} were stored, none from it on"


def _refusal(exc: ClientError, batch: Batch) -> str:
    """The error of a batch, its entries named by line rather than by their index in the batch."""
    if not exc.errors:
        return str(exc)
    described = []
    for error in exc.errors:
        index = error.get("index")
        where = (
            f"line {batch.lines[index]}: " if isinstance(index, int) and 0 <= index < len(batch.lines) else ""
        )
        described.append(f"{where}{error.get('field')}: {error.get('message')}")
    return f"{exc.status} {exc.problem.get('title') or 'error'}: {'; '.join(described)}"


@main.command()
@click.option("--service", "service_name", help="Only this service.")
@click.option("--level", help="Only this level.")
@click.option("--min-level", help="This level and above.")
@click.option("--type", "log_type", help="Only this log_type.")
@click.option("--since", help="RFC 3339 time or epoch.")
@click.option("--until", help="RFC 3339 time or epoch (exclusive).")
@click.option("--hours", help="The last N hours.")
@click.option("--q", help="Words that must all occur in the message.")
@click.option("--limit", type=int, help="Entries per page (1-1000).  [default: 100]")
@click.option("--cursor", help="Go on after a page: its next_cursor.")
@click.option("--json", "as_json", is_flag=True, help="Print the service's JSON answer.")
@_client_options
def recent(as_json: bool, config_file: str | None, **options: Any) -> None:
    """The newest entries, newest first."""
    filters = {name: options.pop(name, None) for name in QUERY_PARAMETERS}
    with _client(config_file, options) as client:
        page = client.page(**{name: value for name, value in filters.items() if value is not None})
    if as_json:
        _json_out(page)
        return
    table = Table("timestamp", "service", "level", "message")
    for e in page.logs:
        table.add_row(*(untrusted(v) for v in (e.timestamp, e.service_name, e.level, e.message)))
    _out.print(table)
    if page.next_cursor:
        _out.print(untrusted(f"more: --cursor {page.next_cursor}"), style="dim", soft_wrap=True)


# Reconnections in a row before `logsvc tail` gives up: about two and a half minutes of backing off.
_TAIL_RETRIES = 10
_LEVEL_STYLES = {"TRACE": "dim", "DEBUG": "dim", "WARN": "yellow", "ERROR": "red", "FATAL": "bold red"}


@main.command()
@click.option("--service", "service_name", help="Only this service.")
@click.option("--level", help="Only this level.")
@click.option("--min-level", help="This level and above.")
@click.option("--type", "log_type", help="Only this log_type.")
@click.option("--q", help="Words that must all occur in the message.")
@click.option("--cursor", help="Go on after this cursor (an event id) instead of from now.")
@click.option("--json", "as_json", is_flag=True, help="One JSON entry per line (NDJSON).")
@_client_options
def tail(as_json: bool, cursor: str | None, config_file: str | None, **options: Any) -> None:
    """New entries as they arrive, until interrupted; a dropped connection is resumed without gaps."""
    values = {name: options.pop(name, None) for name in QUERY_PARAMETERS if name != "cursor"}
    filters = {name: value for name, value in (*values.items(), ("cursor", cursor)) if value is not None}
    with contextlib.suppress(KeyboardInterrupt), _client(config_file, options) as client:
        for event in client.tail(retries=_TAIL_RETRIES, **filters):
            if event.kind == "dropped":
                _err.print(
                    untrusted(f"{event.dropped} entries dropped: this reader was too slow"), style="yellow"
                )
            elif as_json:
                _json_out(event.entry)
            else:
                _out.print(_entry_line(event.entry or {}), soft_wrap=True)


def _entry_line(entry: dict[str, Any]) -> Text:
    level = str(entry.get("level", ""))
    return Text.assemble(
        (printable(str(entry.get("timestamp", ""))), "dim"),
        " ",
        (printable(str(entry.get("service_name", ""))), "cyan"),
        " ",
        (printable(f"{level:<5}"), _LEVEL_STYLES.get(level, "")),
        " ",
        untrusted(entry.get("message", "")),
    )


@main.group()
def aws() -> None:
    """The AWS serverless shape: Lambda deployment packages, DynamoDB tables."""


@aws.command("create-table")
@click.argument("url")
def aws_create_table(url: str) -> None:
    """Create a table for `serve --store URL` outside Terraform (DynamoDB Local, moto, a test account):
    keys, the by_time and by_id indexes, TTL and the shard count, e.g.
    dynamodb://logs?region=eu-west-1&shards=4 (credentials from the AWS chain)."""
    from logsvc.storage.dynamodb_table import create_table, parse_url  # noqa: PLC0415 (boto3 only when needed)

    create_table(url)
    _out.print(untrusted(f"created {parse_url(url).table}"), soft_wrap=True)


@aws.command("create-auth-table")
@click.argument("url")
def aws_create_auth_table(url: str) -> None:
    """Create a credential table for the auth_store setting, which server replicas share: keys made or
    revoked on one reach the others, e.g. dynamodb://logsvc-auth?region=eu-west-1 (not the log table)."""
    from logsvc.auth.dynamodb_credentials import create_auth_table  # noqa: PLC0415 (boto3 only when needed)
    from logsvc.storage.dynamodb_table import parse_url  # noqa: PLC0415

    create_auth_table(url)
    _out.print(
        untrusted(f"created {parse_url(url, setting='auth_store', shards=False).table}"), soft_wrap=True
    )


@aws.command("package")
@click.option(
    "--arch",
    type=click.Choice(["x86_64", "arm64", "all"]),
    default="all",
    show_default=True,
    help="Lambda architecture to build for.",
)
@click.option(
    "--output",
    type=click.Path(file_okay=False),
    default="dist/lambda",
    show_default=True,
    help="Directory for logsvc-lambda-<arch>.zip.",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
def aws_package(arch: str, output: str, as_json: bool) -> None:
    """Build the Lambda deployment zips for Python 3.12 (manylinux wheels, reproducible).

    Set SOURCE_DATE_EPOCH to stamp the entries with another time than 1980-01-01. Handlers:
    logsvc.aws.handlers.ingest and logsvc.aws.handlers.read.
    """
    arches = list(ARCHITECTURES) if arch == "all" else [arch]
    built = build_lambda_zips(arches, Path(output))
    if as_json:
        _json_out(built)
        return
    for z in built:
        _out.print(
            untrusted(f"{z.arch:<7} {z.path}  {z.size:,} bytes, {z.files} files  sha256 {z.sha256}"),
            soft_wrap=True,
        )
