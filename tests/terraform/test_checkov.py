"""checkov over the Terraform stack: no failed check, and every skip is reasoned and still needed.

checkov lives in its own venv (.venv-checkov, made by `make test` / `make checkov` at the version the Makefile
pins) because it pins many packages of its own. It runs offline (--skip-download); three scans take ~10 s.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from tests.terraform.stack import ROOT, STACK_DIR

# Not a LOGSVC_ variable: `logsvc` refuses the ones it does not know, and the CLI tests inherit it.
CHECKOV = Path(os.environ.get("CHECKOV_BIN", ROOT / ".venv-checkov" / "bin" / "checkov"))
SKIP_FILE = ROOT / "deploy" / "aws" / "checkov-skips.yaml"
WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"

# Suppressions for one resource only, written next to it as "checkov:skip=ID: reason" (see kms.tf). Adding one
# means adding it here, on purpose.
INLINE_SUPPRESSIONS = {
    ("CKV_AWS_109", "aws_iam_policy_document.kms"),
    ("CKV_AWS_111", "aws_iam_policy_document.kms"),
    ("CKV_AWS_356", "aws_iam_policy_document.kms"),
}

_SKIP_LINE = re.compile(r"^\s*-\s*(?P<id>CKV2?_AWS_\d+)\s*#\s*(?P<reason>.*\S)\s*$")


def skip_file_entries() -> dict[str, str]:
    """Check id -> reason, from the skip-check list of the skip file (a checkov config file)."""
    entries: dict[str, str] = {}
    in_list = False
    for line in SKIP_FILE.read_text(encoding="utf-8").splitlines():
        if re.match(r"^[\w-]+:", line):
            in_list = line.startswith("skip-check:")
            continue
        if in_list and line.strip().startswith("-"):
            match = _SKIP_LINE.match(line)
            assert match, f"skip without a reason (write '- ID # reason'): {line.strip()!r}"
            assert match["id"] not in entries, f"{match['id']} is listed twice"
            entries[match["id"]] = match["reason"]
    return entries


@cache
def checkov(*args: str) -> dict[str, Any]:
    if not CHECKOV.exists():
        pytest.fail(
            f"checkov is not installed at {CHECKOV}: `make checkov` (or `make test`) creates .venv-checkov"
        )
    command = [str(CHECKOV), "-d", str(STACK_DIR.relative_to(ROOT)), "--skip-download", "-o", "json", *args]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    # checkov exits 1 when a check fails; the JSON says which, so read it either way.
    assert done.returncode in (0, 1), f"checkov exited {done.returncode}:\n{done.stderr[-3000:]}"
    report = json.loads(done.stdout)
    assert isinstance(report, dict), "expected the report of the terraform framework alone"
    assert report["check_type"] == "terraform"
    return report


def scan(var_file: str | None) -> dict[str, Any]:
    args = ["--config-file", str(SKIP_FILE.relative_to(ROOT))]
    if var_file:
        args += ["--var-file", str((STACK_DIR / var_file).relative_to(ROOT))]
    return checkov(*args)


def test_skip_file_gives_a_reason_for_every_skip() -> None:
    entries = skip_file_entries()
    assert entries, "the skip file lists no check: the parser or the file is wrong"
    for check_id, reason in entries.items():
        assert len(reason) >= 30, f"{check_id}: say why, in a sentence ({reason!r})"
    text = SKIP_FILE.read_text(encoding="utf-8")
    assert re.search(r"^framework:\n  - terraform$", text, re.MULTILINE)


@pytest.mark.parametrize("var_file", [None, "environments/prod.tfvars"], ids=["defaults", "prod"])
def test_checkov_finds_no_failed_check(var_file: str | None) -> None:
    report = scan(var_file)
    summary = report["summary"]
    failed = [
        f"{c['check_id']} {c['resource']} ({c['file_path']}): {c['check_name']}"
        for c in report["results"]["failed_checks"]
    ]
    assert summary["failed"] == 0, "checkov failed checks:\n" + "\n".join(failed)
    assert summary["parsing_errors"] == 0
    # The scan really covered the stack (a parse problem would leave it nearly empty).
    assert summary["resource_count"] >= 50, summary
    assert summary["passed"] >= 150, summary


def test_inline_suppressions_are_the_known_ones_and_give_reasons() -> None:
    skipped = scan(None)["results"]["skipped_checks"]
    found = {(c["check_id"], c["resource"]) for c in skipped}
    assert found == INLINE_SUPPRESSIONS
    for check in skipped:
        reason = (check["check_result"].get("suppress_comment") or "").strip()
        assert len(reason) >= 30, f"{check['check_id']} on {check['resource']} has no reason"


def test_every_skip_is_still_needed() -> None:
    """A skip whose check now passes must leave the skip file, so that the check guards the stack again."""
    unskipped = checkov("--framework", "terraform")
    failing = {c["check_id"] for c in unskipped["results"]["failed_checks"]}
    stale = set(skip_file_entries()) - failing
    assert not stale, f"these checks pass now; remove them from {SKIP_FILE.name}: {sorted(stale)}"


def test_ci_runs_the_same_checkov_and_skip_file_as_make_test() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    version = re.search(r"^CHECKOV_VERSION := (\S+)$", makefile, re.MULTILINE)
    assert version, "Makefile pins no CHECKOV_VERSION"
    workflow = WORKFLOW.read_text(encoding="utf-8")
    assert f'"checkov=={version[1]}"' in workflow
    assert workflow.count("--config-file deploy/aws/checkov-skips.yaml") == 2
