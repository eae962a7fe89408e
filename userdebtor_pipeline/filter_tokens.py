"""The tokens of a filter query (CONTRACT.md, "Filter queries") and the error every filter problem raises.

The tokenizer reads PRONTO names with hyphens (`dr-cust-type`), quoted strings (a doubled quote stands for one
quote), numbers, comparison operators, parentheses and commas; anything else (comments, `;`) is refused with the
position of the problem.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["FilterError", "Token", "tokenize"]

_COMPARISONS = ("<>", "!=", "<=", ">=", "=", "<", ">")


class FilterError(ValueError):
    """A filter that does not parse; the message names what is wrong, its position and an excerpt."""

    def __init__(self, message: str, text: str = "", offset: int | None = None, note: str = "") -> None:
        self.reason = message
        self.text = text
        self.offset = offset  # 0-based index into `text`, or None when the problem has no single place
        self.position = None if offset is None else offset + 1  # 1-based, as shown in the message
        if offset is not None:
            message = f"{message} at position {offset + 1}\n{_excerpt(text, offset)}"
        if note:
            message = f"{message}\n{note}"
        super().__init__(message)


def _excerpt(text: str, offset: int, width: int = 36) -> str:
    """The text around `offset` on one line, with a caret under the offending character."""
    start = max(0, offset - width)
    end = min(len(text), offset + width)
    # Line breaks and tabs would misalign the caret; a filter is one expression anyway.
    snippet = "".join(" " if ch in "\r\n\t" else ch for ch in text[start:end])
    prefix = "..." if start > 0 else ""
    suffix = "..." if end < len(text) else ""
    return f"  {prefix}{snippet}{suffix}\n  {' ' * (len(prefix) + offset - start)}^"


# --------------------------------------------------------------------------------------------- tokens


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # "ident", "string", "number", "op", "(", ")", ",", "eof"
    value: str  # identifiers as written; strings unescaped; numbers and operators as written
    pos: int  # 0-based offset of the token's first character

    @property
    def word(self) -> str:
        """Lower-case identifier, for keyword comparisons."""
        return self.value.lower() if self.kind == "ident" else ""

    def describe(self) -> str:
        if self.kind == "eof":
            return "end of filter"
        if self.kind == "string":
            return "string " + _quote(self.value)
        return _quote(self.value)


def _quote(value: str, limit: int = 30) -> str:
    shown = value if len(value) <= limit else value[: limit - 3] + "..."
    return repr(shown)


def _is_ident_start(ch: str) -> bool:
    return ch.isascii() and (ch.isalpha() or ch == "_")


def _is_ident_char(ch: str) -> bool:
    return ch.isascii() and (ch.isalnum() or ch == "_")


def tokenize(text: str) -> Iterator[Token]:
    """Yield the tokens of `text` one at a time, so that the first problem from the left is reported."""
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch in " \t\r\n":
            i += 1
            continue
        two = text[i : i + 2]
        if two in ("--", "/*"):
            raise FilterError(f"comments ({two!r}) are not allowed in a filter", text, i)
        if _is_ident_start(ch):
            start = i
            i += 1
            # PRONTO names use hyphens (`dr-cust-type`); a hyphen belongs to the name only when a name
            # character follows, so `--` still reads as a comment and is refused.
            while i < n and (
                _is_ident_char(text[i]) or (text[i] == "-" and i + 1 < n and _is_ident_char(text[i + 1]))
            ):
                i += 1
            yield Token("ident", text[start:i], start)
            continue
        if ch in "'\"":
            start = i
            value, i = _read_string(text, i)
            yield Token("string", value, start)
            continue
        if ch.isdigit() or (ch == "-" and i + 1 < n and text[i + 1].isdigit()):
            start = i
            i += 1
            while i < n and text[i].isdigit():
                i += 1
            if i < n and text[i] == ".":
                i += 1
                if i >= n or not text[i].isdigit():
                    raise FilterError("a decimal point must be followed by digits", text, i - 1)
                while i < n and text[i].isdigit():
                    i += 1
            if i < n and (_is_ident_char(text[i]) or text[i] == "."):
                raise FilterError(f"malformed number {text[start : i + 1]!r}", text, start)
            yield Token("number", text[start:i], start)
            continue
        op = next((o for o in _COMPARISONS if text.startswith(o, i)), None)
        if op is not None:
            yield Token("op", op, i)
            i += len(op)
            continue
        if ch in "(),":
            yield Token(ch, ch, i)
            i += 1
            continue
        raise FilterError(f"unexpected {ch!r}", text, i)
    yield Token("eof", "", n)


def _read_string(text: str, start: int) -> tuple[str, int]:
    """Read a quoted string starting at `start`; a doubled quote stands for one quote character.

    Returns the unescaped value and the index just after the closing quote.
    """
    quote = text[start]
    parts: list[str] = []
    i = start + 1
    while True:
        end = text.find(quote, i)
        if end < 0:
            raise FilterError("unterminated string", text, start)
        parts.append(text[i:end])
        if text.startswith(quote * 2, end):
            parts.append(quote)
            i = end + 2
            continue
        return "".join(parts), end + 1
