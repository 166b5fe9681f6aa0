"""Query parameters as every route reads them: each that the route takes at most once, and no other, so that
a misspelt parameter is an error naming it instead of a read that silently ignores it."""

from __future__ import annotations

from collections.abc import Collection, Iterable

from logsvc.errors import FieldError, ValidationFailed

__all__ = ["no_parameters", "parameter_values"]


def parameter_values(
    params: Iterable[tuple[str, str]], allowed: Collection[str], errors: list[FieldError]
) -> dict[str, str]:
    """Each allowed parameter's value; an unknown or repeated one is added to ``errors``."""
    values: dict[str, str] = {}
    for name, value in params:
        if name not in allowed:
            shown = f"allowed: {', '.join(sorted(allowed))}" if allowed else "this route takes none"
            errors.append(FieldError(name, f"unknown parameter ({shown})"))
        elif name in values:
            errors.append(FieldError(name, "given more than once"))
        else:
            values[name] = value
    return values


def no_parameters(params: Iterable[tuple[str, str]]) -> None:
    """ValidationFailed naming each parameter, for a route that takes none."""
    errors: list[FieldError] = []
    parameter_values(params, (), errors)
    if errors:
        raise ValidationFailed(errors)
