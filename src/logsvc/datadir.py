"""The files of a data directory, named once. A backup directory, and the directory a restore makes, are
laid out the same way (a restore copies a backup's files into a new data directory by name)."""

from __future__ import annotations

from pathlib import Path
from typing import Final

__all__ = ["DataDir"]


class DataDir:
    """A data directory and the path of each file the service keeps in it."""

    LOGS: Final = "logs.db"
    # The tiered store (storage v2): a directory of its own holding its two files.
    TIERED: Final = "logs-v2"
    HOT: Final = "hot.db"
    COLD: Final = "cold.db"
    AUTH: Final = "auth.db"
    KEYRING: Final = "keyring.json"
    # The keyring of a re-encryption under way: it exists only until every database has been rekeyed.
    KEYRING_NEXT: Final = "keyring.json.next"
    RETENTION: Final = "retention.json"
    JOBS_LOCK: Final = "jobs.lock"
    SYSLOG_LOCK: Final = "syslog.lock"
    METRICS: Final = "metrics"
    # The databases encrypted with the data key the keyring wraps.
    DATABASES: Final = (LOGS, f"{TIERED}/{HOT}", f"{TIERED}/{COLD}", AUTH)

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).resolve()

    @property
    def logs(self) -> Path:
        return self.root / self.LOGS

    @property
    def tiered(self) -> Path:
        return self.root / self.TIERED

    @property
    def auth(self) -> Path:
        return self.root / self.AUTH

    @property
    def keyring(self) -> Path:
        return self.root / self.KEYRING

    @property
    def keyring_next(self) -> Path:
        return self.root / self.KEYRING_NEXT

    @property
    def retention(self) -> Path:
        """The retention rules last applied, so that a change is noticed and logged."""
        return self.root / self.RETENTION

    @property
    def jobs_lock(self) -> Path:
        return self.root / self.JOBS_LOCK

    @property
    def syslog_lock(self) -> Path:
        """Held by the one process that runs the syslog listener."""
        return self.root / self.SYSLOG_LOCK

    @property
    def metrics(self) -> Path:
        """Prometheus's multiprocess files, one per worker."""
        return self.root / self.METRICS
