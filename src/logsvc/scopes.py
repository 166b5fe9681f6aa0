"""Service scopes: the one grammar of service-name patterns, the one matcher, and the filters derived from it.

A pattern is 1-128 characters of a service name's alphabet (letters, digits, ``. _ : / -``) plus ``*`` (any
run of characters, also none) and ``?`` (exactly one character), matched case-sensitively against the whole
name. Nothing else: brackets meant one thing to ``fnmatch`` and another to SQLite's GLOB (``[!a]`` is "not a"
to one and "a or !" to the other), so a key scoped with them read different services on different routes.
Every backend's filter is derived from a checked pattern here, so a route cannot disagree with ``covers``.
"""

from __future__ import annotations

import functools
import re

__all__ = ["PATTERN_GRAMMAR", "PATTERN_REGEX", "check_pattern", "covers", "sql_glob", "within"]

PATTERN_GRAMMAR = (
    "1-128 characters: letters, digits, '.', '_', ':', '/', '-', with '*' for any run of characters "
    "and '?' for exactly one"
)
PATTERN_REGEX = r"^[A-Za-z0-9._:/*?-]{1,128}\Z"  # \Z: "$" would let a final newline through
_PATTERN = re.compile(PATTERN_REGEX)


def check_pattern(pattern: object) -> str:
    """The pattern itself, or ValueError saying what the grammar allows."""
    if not isinstance(pattern, str) or not _PATTERN.fullmatch(pattern):
        raise ValueError(f"{pattern!r} is not a service pattern: {PATTERN_GRAMMAR}")
    return pattern


@functools.lru_cache(maxsize=4096)
def _compiled(pattern: str) -> re.Pattern[str]:
    check_pattern(pattern)
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern), re.S)


def covers(patterns: tuple[str, ...], service: str) -> bool:
    """Whether a scope covers a service; an empty scope covers every service."""
    return not patterns or any(_compiled(pattern).fullmatch(service) is not None for pattern in patterns)


@functools.lru_cache(maxsize=4096)
def _containing(pattern: str) -> re.Pattern[str]:
    """A pattern read over another pattern's text: its ``?`` stands for one character of the other (never
    its ``*``, which may be many), its ``*`` for any run of it, wildcards included."""
    check_pattern(pattern)
    return re.compile(
        "".join(".*" if c == "*" else "[^*]" if c == "?" else re.escape(c) for c in pattern), re.S
    )


def within(patterns: tuple[str, ...], scope: tuple[str, ...]) -> bool:
    """Whether every service that ``patterns`` cover is covered by ``scope`` (empty: every service). Sound,
    not complete: a pattern is within another when the other matches its text, wildcard for wildcard, so
    ``web-*`` is within ``web*``; the same set written another way (``a?*`` against ``a*?``) may be
    refused, never a larger set let through."""
    if not scope:
        return True
    if not patterns:
        return False
    return all(
        any(_containing(outer).fullmatch(check_pattern(inner)) for outer in scope) for inner in patterns
    )


def sql_glob(pattern: str) -> str:
    """The pattern as an SQLite GLOB operand matching exactly the names ``covers`` matches: GLOB is
    case-sensitive, reads ``*`` and ``?`` as the grammar does, and its only other metacharacter, ``[``,
    is outside the grammar."""
    return check_pattern(pattern)
