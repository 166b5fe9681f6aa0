"""Who may do what: roles, service scopes, and the principal a request acts as."""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable

import msgspec

from logsvc.domain.roles import ROLES_RULE, Role, granted_roles, ordered_roles
from logsvc.domain.timestamps import parse_timestamp, timestamp_in_range
from logsvc.errors import AuthenticationFailed, FieldError, Forbidden, ValidationFailed
from logsvc.scopes import PATTERN_GRAMMAR, check_pattern, covers

__all__ = [
    "ANONYMOUS",
    "KeyRequest",
    "Permission",
    "Principal",
    "Role",
    "claim_values",
    "parse_expiry",
    "parse_key_request",
    "token_principal",
]


class Permission(enum.StrEnum):
    """What a route needs. PUBLIC routes answer without credentials (probes, the API description)."""

    PUBLIC = "public"
    INGEST = "ingest"
    READ = "read"
    ADMIN = "admin"


_GRANTS: dict[Role, frozenset[Permission]] = {
    Role.INGEST: frozenset({Permission.INGEST}),
    Role.READ: frozenset({Permission.READ}),
    Role.ADMIN: frozenset({Permission.INGEST, Permission.READ, Permission.ADMIN}),
}


class Principal(msgspec.Struct, frozen=True):
    """The identity a request acts as. ``services`` holds service patterns (``logsvc.scopes``); empty means
    every service. A principal with a pattern outside the grammar cannot be made (ValueError), so a scope
    that some route might read differently never reaches one. ``expires_at_us``: when its key or token
    stops being valid (None: it does not expire), for what outlives the request (a tail stream)."""

    id: str
    roles: frozenset[Role]
    services: tuple[str, ...] = ()
    method: str = "none"
    expires_at_us: int | None = None

    def __post_init__(self) -> None:
        for pattern in self.services:
            check_pattern(pattern)

    def may(self, permission: Permission) -> bool:
        if permission is Permission.PUBLIC:
            return True
        # A loop, not any() over a generator: a third of the time (0.35 against 1.3 µs), every request.
        for role in self.roles:  # noqa: SIM110
            if permission in _GRANTS[role]:
                return True
        return False

    def require(self, permission: Permission) -> None:
        if not self.may(permission):
            roles = ", ".join(ordered_roles(self.roles)) or "none"
            raise Forbidden(
                f"this credential (roles: {roles}) may not {permission.value}; it needs that role"
            )

    def covers(self, service_name: str) -> bool:
        return covers(self.services, service_name)


# A group or role claim names our roles as "ingest" or as "logsvc-ingest" (Cognito group names are global).
_CLAIM_SEPARATORS = re.compile(r"[\s,]+")


def claim_values(value: object, name: str) -> tuple[str, ...] | None:
    """A list claim (roles, services) of a verified token, in every form it comes in: a list of strings,
    one comma- or space-separated string (identity providers differ), or that string in brackets (API
    Gateway's JWT authorizer renders an array as ``[a b]``); None when the token does not have it."""
    if value is None:
        return None
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return tuple(item for item in value if item)
    if not isinstance(value, str):
        raise AuthenticationFailed(
            f"the bearer token's '{name}' claim must be a string or a list of strings", code="invalid_token"
        )
    text = value.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    return tuple(item for item in _CLAIM_SEPARATORS.split(text) if item)


_ROLE_NAMES = {role.value: role for role in Role} | {f"logsvc-{role.value}": role for role in Role}


def token_principal(
    subject: str,
    role_names: Iterable[str] | None,
    services: tuple[str, ...] | None,
    *,
    service_claim: str,
    default_roles: Iterable[Role] = (),
    expires_at_us: int | None = None,
) -> Principal:
    """The principal of a verified token, on the server (OIDC bearer) and behind API Gateway alike. Names
    that are not roles of ours are ignored. ``role_names`` is the role claim: absent (None), as Cognito
    leaves ``cognito:groups`` out for a user in no group, it gives ``default_roles`` (the setting
    ``jwt_default_roles``, empty unless an operator opts in); present, only the roles it names, so that
    a claim naming other groups never falls back to the default. ``services`` is the service claim:
    absent (None) means every service; present but naming none, or naming a pattern outside the grammar,
    refuses the token: an identity provider that meant to scope a token must never grant every service by
    accident."""
    if services is not None and not services:
        raise Forbidden(f"the token's '{service_claim}' claim is present but names no service")
    if role_names is None:
        roles = frozenset(default_roles)
    else:
        roles = frozenset(_ROLE_NAMES[name] for name in role_names if name in _ROLE_NAMES)
    try:
        return Principal(
            id=f"oidc:{subject}",
            roles=roles,
            services=services or (),
            method="jwt",
            expires_at_us=expires_at_us,
        )
    except ValueError as exc:
        raise Forbidden(f"the token's '{service_claim}' claim: {exc}") from None


