"""Text that came from a client or the store, made safe to print on an operator's terminal.

A log message, an audit target or a key description is data, never markup or terminal control: rich must
not read ``[link=...]`` or ``[/]`` in it, and an ESC, BEL or bidi override in it must not clear the screen,
set the window title or reorder what the operator reads. ``printable`` is the one rule; the rest wrap it.

Newlines and tabs stay as they are: a multi-line message (a stack trace) reads as lines, and in a table they
stay inside their cell, so they cannot forge a row. Every other control character, C0 and C1, DEL, the bidi
controls, the Unicode line and paragraph separators and lone surrogates (which no terminal encoding can
carry) is shown as a Python-style escape, ``\\x1b`` or ``\\u202e``. A backslash is left alone, so a message
that holds the four characters ``\\x1b`` reads the same as one that holds an ESC: ``--json`` tells them apart.
"""

from __future__ import annotations

import re

import msgspec
from rich.text import Text

__all__ = ["json_line", "printable", "untrusted"]

_UNSAFE = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str) -> str:
    """``text`` with every character that could steer a terminal shown as an escape instead."""
    return _UNSAFE.sub(_escape, text)


def untrusted(value: object) -> Text:
    """``value`` as rich text: printable, and never parsed as markup (a ``Text`` never is)."""
    return Text(printable(str(value)))


def json_line(value: object) -> str:
    """``value`` as one line of JSON that is also safe on a terminal. JSON escapes only the C0 controls; the
    other unsafe characters, which can only occur inside its strings, become ``\\uXXXX`` escapes too."""
    return _UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", msgspec.json.encode(value).decode())
