"""The roles a credential can hold. Settings name them (bootstrap keys, IAM grants) and the policy grants by
them, so they live below both. A credential may hold several; what it may do is the union of its roles'."""

from __future__ import annotations

import enum
from collections.abc import Iterable

__all__ = ["ROLES_RULE", "Role", "granted_roles", "listed_roles", "ordered_roles"]

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


def listed_roles(names: Iterable[str]) -> tuple[str, ...]:
    """A stored credential's roles as a key listing shows them: ours in the order of ``Role``, then any name
    this version does not know (written by a newer version during a rolling upgrade, or before a
    downgrade), as stored. The credential grants nothing by such a name, but an admin must still see it
    and be able to revoke it."""
    known = {role.value for role in Role}
    names = list(dict.fromkeys(names))
    return tuple(ordered_roles(Role(name) for name in names if name in known)) + tuple(
        name for name in names if name not in known
    )


def granted_roles(role: Role | None, roles: Iterable[Role]) -> tuple[Role, ...]:
    """The roles of a grant that names one ``role`` (the form older callers send) or several ``roles``:
    ValueError unless exactly one of the two forms gives at least one role."""
    listed = ordered_roles(roles)
    if role is not None and listed:
        raise ValueError("give role or roles, not both")
    if role is None and not listed:
        raise ValueError(f"role or roles is required: {ROLES_RULE}")
    return (role,) if role is not None else listed
