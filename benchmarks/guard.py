"""The regression guard of ``make bench``: each scenario's median rate against its figure in the previous
results (``benchmarks/results/latest.json``, read before it is replaced). A scenario below ``FLOOR`` of its
previous figure is reported with a clear warning; it is not an error, as a shared machine's noise can
cause it too (the ceilings of both runs are printed beside it to tell the two apart)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["FLOOR", "Regression", "previous_results", "regressions"]

FLOOR = 0.8


@dataclass(frozen=True)
class Regression:
    key: str
    label: str
    unit: str
    previous: float
    current: float

    @property
    def ratio(self) -> float:
        return self.current / self.previous

    def warning(self) -> str:
        return (
            f"{self.label}: {self.current:,.0f} {self.unit} is {self.ratio:.2f} of its previous figure "
            f"({self.previous:,.0f} {self.unit}), below {FLOOR:g}"
        )


def previous_results(path: Path) -> dict[str, Any] | None:
    """The results a run will replace, or None when there are none (or they cannot be read)."""
    try:
        loaded = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return loaded if isinstance(loaded, dict) else None


def regressions(previous: dict[str, Any], current: dict[str, Any], floor: float = FLOOR) -> list[Regression]:
    """The scenarios of ``current`` whose median rate is below ``floor`` of the same scenario (same key)
    in ``previous``; scenarios new in ``current``, or without a rate before, are not judged."""
    before = {
        scenario["key"]: scenario["median"]["rate"]
        for scenario in previous.get("scenarios", [])
        if scenario.get("median", {}).get("rate")
    }
    found = []
    for scenario in current.get("scenarios", []):
        was = before.get(scenario["key"])
        now = scenario["median"]["rate"]
        if was is not None and now < floor * was:
            found.append(Regression(scenario["key"], scenario["label"], scenario["unit"], was, now))
    return found
