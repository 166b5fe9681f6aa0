"""Text from clients and the store reaches the operator's terminal as data: never markup, never control."""

from __future__ import annotations

import io
import json
import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console

from logsvc.display import json_line, printable, untrusted

BIDI_CONTROLS = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
# Every code point, lone surrogates included (a str can hold one; no terminal encoding can carry it).
ANY_TEXT = st.text(st.characters(codec=None, categories=None))


def steers_a_terminal(char: str) -> bool:
    category = unicodedata.category(char)
    return (
        (category == "Cc" and char not in "\n\t") or category in ("Cs", "Zl", "Zp") or char in BIDI_CONTROLS
    )


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("\x1b[2J\x1b]0;title\x07", "\\x1b[2J\\x1b]0;title\\x07"),
        ("a\x00b\x7fc\x9bd", "a\\x00b\\x7fc\\x9bd"),
        ("abc\u202edef\u2066", "abc\\u202edef\\u2066"),
        ("line\r\nnext", "line\\x0d\nnext"),
        ("stack:\n\tat main", "stack:\n\tat main"),
        (
            "[/] [link=https://evil.example]click[/link] :smile:",
            "[/] [link=https://evil.example]click[/link] :smile:",
        ),
        ("naïve 日本語 🙂 C:\\x1b", "naïve 日本語 🙂 C:\\x1b"),
    ],
)
def test_control_characters_are_shown_as_escapes(text: str, shown: str) -> None:
    assert printable(text) == shown


@given(ANY_TEXT)
def test_printable_text_has_nothing_that_steers_a_terminal(text: str) -> None:
    shown = printable(text)
    assert not any(steers_a_terminal(c) for c in shown)
    shown.encode("utf-8")  # no lone surrogate left


@given(ANY_TEXT)
def test_any_text_prints_as_itself_on_a_terminal(text: str) -> None:
    """Rich prints the printable text as it is, only tabs become spaces: no markup read, no link made, no
    emoji code replaced, on a terminal too."""
    out = io.StringIO()
    Console(file=out, force_terminal=True, width=10_000, highlight=False).print(
        untrusted(text), end="", soft_wrap=True
    )
    assert out.getvalue().replace(" ", "") == printable(text).replace("\t", "").replace(" ", "")
    assert "\x1b" not in out.getvalue()
    assert "\x07" not in out.getvalue()


@given(st.dictionaries(st.text(), st.text() | st.integers() | st.lists(st.text())))
def test_json_lines_keep_every_value_and_steer_nothing(value: dict[str, object]) -> None:
    line = json_line(value)
    assert json.loads(line) == value
    assert not any(steers_a_terminal(c) or c in "\n\t" for c in line)