ANONYMOUS = Principal(id="anonymous", roles=frozenset({Role.INGEST, Role.READ}), method="anonymous")


_DURATION = re.compile(r"([0-9]+)([dhm])")
_UNIT_US = {"d": 86_400_000_000, "h": 3_600_000_000, "m": 60_000_000}


class KeyRequest(msgspec.Struct, frozen=True):
    """A validated request for a new credential."""

    roles: tuple[Role, ...]
    services: tuple[str, ...] = ()
    expires_at_us: int | None = None
    description: str = ""


def parse_expiry(value: str, now_us: int) -> int:
    """``90d``, ``12h``, ``30m`` from now, or an RFC 3339 date-time; it must lie in the future."""
    match = _DURATION.fullmatch(value.strip())
    try:
        if match:
            at = timestamp_in_range(now_us + int(match.group(1)) * _UNIT_US[match.group(2)])
        else:
            at = parse_timestamp(value)
    except ValueError:
        raise ValueError(
            "must be a duration such as 90d, 12h or 30m, or an RFC 3339 date-time, "
            "ending before the year 10000"
        ) from None
    if at <= now_us:
        raise ValueError("must lie in the future")
    return at


def _pattern_error(pattern: object) -> str:
    try:
        check_pattern(pattern)
    except ValueError as exc:
        return str(exc)
    return ""


_KEY_FIELDS = frozenset({"role", "roles", "services", "expires", "description"})


def _role_named(name: object) -> Role | None:
    try:
        return Role(name) if isinstance(name, str) else None
    except ValueError:
        return None


def _requested_roles(doc: dict[str, object], errors: list[FieldError]) -> tuple[Role, ...]:
    """``roles`` (a list of role names, or one name) or, as older callers send it, ``role`` (one name);
    empty, with the errors added, when they name no valid set of roles."""
    failed = len(errors)
    role = None
    if doc.get("role") is not None:
        role = _role_named(doc["role"])
        if role is None:
            errors.append(FieldError("role", "must be one of ingest, read, admin"))
    names = doc.get("roles")
    if isinstance(names, str):
        names = [names]
    roles: list[Role] = []
    if names is not None and not isinstance(names, list):
        errors.append(FieldError("roles", f"must be a list of role names: {ROLES_RULE}"))
    for index, name in enumerate(names if isinstance(names, list) else []):
        found = _role_named(name)
        if found is None:
            errors.append(FieldError(f"roles[{index}]", "must be one of ingest, read, admin"))
        else:
            roles.append(found)
    if len(errors) > failed:
        return ()
    try:
        return granted_roles(role, roles)
    except ValueError as exc:
        errors.append(FieldError("roles", str(exc)))
        return ()


def parse_key_request(doc: object, now_us: int) -> KeyRequest:
    """A key request from JSON or CLI options, or ValidationFailed naming every bad field."""
    if not isinstance(doc, dict):
        raise ValidationFailed([FieldError("body", "must be a JSON object")])
    errors: list[FieldError] = []
    for key in doc.keys() - _KEY_FIELDS:
        allowed = ", ".join(sorted(_KEY_FIELDS))
        errors.append(FieldError(str(key), f"unknown field (allowed: {allowed})"))
    roles = _requested_roles(doc, errors)
    services = doc.get("services")
    if services is None:
        services = []
    elif isinstance(services, str):
        services = [services]
    if not isinstance(services, list):
        errors.append(FieldError("services", f"must be a list of service patterns: {PATTERN_GRAMMAR}"))
        services = []
    bad = [(index, _pattern_error(pattern)) for index, pattern in enumerate(services)]
    if any(problem for _, problem in bad):
        errors += [FieldError(f"services[{index}]", problem) for index, problem in bad if problem]
        services = []
    expires_at = None
    if doc.get("expires") is not None:
        try:
            expires_at = parse_expiry(str(doc["expires"]), now_us)
        except ValueError as exc:
            errors.append(FieldError("expires", str(exc)))
    description = doc.get("description")
    if description is None:
        description = ""
    elif not isinstance(description, str) or len(description) > 256:
        errors.append(FieldError("description", "must be a string of at most 256 characters"))
        description = ""
    if errors or not roles:
        raise ValidationFailed(errors)
    return KeyRequest(roles, tuple(services), expires_at, description)
