"""IAM role and user ARNs: the one grammar that settings check ``aws_principals`` against and that the
Lambda handlers read a caller's identity with."""

from __future__ import annotations

import re
from typing import cast

__all__ = ["IamKey", "iam_role_or_user"]

# (partition, account, "role" | "user", name)
IamKey = tuple[str, str, str, str]

# Any path (IAM allows most of ASCII in one); the name in IAM's own alphabet, 1-64 characters. \Z, not $:
# "$" would let a final newline through.
_IAM_ARN = re.compile(r"^arn:(aws[a-z-]*):iam::(\d{12}):(role|user)/(?:[^/]+/)*([\w+=,.@-]{1,64})\Z")


def iam_role_or_user(arn: str) -> IamKey | None:
    """What identifies the role or user an ``iam`` ARN names (its path aside); None for any other ARN."""
    match = _IAM_ARN.match(arn)
    return cast(IamKey, match.groups()) if match else None
