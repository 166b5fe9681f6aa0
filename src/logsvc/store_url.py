"""Store URLs: which engine a URL names, the URL of an embedded store's path and the path (and files) of its
URL. Read by the settings (their checks and the default store), the adapter choice, the keyring, backups and
the composition root alike, so that a URL means one engine, and one set of files, everywhere."""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from logsvc.datadir import DataDir
from logsvc.errors import ConfigError

__all__ = ["Engine", "engine_of", "sqlite_path", "sqlite_url", "store_databases", "tiered_path", "tiered_url"]

Engine = Literal["sqlite", "tiered", "dynamodb"]

_ENGINES: dict[str, Engine] = {"sqlite": "sqlite", "tiered": "tiered", "dynamodb": "dynamodb"}


def engine_of(url: str) -> Engine | None:
    """The engine named by a store URL's scheme; None for any other scheme (refused by name where opened)."""
    return _ENGINES.get(urlsplit(url).scheme)


def sqlite_url(path: Path) -> str:
    """The store URL of a database file: the inverse of ``sqlite_path``."""
    return f"sqlite:///{path}"


def tiered_url(path: Path) -> str:
    """The store URL of a tiered store's directory: the inverse of ``tiered_path``."""
    return f"tiered:///{path}"


def store_databases(url: str) -> tuple[Path, ...]:
    """The SQLite files of an embedded store (whether they exist or not), which the data key encrypts
    wherever the URL puts them; none for DynamoDB."""
    engine = engine_of(url)
    if engine == "tiered":
        directory = tiered_path(url)
        return (directory / DataDir.HOT, directory / DataDir.COLD)
    return (sqlite_path(url),) if engine == "sqlite" else ()


def sqlite_path(url: str) -> Path:
    """The file of a ``sqlite:///relative/path.db`` or ``sqlite:////absolute/path.db`` URL."""
    if engine_of(url) == "dynamodb":
        raise ConfigError(
            f"store URL {url!r}: this command works on the embedded sqlite store; for DynamoDB use its own "
            "tools (point-in-time recovery, on-demand backups, the console)"
        )
    if engine_of(url) == "tiered":
        raise ConfigError(f"store URL {url!r} is a tiered store, not an sqlite file")
    return _local_path(url, "sqlite", "file.db")


def tiered_path(url: str) -> Path:
    """The directory of a ``tiered:///relative/dir`` or ``tiered:////absolute/dir`` URL."""
    return _local_path(url, "tiered", "dir")


def _local_path(url: str, scheme: str, example: str) -> Path:
    """The path of an embedded store's URL, ``SCHEME:///relative`` or ``SCHEME:////absolute``."""
    parts = urlsplit(url)
    if parts.scheme != scheme:
        raise ConfigError(
            f"store URL {url!r}: unsupported scheme {parts.scheme!r} (supported: sqlite, tiered, dynamodb)"
        )
    if parts.netloc or not parts.path.startswith("/") or len(parts.path) < 2:
        raise ConfigError(
            f"store URL {url!r}: write {scheme}:///relative/{example} or {scheme}:////absolute/{example}"
        )
    return Path(parts.path[1:])
