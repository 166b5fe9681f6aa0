"""A retention sweep over a tiered store's two files, in small steps, until killed or done (for
tests/crash/test_retention_sigkill.py): ``python -m tests.crash.retention_worker DIR KEY_HEX CUTOFF``."""

from __future__ import annotations

import sys
from pathlib import Path

from logsvc.storage.tiers import ColdFile, HotFile
from logsvc.storage.tiers_ops import delete_older


def main() -> None:
    directory, key, cutoff = Path(sys.argv[1]), bytes.fromhex(sys.argv[2]), int(sys.argv[3])
    hot, cold = HotFile(directory / "hot.db", key), ColdFile(directory / "cold.db", key)
    while delete_older(hot, cold, cutoff, exclude=("svc-0",), limit=10) >= 10:
        print("step", flush=True)  # the test kills the sweep some steps in, within the next one


if __name__ == "__main__":
    main()
