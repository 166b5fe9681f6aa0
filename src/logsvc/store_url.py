"""Store URLs: which engine a URL names, and the URL of an embedded store's path. Read by the settings
(their checks and the default store), the adapter choice, backups and the composition root alike, so that a
URL means one engine everywhere."""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

__all__ = ["Engine", "engine_of", "sqlite_url", "tiered_url"]

Engine = Literal["sqlite", "tiered", "dynamodb"]

_ENGINES: dict[str, Engine] = {"sqlite": "sqlite", "tiered": "tiered", "dynamodb": "dynamodb"}


def engine_of(url: str) -> Engine | None:
    """The engine named by a store URL's scheme; None for any other scheme (refused by name where opened)."""
    return _ENGINES.get(urlsplit(url).scheme)


def sqlite_url(path: Path) -> str:
    """The store URL of a database file: the inverse of ``storage.open.sqlite_path``."""
    return f"sqlite:///{path}"


def tiered_url(path: Path) -> str:
    """The store URL of a tiered store's directory: the inverse of ``storage.open.tiered_path``."""
    return f"tiered:///{path}"
