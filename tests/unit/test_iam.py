"""The one IAM ARN grammar, shared by the settings check of aws_principals and the Lambda identity mapping."""

from __future__ import annotations

import pytest

from logsvc.domain.iam import iam_role_or_user


@pytest.mark.parametrize(
    ("arn", "key"),
    [
        ("arn:aws:iam::123456789012:role/app", ("aws", "123456789012", "role", "app")),
        ("arn:aws-us-gov:iam::123456789012:user/ops/a.b@c", ("aws-us-gov", "123456789012", "user", "a.b@c")),
        (
            "arn:aws:iam::123456789012:role/aws-reserved/sso.amazonaws.com/R_1",
            ("aws", "123456789012", "role", "R_1"),
        ),
        ("arn:aws:iam::1234:role/app", None),
        ("arn:aws:iam::123456789012:role/" + "n" * 65, None),
        ("arn:aws:sts::123456789012:assumed-role/app/s", None),
        ("arn:aws:iam::123456789012:root", None),
        ("arn:aws:iam::123456789012:role/app\n", None),
    ],
)
def test_iam_role_or_user(arn: str, key: tuple[str, ...] | None) -> None:
    assert iam_role_or_user(arn) == key
