"""The choice of adapter by store URL. Each adapter loads only when chosen: the Lambda package holds no
SQLite, the server no boto3 use."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final
from urllib.parse import parse_qs, urlsplit

from logsvc.domain.retention import RetentionRule
from logsvc.errors import ConfigError
from logsvc.storage.port import LogStore, OnCommit, StoreFiles
from logsvc.store_url import engine_of, sqlite_path, tiered_path

# Entries per hot generation of a tiered store: small ones compact often (the tests' do), large ones keep
# more entries uncompressed.
_MIN_GENERATION_ROWS: Final = 64
_MAX_GENERATION_ROWS: Final = 1_048_576

__all__ = ["open_store", "store_files"]


def open_store(
    url: str,
    *,
    read_threads: int = 4,
    on_commit: OnCommit | None = None,
    key: bytes | None = None,
    retention: Sequence[RetentionRule] = (),
    shared_writer: str | None = None,
) -> LogStore:
    """The adapter for a store URL: ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db``,
    ``tiered:///relative/dir`` or ``tiered:////absolute/dir`` (storage v2, which runs its compactor process
    while open; ``?generation_rows=N``: entries per hot generation, 8,192 by default), or
    ``dynamodb://TABLE?region=..``. The DynamoDB store writes ``retention`` as each item's TTL. A SQLite
    store's rows go to the ``shared_writer`` socket when given (``serve --workers N``)."""
    if engine_of(url) == "dynamodb":
        from logsvc.storage.dynamodb import DynamoDBStore  # noqa: PLC0415

        return DynamoDBStore(url, retention=retention)
    if engine_of(url) == "tiered":
        from logsvc.storage.migrate import migrating  # noqa: PLC0415
        from logsvc.storage.tiered import TieredStore  # noqa: PLC0415

        if migrating(tiered_path(url)):
            raise ConfigError(
                f"{tiered_path(url)} is a migration not completed: run `logsvc store migrate` again to "
                "finish it before serving it"
            )
        return TieredStore(
            tiered_path(url),
            read_threads=read_threads,
            on_commit=on_commit,
            key=key,
            rows_per_generation=_generation_rows(url),
        )
    from logsvc.storage.sqlite import SQLiteStore  # noqa: PLC0415

    return SQLiteStore(
        sqlite_path(url), read_threads=read_threads, on_commit=on_commit, key=key, shared_writer=shared_writer
    )


def store_files(url: str) -> StoreFiles:
    """The files of an existing local store, for the operator's offline commands; ConfigError for a store
    that is not local files (DynamoDB has its own tools) or that does not exist."""
    if engine_of(url) == "tiered":
        directory = tiered_path(url)
        if not directory.is_dir():
            raise ConfigError(f"there is no store at {directory}")
        from logsvc.storage.tiered_files import TieredFiles  # noqa: PLC0415

        return TieredFiles(directory)
    path = sqlite_path(url)
    if not path.exists():
        raise ConfigError(f"there is no store at {path}")
    from logsvc.storage.sqlite_files import SQLiteFiles  # noqa: PLC0415

    return SQLiteFiles(path)


def _generation_rows(url: str) -> int | None:
    options = parse_qs(urlsplit(url).query)
    unknown = set(options) - {"generation_rows"}
    if unknown:
        raise ConfigError(
            f"store URL {url!r}: unknown option {sorted(unknown)[0]!r} (known: generation_rows)"
        )
    if "generation_rows" not in options:
        return None
    given = options["generation_rows"][-1]
    if not given.isdigit() or not _MIN_GENERATION_ROWS <= int(given) <= _MAX_GENERATION_ROWS:
        raise ConfigError(
            f"store URL {url!r}: generation_rows is a number of entries from {_MIN_GENERATION_ROWS} to "
            f"{_MAX_GENERATION_ROWS:,}"
        )
    return int(given)
