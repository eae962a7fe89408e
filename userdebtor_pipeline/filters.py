"""PRONTO-style filter queries over `erp.deb_master` (CONTRACT.md, "Filter queries").

A filter such as ``dr-cust-type like "WEB_%"`` is read by a small hand-written tokenizer and a
recursive-descent parser (over the tokens of `filter_tokens`) and turned into a SQLAlchemy expression. Values
only ever become bound parameters; no part of the filter text reaches the SQL as text, and anything outside the grammar
(functions, sub-queries, ``;``, comments, unknown columns) is refused with the position of the problem.

Grammar (keywords case-insensitive; ``not`` binds tighter than ``and``, which binds tighter than ``or``)::

    filter     := or_expr EOF
    or_expr    := and_expr ("or" and_expr)*
    and_expr   := not_expr ("and" not_expr)*
    not_expr   := "not" not_expr | "(" or_expr ")" | predicate
    predicate  := column ( compare value
                         | ["not"] "like" string
                         | ["not"] "in" "(" value ("," value)* ")"
                         | "is" ["not"] "null" )
    compare    := "=" | "<>" | "!=" | "<" | "<=" | ">" | ">="
    value      := string | number
"""

from __future__ import annotations

import datetime as dt
import difflib
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from userdebtor_pipeline.contract import DEB_MASTER_COLUMNS, deb_master_table
from userdebtor_pipeline.filter_tokens import FilterError, Token, tokenize

__all__ = [
    "DEB_MASTER_COLUMNS",
    "FilterError",
    "deb_master_table",
    "filter_columns_of",
    "parse_filter",
    "validate_filter",
]

# Bounds that keep a hostile or mistaken filter from costing more than a settings check should.
MAX_FILTER_LENGTH = 10_000
MAX_NESTING = 50

_KEYWORDS = frozenset({"and", "or", "not", "like", "in", "is", "null"})
# Words that show someone is writing SQL rather than a filter; named in the error to say why it fails.
_SQL_WORDS = frozenset(
    {"select", "from", "where", "union", "exists", "insert", "update", "delete", "drop", "with", "values"}
)
_OPERATOR_HINT = "=, <>, !=, <, <=, >, >=, like, not like, in (...), not in (...), is null, is not null"


# --------------------------------------------------------------------------------------------- parser


