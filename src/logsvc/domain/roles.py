"""The roles a credential can hold. Settings name them (bootstrap keys, IAM grants) and the policy grants by
them, so they live below both. A credential may hold several; what it may do is the union of its roles'."""

from __future__ import annotations

import enum
from collections.abc import Iterable

__all__ = ["ROLES_RULE", "Role", "granted_roles", "ordered_roles"]

ROLES_RULE = "must be one or more of ingest, read, admin"


class Role(enum.StrEnum):
    INGEST = "ingest"
    READ = "read"
    ADMIN = "admin"


_ORDER = {role: position for position, role in enumerate(Role)}


def ordered_roles(roles: Iterable[Role]) -> tuple[Role, ...]:
    """Roles without repeats, in the order of ``Role`` (ingest, read, admin): how every answer, list and
    store shows a credential's roles, so that the same credential always reads the same."""
    return tuple(sorted(set(roles), key=_ORDER.__getitem__))


def granted_roles(role: Role | None, roles: Iterable[Role]) -> tuple[Role, ...]:
    """The roles of a grant that names one ``role`` (the form older callers send) or several ``roles``:
    ValueError unless exactly one of the two forms gives at least one role."""
    listed = ordered_roles(roles)
    if role is not None and listed:
        raise ValueError("give role or roles, not both")
    if role is None and not listed:
        raise ValueError(f"role or roles is required: {ROLES_RULE}")
    return (role,) if role is not None else listed
