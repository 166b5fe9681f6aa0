"""The Terraform stack under deploy/aws/terraform, parsed with python-hcl2, and the lookups the tests share.

python-hcl2 gives each file as a dict: top-level block kinds map to lists of blocks, nested blocks are lists
of dicts, and any expression that is not a plain literal stays a string wrapped in ``${...}``. Nothing here
evaluates Terraform; the tests compare those expressions with what they must be.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hcl2

ROOT = Path(__file__).resolve().parents[2]
STACK_DIR = ROOT / "deploy" / "aws" / "terraform"
TF_FILES = sorted(STACK_DIR.glob("*.tf"))
TFVARS_FILES = sorted((STACK_DIR / "environments").glob("*.tfvars"))

_OPTIONS = hcl2.SerializationOptions(strip_string_quotes=True, explicit_blocks=False, with_comments=False)


def load(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as fh:
        return hcl2.load(fh, serialization_options=_OPTIONS)


def expr(text: str) -> str:
    """How python-hcl2 renders the Terraform expression ``text`` (a reference, a call, a conditional...)."""
    return "${" + text + "}"


@dataclass
class Stack:
    """Every block of every .tf file, by kind, type and name (duplicate addresses are refused)."""

    resources: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    data: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    variables: dict[str, dict[str, Any]] = field(default_factory=dict)
    locals: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    terraform: list[dict[str, Any]] = field(default_factory=list)
    providers: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def parse(cls, files: list[Path]) -> Stack:
        stack = cls()
        for path in files:
            parsed = load(path)
            for block in parsed.get("resource", []):
                stack._add_typed(stack.resources, block, path)
            for block in parsed.get("data", []):
                stack._add_typed(stack.data, block, path)
            for kind, target in (("variable", stack.variables), ("output", stack.outputs)):
                for block in parsed.get(kind, []):
                    for name, body in block.items():
                        assert name not in target, f"{kind} {name} is declared twice ({path.name})"
                        target[name] = body
            for block in parsed.get("locals", []):
                for name, value in block.items():
                    assert name not in stack.locals, f"local.{name} is declared twice ({path.name})"
                    stack.locals[name] = value
            stack.terraform += parsed.get("terraform", [])
            for block in parsed.get("provider", []):
                stack.providers.update(block)
        return stack

    @staticmethod
    def _add_typed(target: dict[str, dict[str, dict[str, Any]]], block: dict[str, Any], path: Path) -> None:
        for type_, named in block.items():
            for name, body in named.items():
                assert name not in target.setdefault(type_, {}), (
                    f"{type_}.{name} is declared twice ({path.name})"
                )
                target[type_][name] = body

    def resource(self, type_: str, name: str) -> dict[str, Any]:
        return self.resources[type_][name]

    def policy(self, name: str) -> dict[str, Any]:
        return self.data["aws_iam_policy_document"][name]

    def statements(self, policy_name: str) -> list[dict[str, Any]]:
        return list(self.policy(policy_name)["statement"])


def strings(value: Any) -> Iterator[str]:
    """Every string inside a parsed value, however deeply nested."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from strings(key)
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


def interpolated(value: Any) -> Iterator[str]:
    """Every string of a parsed value that holds a Terraform expression (``${...}``)."""
    for text in strings(value):
        if "${" in text:
            yield text


def single(block_list: Any) -> dict[str, Any]:
    """The only block of a nested block list (``point_in_time_recovery { ... }`` -> its body)."""
    assert isinstance(block_list, list), block_list
    assert len(block_list) == 1, block_list
    body = block_list[0]
    assert isinstance(body, dict)
    return body