class _Parser:
    def __init__(self, text: str, columns: Mapping[str, ColumnElement[Any]]) -> None:
        self.text = text
        self._stream = tokenize(text)
        self._lookahead: list[Token] = []
        self.depth = 0
        # Canonical spelling: lower case, underscores. `dr-cust-type` and `DR_CUST_TYPE` are one column.
        self.columns = {_canonical(name): column for name, column in columns.items()}

    # -- helpers

    def peek(self, ahead: int = 1) -> Token:
        """The token `ahead` places after the current one (the end token repeats once reached)."""
        while len(self._lookahead) <= ahead:
            if self._lookahead and self._lookahead[-1].kind == "eof":
                return self._lookahead[-1]
            self._lookahead.append(next(self._stream))
        return self._lookahead[ahead]

    @property
    def tok(self) -> Token:
        return self.peek(0)

    def advance(self) -> Token:
        token = self.tok
        if token.kind != "eof":
            self._lookahead.pop(0)
        return token

    def at_word(self, word: str) -> bool:
        return self.tok.word == word

    def error(self, message: str, token: Token | None = None) -> FilterError:
        token = token or self.tok
        return FilterError(message, self.text, token.pos)

    def unexpected(self, expected: str, token: Token | None = None) -> FilterError:
        token = token or self.tok
        if token.kind == "eof":
            return self.error(f"unexpected end of filter; expected {expected}", token)
        return self.error(f"unexpected {token.describe()}; expected {expected}", token)

    def expect(self, kind: str, expected: str) -> Token:
        if self.tok.kind != kind:
            raise self.unexpected(expected)
        return self.advance()

    # -- grammar

    def parse(self) -> ColumnElement[bool]:
        if self.tok.kind == "eof":
            raise FilterError("the filter is empty", self.text, 0)
        expr = self.or_expr()
        if self.tok.kind != "eof":
            raise self.unexpected("'and', 'or' or the end of the filter")
        return expr

    def or_expr(self) -> ColumnElement[bool]:
        parts = [self.and_expr()]
        while self.at_word("or"):
            self.advance()
            parts.append(self.and_expr())
        return parts[0] if len(parts) == 1 else sa.or_(*parts)

    def and_expr(self) -> ColumnElement[bool]:
        parts = [self.not_expr()]
        while self.at_word("and"):
            self.advance()
            parts.append(self.not_expr())
        return parts[0] if len(parts) == 1 else sa.and_(*parts)

    def not_expr(self) -> ColumnElement[bool]:
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise self.error(f"the filter nests deeper than {MAX_NESTING} levels")
        try:
            if self.at_word("not"):
                self.advance()
                return sa.not_(self.not_expr())
            if self.tok.kind == "(":
                self.advance()
                if self.tok.word in _SQL_WORDS:
                    raise self.error(f"sub-queries are not allowed ({self.tok.value!r})")
                inner = self.or_expr()
                self.expect(")", "')'")
                # No explicit grouping needed: SQLAlchemy parenthesises by operator precedence when compiling.
                return inner
            return self.predicate()
        finally:
            self.depth -= 1

    def predicate(self) -> ColumnElement[bool]:
        column_token = self.tok
        column = self.column()
        if self.tok.kind == "op":
            op = self.advance().value
            value = self.value(column, column_token)
            return _COMPARE[op](column, value)
        if self.at_word("is"):
            self.advance()
            negate = self.at_word("not")
            if negate:
                self.advance()
            if not self.at_word("null"):
                raise self.unexpected("'null'" if negate else "'null' or 'not null'")
            self.advance()
            return column.is_not(None) if negate else column.is_(None)
        negate = self.at_word("not")
        if negate:
            self.advance()
            if not (self.at_word("like") or self.at_word("in")):
                raise self.unexpected("'like' or 'in' after 'not'")
        if self.at_word("like"):
            like_token = self.advance()
            if not _is_text(column):
                raise self.error(f"'like' needs a text column; {column_token.value!r} is not one", like_token)
            if self.tok.kind != "string":
                raise self.unexpected("a quoted pattern after 'like'")
            pattern = self.value(column, column_token)
            return column.not_like(pattern) if negate else column.like(pattern)
        if self.at_word("in"):
            self.advance()
            values = self.value_list(column, column_token)
            return column.not_in(values) if negate else column.in_(values)
        raise self.unexpected(f"an operator ({_OPERATOR_HINT})")

    def column(self) -> ColumnElement[Any]:
        token = self.tok
        if token.kind != "ident":
            raise self.unexpected("a column name")
        word = token.word
        if self.peek().kind == "(":
            raise self.error(f"function calls are not allowed ({token.value!r})")
        if word in _SQL_WORDS:
            raise self.error(f"SQL statements are not allowed ({token.value!r})")
        if word in _KEYWORDS:
            raise self.unexpected("a column name")
        column = self.columns.get(_canonical(token.value))
        if column is None:
            known = list(self.columns)
            close = difflib.get_close_matches(_canonical(token.value), known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise FilterError(
                f"unknown column {token.value!r}{hint}",
                self.text,
                token.pos,
                "valid columns: " + ", ".join(known),
            )
        self.advance()
        return column

    def value(self, column: ColumnElement[Any], column_token: Token) -> Any:
        token = self.tok
        if token.kind in ("string", "number"):
            self.advance()
            return _coerce(token, column, column_token, self.text)
        if token.kind == "ident":
            if self.peek().kind == "(":
                raise self.error(f"function calls are not allowed ({token.value!r})")
            if token.word == "select":
                raise self.error("sub-queries are not allowed")
            if token.word == "null":
                raise self.error("compare with null using 'is null' or 'is not null'")
            if _canonical(token.value) in self.columns:
                raise self.error("a column can only be compared with a value, not another column")
            raise self.unexpected("a quoted string or a number (are quotes missing?)")
        if token.kind == "(":
            if self.peek().word == "select":
                raise self.error("sub-queries are not allowed", self.peek())
            raise self.unexpected("a quoted string or a number")
        raise self.unexpected("a quoted string or a number")

    def value_list(self, column: ColumnElement[Any], column_token: Token) -> list[Any]:
        self.expect("(", "'(' to start the list of values")
        if self.tok.word == "select":
            raise self.error("sub-queries are not allowed")
        if self.tok.kind == ")":
            raise self.error("the list of values is empty")
        values = [self.value(column, column_token)]
        while self.tok.kind == ",":
            self.advance()
            values.append(self.value(column, column_token))
        self.expect(")", "',' or ')' in the list of values")
        return values


def _canonical(name: str) -> str:
    return name.lower().replace("-", "_")


_COMPARE: dict[str, Callable[[ColumnElement[Any], Any], ColumnElement[bool]]] = {
    "=": lambda c, v: c == v,
    "<>": lambda c, v: c != v,
    "!=": lambda c, v: c != v,
    "<": lambda c, v: c < v,
    "<=": lambda c, v: c <= v,
    ">": lambda c, v: c > v,
    ">=": lambda c, v: c >= v,
}


# deb_master's numbers are numeric(14,2): twelve digits before the point.
_NUMERIC_BOUND = Decimal(10) ** 12


def _is_text(column: ColumnElement[Any]) -> bool:
    return isinstance(column.type, sa.String | sa.types.NullType)


def _coerce(token: Token, column: ColumnElement[Any], column_token: Token, text: str) -> Any:
    """The Python value to bind for `token`, typed to suit `column`.

    Checking here, rather than letting the database refuse the query, turns a wrong value into a settings
    error before a run starts (RULES A4): a text column takes a quoted value only (`dr-cust-type = 5` is
    refused: is it '5' or '05'?), a number column a number that fits numeric(14,2), a date column a date.
    """
    col_type = column.type
    name = column_token.value

    def wrong(what: str) -> FilterError:
        return FilterError(f"{name!r} holds {what}; {token.describe()} is not one", text, token.pos)

    if isinstance(col_type, sa.String):
        if token.kind == "number":
            raise FilterError(
                f"{name!r} holds text; compare it with a quoted value ('{token.value}'), not the number "
                f"{token.value}",
                text,
                token.pos,
            )
        return token.value
    if isinstance(col_type, sa.Integer):
        try:
            return int(token.value)
        except ValueError:
            raise wrong("whole numbers") from None
    if isinstance(col_type, sa.Numeric | sa.Float):
        try:
            number = Decimal(token.value.strip())
        except InvalidOperation:
            raise wrong("numbers") from None
        if not number.is_finite():
            raise wrong("numbers")
        if abs(number) >= _NUMERIC_BOUND:
            raise FilterError(
                f"{name!r} holds numbers below {_NUMERIC_BOUND:,}; {token.describe()} is out of range", text, token.pos
            )
        return number
    if isinstance(col_type, sa.DateTime | sa.Date):
        if token.kind != "string":
            raise FilterError(
                f"{name!r} holds dates; write the date quoted, e.g. '2024-01-31'", text, token.pos
            )
        try:
            moment = dt.datetime.fromisoformat(token.value)
        except ValueError:
            raise wrong("dates such as '2024-01-31'") from None
        return moment if isinstance(col_type, sa.DateTime) else moment.date()
    if token.kind == "number":
        return Decimal(token.value) if "." in token.value else int(token.value)
    return token.value


# ----------------------------------------------------------------------------------------------- API


def parse_filter(text: str, columns: Mapping[str, ColumnElement[Any]]) -> ColumnElement[bool]:
    """Parse `text` into a boolean SQLAlchemy expression over `columns`.

    `columns` maps canonical (underscore) column names to column objects, so one filter can select from
    `erp.deb_master` or from a staging copy with the same column names (see `filter_columns_of`).
    Raises FilterError for anything outside the grammar.
    """
    if not isinstance(text, str):
        raise FilterError(f"a filter must be text, not {type(text).__name__}")
    if len(text) > MAX_FILTER_LENGTH:
        raise FilterError(f"the filter is longer than {MAX_FILTER_LENGTH} characters")
    return _Parser(text, columns).parse()


def filter_columns_of(table: sa.FromClause) -> dict[str, ColumnElement[Any]]:
    """The `columns` argument of `parse_filter` for a table (or any selectable), keyed by column name."""
    return {column.name: column for column in table.columns}


def validate_filter(text: str) -> None:
    """Raise FilterError unless `text` is a valid filter over `erp.deb_master`."""
    parse_filter(text, filter_columns_of(deb_master_table()))
