"""The roles a credential can hold. Settings name them (bootstrap keys) and the policy grants by them, so they
live below both."""

from __future__ import annotations

import enum

__all__ = ["Role"]


class Role(enum.StrEnum):
    INGEST = "ingest"
    READ = "read"
    ADMIN = "admin"
