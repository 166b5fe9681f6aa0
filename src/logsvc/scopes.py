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


class _Glob:
    """A pattern as its runs between stars, each run a regular expression of fixed length (a ``?`` is one
    character). Matched run by run: the first at the start, the last at the end, each one between at its
    leftmost place after the one before, which is where a glob's match may always put it. This takes time
    linear in the name per run; one regular expression with ``.*`` for each star backtracks, and a
    pattern of a few stars took a worker's event loop for a minute on a 124-character name."""

    __slots__ = ("_first", "_last", "_last_length", "_middle")

    def __init__(self, pattern: str, one: str) -> None:
        runs = [
            re.compile("".join(one if c == "?" else re.escape(c) for c in run), re.S)
            for run in check_pattern(pattern).split("*")
        ]
        self._first = runs[0]
        self._middle = runs[1:-1]
        self._last = runs[-1] if len(runs) > 1 else None
        self._last_length = len(pattern.rsplit("*", 1)[-1]) if len(runs) > 1 else 0

    def matches(self, text: str) -> bool:
        if self._last is None:
            return self._first.fullmatch(text) is not None
        start = self._first.match(text)
        end = len(text) - self._last_length
        if start is None or end < start.end() or self._last.fullmatch(text, end) is None:
            return False
        position = start.end()
        for run in self._middle:
            found = run.search(text, position, end)
            if found is None:
                return False
            position = found.end()
        return True


@functools.lru_cache(maxsize=4096)
def _compiled(pattern: str) -> _Glob:
    return _Glob(pattern, ".")


def covers(patterns: tuple[str, ...], service: str) -> bool:
    """Whether a scope covers a service; an empty scope covers every service."""
    return not patterns or any(_compiled(pattern).matches(service) for pattern in patterns)


@functools.lru_cache(maxsize=4096)
def _containing(pattern: str) -> _Glob:
    """A pattern read over another pattern's text: its ``?`` stands for one character of the other (never
    its ``*``, which may be many), its ``*`` for any run of it, wildcards included."""
    return _Glob(pattern, "[^*]")


def _is_pattern(pattern: str) -> bool:
    try:
        check_pattern(pattern)
    except ValueError:
        return False
    return True


def within(patterns: tuple[str, ...], scope: tuple[str, ...]) -> bool:
    """Whether every service that ``patterns`` cover is covered by ``scope`` (empty: every service). Sound,
    not complete: a pattern is within another when the other matches its text, wildcard for wildcard, so
    ``web-*`` is within ``web*``; the same set written another way (``a?*`` against ``a*?``) may be
    refused, never a larger set let through. A stored pattern outside today's grammar is within nothing."""
    if not scope:
        return True
    if not patterns:
        return False
    return all(
        _is_pattern(inner) and any(_containing(outer).matches(inner) for outer in scope) for inner in patterns
    )


def sql_glob(pattern: str) -> str:
    """The pattern as an SQLite GLOB operand matching exactly the names ``covers`` matches: GLOB is
    case-sensitive, reads ``*`` and ``?`` as the grammar does, and its only other metacharacter, ``[``,
    is outside the grammar."""
    return check_pattern(pattern)
