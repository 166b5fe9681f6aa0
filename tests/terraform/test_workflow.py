"""The CI workflow runs what issue 5 asks for, with every action pinned to a commit."""

from __future__ import annotations

import re

from tests.terraform.stack import ROOT

WORKFLOW = (ROOT / ".github" / "workflows" / "ci.yml").read_text(encoding="utf-8")


def job(name: str) -> str:
    """The text of one job: from its key to the next job's key (jobs are indented two spaces)."""
    match = re.search(rf"^  {name}:\n(.*?)(?=^  [\w-]+:\n|\Z)", WORKFLOW, re.MULTILINE | re.DOTALL)
    assert match, f"no job {name!r}"
    return match.group(1)


def test_triggers() -> None:
    assert re.search(r"^on:\n  pull_request:\n  push:\n    branches: \[main\]$", WORKFLOW, re.MULTILINE)
    assert re.search(r"^permissions:\n  contents: read$", WORKFLOW, re.MULTILINE)


def test_every_action_is_pinned_to_a_commit() -> None:
    uses = re.findall(r"uses: (\S+)", WORKFLOW)
    assert uses
    for action in uses:
        assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", action), f"not pinned to a commit: {action}"


def test_test_job_runs_make_test_on_python_311() -> None:
    text = job("test")
    assert 'python-version: "3.11"' in text
    assert "run: make test" in text


def test_terraform_job_checks_format_and_validity() -> None:
    text = job("terraform")
    assert "working-directory: deploy/aws/terraform" in text
    assert "hashicorp/setup-terraform@" in text
    steps = re.findall(r"run: (terraform .+)", text)
    assert steps == [
        "terraform fmt -check -recursive -diff",
        "terraform init -backend=false -input=false",
        "terraform validate",
    ]


def test_security_job_scans_with_the_skip_file() -> None:
    text = job("security")
    assert "checkov --config-file deploy/aws/checkov-skips.yaml -d deploy/aws/terraform" in text
    assert "environments/prod.tfvars" in text
