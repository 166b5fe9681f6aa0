"""The regression guard of ``make bench`` (benchmarks/guard.py): which scenarios it reports, on figures made
up here; no benchmark is run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from benchmarks.guard import FLOOR, previous_results, regressions


def _results(**rates: float) -> dict[str, Any]:
    return {
        "scenarios": [
            {"key": key, "label": f"scenario {key}", "unit": "req/s", "median": {"rate": rate}}
            for key, rate in rates.items()
        ]
    }


def test_a_scenario_below_the_floor_of_its_previous_figure_is_reported() -> None:
    found = regressions(_results(ingest=10_000, reads=5_000), _results(ingest=7_000, reads=4_900))
    assert [r.key for r in found] == ["ingest"]
    (regression,) = found
    assert regression.previous == 10_000
    assert regression.current == 7_000
    assert round(regression.ratio, 2) == 0.7
    assert (
        "scenario ingest: 7,000 req/s is 0.70 of its previous figure (10,000 req/s)" in regression.warning()
    )


def test_the_floor_itself_and_faster_runs_pass() -> None:
    previous = _results(a=1_000, b=1_000)
    assert regressions(previous, _results(a=FLOOR * 1_000, b=2_000)) == []
    assert [r.key for r in regressions(previous, _results(a=FLOOR * 1_000 - 1, b=2_000))] == ["a"]


def test_scenarios_new_or_without_a_previous_rate_are_not_judged() -> None:
    previous = _results(old=1_000, zero=0)
    assert regressions(previous, _results(new=1, zero=1, old=1_000)) == []
    assert regressions({}, _results(anything=1)) == []


def test_a_different_floor() -> None:
    assert [r.key for r in regressions(_results(a=100), _results(a=85), floor=0.9)] == ["a"]


def test_previous_results_are_read_from_the_file_it_replaces(tmp_path: Path) -> None:
    path = tmp_path / "latest.json"
    assert previous_results(path) is None
    path.write_text("not json")
    assert previous_results(path) is None
    path.write_text(json.dumps(_results(a=1.0)))
    assert previous_results(path) == _results(a=1.0)


def test_the_committed_results_can_be_compared_with_themselves() -> None:
    committed = previous_results(
        Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "latest.json"
    )
    assert committed is not None
    assert committed["scenarios"]
    assert regressions(committed, committed) == []
