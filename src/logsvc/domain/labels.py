"""Label sets in Prometheus' text syntax, ``{app="api", env="prod"}``, as Loki's protobuf push carries a
stream's labels (Promtail, Alloy and the Docker driver write them with Prometheus' ``labels.String()``).

Names are Prometheus' (``[a-zA-Z_][a-zA-Z0-9_]*``). Values are Go string literals, as Loki reads them:
double-quoted with Go's escapes (``\\a \\b \\f \\n \\r \\t \\v \\\\ \\"``, ``\\xHH`` and ``\\ooo`` bytes,
``\\uHHHH`` and ``\\UHHHHHHHH`` code points), or back-quoted raw text; the value must be UTF-8 once
unescaped. Pairs are separated by commas (one may trail) and spaces; a name may appear once.
"""

from __future__ import annotations

import functools
import re

__all__ = ["LABEL_NAME", "is_label_name", "parse_labels"]

LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_SPACE = re.compile(r"\s*")
# A quoted value up to its closing quote (a newline cannot be in one, as in Go), or a raw one.
_QUOTED = re.compile(r'"((?:[^"\\\n]|\\.)*)"')
_RAW = re.compile(r"`([^`]*)`")
_ESCAPE = re.compile(
    r"\\(?:([abfnrtv\\\"])|x([0-9a-fA-F]{2})|([0-7]{3})|u([0-9a-fA-F]{4})|U([0-9a-fA-F]{8})|(.?))", re.DOTALL
)
_SIMPLE = {"a": b"\a", "b": b"\b", "f": b"\f", "n": b"\n", "r": b"\r", "t": b"\t", "v": b"\v"}
_SIMPLE |= {"\\": b"\\", '"': b'"'}
_MAX_CODE_POINT = 0x10FFFF


def is_label_name(name: str) -> bool:
    return LABEL_NAME.fullmatch(name) is not None


def parse_labels(text: str) -> tuple[tuple[str, str], ...]:
    """The pairs of a label set, in order; ValueError naming what is wrong."""
    # A shipper sends the same few label sets again and again: each is read once, if it is of a usual size
    # (the cache must not keep whatever large sets a client makes up).
    return _parse_usual(text) if len(text) <= _USUAL_CHARS else _parse(text)


_USUAL_CHARS = 1024


def _parse(text: str) -> tuple[tuple[str, str], ...]:
    pairs: list[tuple[str, str]] = []
    pos = _skip(text, 0)
    if not text.startswith("{", pos):
        raise ValueError("must start with {")
    pos = _skip(text, pos + 1)
    while not text.startswith("}", pos):
        name = LABEL_NAME.match(text, pos)
        if name is None:
            raise ValueError(f"has no label name at character {pos + 1}")
        pos = _skip(text, name.end())
        if not text.startswith("=", pos):
            raise ValueError(f"label {name.group()} has no = after its name")
        pos = _skip(text, pos + 1)
        value, pos = _value(text, pos, name.group())
        if any(seen == name.group() for seen, _ in pairs):
            raise ValueError(f"label {name.group()} appears twice")
        pairs.append((name.group(), value))
        pos = _skip(text, pos)
        if text.startswith(",", pos):
            pos = _skip(text, pos + 1)
        elif not text.startswith("}", pos):
            raise ValueError(f"needs a comma or }} after label {name.group()}")
    if _skip(text, pos + 1) != len(text):
        raise ValueError("has more after its closing }")
    return tuple(pairs)


_parse_usual = functools.lru_cache(maxsize=4096)(_parse)


def _skip(text: str, pos: int) -> int:
    found = _SPACE.match(text, pos)
    return found.end() if found else pos


def _value(text: str, pos: int, name: str) -> tuple[str, int]:
    raw = _RAW.match(text, pos)
    if raw is not None:
        return raw.group(1), raw.end()
    quoted = _QUOTED.match(text, pos)
    if quoted is None:
        raise ValueError(f"label {name} needs a value in double quotes (or back quotes)")
    body = quoted.group(1)
    if "\\" not in body:
        return body, quoted.end()
    try:
        return _unescape(body).decode(), quoted.end()
    except UnicodeDecodeError:
        raise ValueError(f"label {name} is not UTF-8 once unescaped") from None
    except ValueError as exc:
        raise ValueError(f"label {name} {exc}") from None


def _unescape(body: str) -> bytes:
    """A Go string literal's body as the bytes it stands for; ValueError for an escape Go does not have."""
    out = bytearray()
    pos = 0
    for escape in _ESCAPE.finditer(body):
        out += body[pos : escape.start()].encode()
        pos = escape.end()
        simple, hex_byte, octal, short, long, other = escape.groups()
        if simple is not None:
            out += _SIMPLE[simple]
        elif hex_byte is not None:
            out.append(int(hex_byte, 16))
        elif octal is not None:
            if int(octal, 8) > 0xFF:
                raise ValueError(f"has an octal escape past \\377: \\{octal}")
            out.append(int(octal, 8))
        else:
            digits = short or long
            if digits is None:
                raise ValueError(f"has an escape Go does not have: \\{other}")
            code = int(digits, 16)
            if code > _MAX_CODE_POINT or 0xD800 <= code <= 0xDFFF:
                raise ValueError(f"has an escape of no Unicode character: \\{'u' if short else 'U'}{digits}")
            out += chr(code).encode()
    out += body[pos:].encode()
    return bytes(out)
