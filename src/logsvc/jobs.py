"""Background jobs (retention sweeps, continuous archiving) run in one process per data directory.

With ``--workers N`` every worker builds the same app; left alone, each would sweep and archive the same
files (segments written alternately by different workers were seen). The process holding an exclusive lock
on ``jobs.lock`` in the data directory runs them; the others try again every interval, so the jobs move to
another worker when the holder exits. The kernel drops the lock with the process, even on SIGKILL.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

__all__ = ["JobsLease"]


class JobsLease:
    def __init__(self, path: Path) -> None:
        """``path``: the lock file (``DataDir.jobs_lock``, or the syslog listener's ``syslog_lock``)."""
        self.path = path
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def try_take(self) -> bool:
        """Take the lease unless another process holds it; True while this one holds it."""
        if self._fd is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the lock
            self._fd = None
