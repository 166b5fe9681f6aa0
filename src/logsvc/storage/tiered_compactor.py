"""The tiered store's compactor (decision 33): a process of its own beside the server, moving each sealed
hot generation into cold pages (``tiers.finish`` once, then ``tiers.compact`` as generations seal; a
retention sweep on the writer may compact one first, and ``compact`` then leaves it alone).

Why a process: compaction is CPU work in Python (sorting, encoding, compressing a generation's rows), and
in the server's process it would take the GIL from the request handlers. Its order of steps makes it safe
to kill at any point (``tiers``), so it is simply started and stopped with the store:

- ``Compactor`` (in the server's process) starts it, passes it the store key on its standard input (never
  on its command line or in its environment), and restarts it when it dies (after 1 s, up to 30 s while
  it keeps dying at once); closing the pipe stops it.
- The process runs only while that pipe is open: when the server exits or is killed, the pipe's end
  reads EOF and the compactor exits at once, wherever it is (a compaction left half done is completed by
  the next one's ``finish``). So it never outlives its server.
- One compacts per data directory: it holds ``compactor.lock`` (a ``jobs.JobsLease``); another (a second
  uvicorn worker's) waits for the lock. Two at once would still be safe (a compaction of a generation the
  cold file holds writes nothing), only wasteful.

``python -m logsvc.storage.tiered_compactor DIR``: the key as hex on the first line of standard input
(an empty line: no encryption).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Final

from logsvc.jobs import JobsLease
from logsvc.storage.tiers import ColdFile, HotFile, compact, finish
from logsvc.storage.writer import turns_lock

__all__ = ["LOCK_FILE", "Compactor", "main"]

log = logging.getLogger(__name__)

LOCK_FILE: Final = "compactor.lock"
_POLL_SECONDS: Final = 0.2  # how often the hot file is asked for sealed generations
_RESTART_SECONDS: Final = 1.0
_MAX_RESTART_SECONDS: Final = 30.0
_STOP_SECONDS: Final = 10.0


class Compactor:
    """Runs the compactor process of the store in ``path`` until ``stop``; restarts it when it dies."""

    def __init__(self, path: Path, key: bytes | None) -> None:
        self._path = path
        self._key = key
        self._stopping = threading.Event()
        self._process: subprocess.Popen[bytes] | None = None
        self._guard = threading.Lock()
        self._thread = threading.Thread(target=self._supervise, name="logsvc-compactor", daemon=True)
        self._thread.start()

    @property
    def pid(self) -> int | None:
        process = self._process
        return process.pid if process is not None and process.poll() is None else None

    def _supervise(self) -> None:
        delay = _RESTART_SECONDS
        while not self._stopping.is_set():
            with self._guard:
                if self._stopping.is_set():
                    return
                started = time.monotonic()
                self._process = self._start()
            code = self._process.wait()
            if self._stopping.is_set():
                return
            # One that keeps failing at once (a full disk) is restarted less and less often.
            if time.monotonic() - started > _MAX_RESTART_SECONDS:
                delay = _RESTART_SECONDS
            log.warning("the compactor of %s exited (%s); restarting it in %g s", self._path, code, delay)
            self._stopping.wait(delay)
            delay = min(delay * 2, _MAX_RESTART_SECONDS)

    def _start(self) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            [sys.executable, "-m", "logsvc.storage.tiered_compactor", str(self._path)],
            stdin=subprocess.PIPE,
            close_fds=True,
        )
        assert process.stdin is not None
        process.stdin.write((self._key.hex() if self._key else "").encode() + b"\n")
        process.stdin.flush()
        return process

    def stop(self) -> None:
        """Stop the process (closing its pipe; killed if it does not exit in time) and the supervisor."""
        with self._guard:
            self._stopping.set()
            process = self._process
        if process is not None:
            if process.stdin is not None:
                process.stdin.close()
            try:
                process.wait(_STOP_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._thread.join()


def main(argv: list[str]) -> int:
    path = Path(argv[0])
    line = sys.stdin.buffer.readline()
    if not line.endswith(b"\n"):
        return 0  # the server went away before it said the key
    key = bytes.fromhex(line.decode().strip()) or None
    threading.Thread(target=_exit_with_parent, name="parent-watch", daemon=True).start()
    lease = JobsLease(path / LOCK_FILE)
    while not lease.try_take():
        time.sleep(_POLL_SECONDS * 5)
    hot = HotFile(path / "hot.db", key, turns=turns_lock(path / "hot.db"))
    cold = ColdFile(path / "cold.db", key)
    finish(hot, cold)
    seen: tuple[tuple[int, int], tuple[int, int]] | None = None
    while True:
        for generation in hot.sealed():
            compact(hot, cold, generation)
        # Neither file changed since the last look: the writers are idle, so the hot file's free pages
        # are given back and the WALs emptied, for the store to take no more room than its data
        # (decision 38).
        now = (hot.version(), cold.version())
        if now == seen:
            if hot.release():
                now = (hot.version(), cold.version())
            for file in (hot, cold):
                if _wal_bytes(file.path):
                    file.checkpoint()
        seen = now
        time.sleep(_POLL_SECONDS)


def _wal_bytes(database: Path) -> int:
    try:
        return database.with_name(f"{database.name}-wal").stat().st_size
    except FileNotFoundError:
        return 0


def _exit_with_parent() -> None:
    """End the process once its standard input reads EOF: the server closed it, or died."""
    while sys.stdin.buffer.read(4096):
        pass
    os._exit(0)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s compactor %(levelname)s %(message)s")
    sys.exit(main(sys.argv[1:]))
