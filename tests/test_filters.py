"""Filter queries of CONTRACT.md ("Filter queries", over the `erp.deb_master` columns).

No database is needed: expressions are compiled for PostgreSQL and checked for bound parameters, so the
tests also prove that no value of a filter is pasted into the SQL text.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from userdebtor_pipeline.filters import (
    DEB_MASTER_COLUMNS,
    FilterError,
    deb_master_table,
    filter_columns_of,
    parse_filter,
    validate_filter,
)

COLUMNS = filter_columns_of(deb_master_table())


def compiled(text: str, columns: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
    """SQL text and bound values of a filter, as PostgreSQL would receive them."""
    expr = parse_filter(text, columns or COLUMNS)
    result = expr.compile(dialect=postgresql.dialect())
    return str(result), dict(result.params)


def assert_bound(sql: str, params: dict[str, Any], *values: Any) -> None:
    """Each value travels as a bound parameter and never appears in the SQL string."""
    flat: list[Any] = []
    for value in params.values():
        flat.extend(value if isinstance(value, list) else [value])
    for value in values:
        assert value in flat, (value, params)
        if isinstance(value, str):
            assert value not in sql, sql


# ---------------------------------------------------------------------------------------- the table


def test_deb_master_columns_are_the_contracts() -> None:
    assert len(DEB_MASTER_COLUMNS) == 21
    assert DEB_MASTER_COLUMNS[0] == "dr_cust_code"
    assert DEB_MASTER_COLUMNS[-1] == "dr_date_last_changed"
    assert {f"dr_addr_{n}" for n in range(1, 7)} <= set(DEB_MASTER_COLUMNS)


def test_deb_master_table_shape_and_cache() -> None:
    table = deb_master_table()
    assert table is deb_master_table()
    assert table.fullname == "erp.deb_master"
    assert tuple(table.columns.keys()) == DEB_MASTER_COLUMNS
    assert [c.name for c in table.primary_key] == ["dr_cust_code"]
    assert isinstance(table.c.dr_credit_limit.type, sa.Numeric)
    assert isinstance(table.c.dr_date_created.type, sa.DateTime) and table.c.dr_date_created.type.timezone
    assert isinstance(table.c.dr_date_last_changed.type, sa.DateTime)
    assert isinstance(table.c.dr_email.type, sa.Text)


# ---------------------------------------------------------------------------------- the operators


def test_contract_examples() -> None:
    sql, params = compiled('dr-cust-type like "WEB_%"')
    assert sql == "erp.deb_master.dr_cust_type LIKE %(dr_cust_type_1)s"
    assert params == {"dr_cust_type_1": "WEB_%"}

    sql, params = compiled('dr-cust-type in ("WEB_", "TRADE")')
    assert "erp.deb_master.dr_cust_type IN" in sql
    assert params == {"dr_cust_type_1": ["WEB_", "TRADE"]}


@pytest.mark.parametrize(
    ("op", "sql_op"),
    [("=", "="), ("<>", "!="), ("!=", "!="), ("<", "<"), ("<=", "<="), (">", ">"), (">=", ">=")],
)
def test_comparisons(op: str, sql_op: str) -> None:
    sql, params = compiled(f"dr_account_status {op} 'STOPPED'")
    assert sql == f"erp.deb_master.dr_account_status {sql_op} %(dr_account_status_1)s"
    assert_bound(sql, params, "STOPPED")


def test_like_and_not_like() -> None:
    sql, params = compiled("dr_email like '%@example.com'")
    assert " LIKE " in sql and " NOT " not in sql
    assert_bound(sql, params, "%@example.com")
    sql, params = compiled("dr_email not like 'x%'")
    assert " NOT LIKE " in sql
    assert_bound(sql, params, "x%")


def test_in_and_not_in() -> None:
    sql, params = compiled("dr_cust_type in ('WEB_')")
    assert " IN " in sql and "NOT IN" not in sql
    assert_bound(sql, params, "WEB_")
    sql, params = compiled("dr_cust_type not in ('CASH', 'STAFF')")
    assert "NOT IN" in sql
    assert_bound(sql, params, "CASH", "STAFF")


def test_null_tests() -> None:
    assert compiled("dr_email is null") == ("erp.deb_master.dr_email IS NULL", {})
    assert compiled("dr_email is not null") == ("erp.deb_master.dr_email IS NOT NULL", {})


def test_and_or_not_parentheses() -> None:
    sql, params = compiled("not (dr_cust_type = 'RETAIL' or dr_cust_type = 'TRADE') and dr_email is not null")
    assert sql.startswith("NOT (")
    assert " OR " in sql and " AND " in sql
    assert_bound(sql, params, "RETAIL", "TRADE")


def test_precedence_not_over_and_over_or() -> None:
    # a or b and c  ==  a or (b and c)
    expected = sa.or_(
        COLUMNS["dr_cust_type"] == "A",
        sa.and_(COLUMNS["dr_cust_type"] == "B", COLUMNS["dr_account_status"] != "C"),
    )
    got = parse_filter("dr_cust_type = 'A' or dr_cust_type = 'B' and dr_account_status <> 'C'", COLUMNS)
    assert got.compare(expected)
    # (a or b) and c keeps its parentheses
    sql, _ = compiled("(dr_cust_type = 'A' or dr_cust_type = 'B') and dr_account_status <> 'C'")
    assert sql.startswith("(erp.deb_master.dr_cust_type = ") and ") AND " in sql
    # not applies to the nearest predicate only
    got = parse_filter("not dr_email is null and dr_abn is null", COLUMNS)
    expected = sa.and_(sa.not_(COLUMNS["dr_email"].is_(None)), COLUMNS["dr_abn"].is_(None))
    assert got.compare(expected)


def test_hyphen_underscore_and_case_are_one_column() -> None:
    spellings = ["dr-cust-type", "dr_cust_type", "DR-CUST-TYPE", "Dr_Cust-Type"]
    results = {compiled(f"{name} = 'WEB_'")[0] for name in spellings}
    assert results == {"erp.deb_master.dr_cust_type = %(dr_cust_type_1)s"}


def test_keywords_are_case_insensitive() -> None:
    a = compiled(
        "dr_email IS NOT NULL AND NOT dr_cust_type LIKE 'X%' OR dr_abn In ('1') Or dr_tax_code Not In ('2')"
    )
    b = compiled(
        "dr_email is not null and not dr_cust_type like 'X%' or dr_abn in ('1') or dr_tax_code not in ('2')"
    )
    assert a == b


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("dr_cust_name = 'O''Brien'", "O'Brien"),
        ('dr_cust_name = "say ""hi"""', 'say "hi"'),
        ('dr_cust_name = "it\'s"', "it's"),
        ("dr_cust_name = 'say \"hi\"'", 'say "hi"'),
        ("dr_cust_name = ''", ""),
        ("dr_cust_name = 'a -- b /* c */ ; d'", "a -- b /* c */ ; d"),
    ],
)
def test_quotes_and_escapes(text: str, value: str) -> None:
    sql, params = compiled(text)
    assert params == {"dr_cust_name_1": value}
    assert sql == "erp.deb_master.dr_cust_name = %(dr_cust_name_1)s"


def test_numbers_are_bound_typed_to_the_column() -> None:
    sql, params = compiled("dr_credit_limit >= 1000.50 and dr_credit_limit < 5000 and dr_credit_limit > -1")
    assert list(params.values()) == [Decimal("1000.50"), Decimal("5000"), Decimal("-1")]
    assert "1000" not in sql
    # A4: a number against a text column is refused (is it '61' or '061'?); quoted, it is text
    with pytest.raises(FilterError, match="holds text"):
        compiled("dr_account_status = 61")
    _, params = compiled("dr_account_status = '61'")
    assert params == {"dr_account_status_1": "61"}


def test_dates_are_bound_as_datetimes() -> None:
    _, params = compiled("dr_date_last_changed >= '2024-01-31'")
    assert params == {"dr_date_last_changed_1": dt.datetime(2024, 1, 31)}


def test_other_table_with_the_same_column_names() -> None:
    staging = sa.Table(
        "deb_master_copy",
        sa.MetaData(),
        *(sa.Column(name, sa.Text()) for name in DEB_MASTER_COLUMNS),
        schema="userdebtor",
    )
    sql, params = compiled('dr-cust-type like "WEB_%"', filter_columns_of(staging))
    assert sql == "userdebtor.deb_master_copy.dr_cust_type LIKE %(dr_cust_type_1)s"
    assert params == {"dr_cust_type_1": "WEB_%"}


def test_filter_in_a_select_stays_parameterised() -> None:
    table = deb_master_table()
    stmt = sa.select(table.c.dr_cust_code).where(parse_filter("dr_email = 'x'' or 1=1 --'", COLUMNS))
    result = stmt.compile(dialect=postgresql.dialect())
    assert "1=1" not in str(result)
    assert result.params == {"dr_email_1": "x' or 1=1 --"}


def test_validate_filter_accepts_the_contract_defaults() -> None:
    assert validate_filter('dr-cust-type like "WEB_%"') is None
    assert validate_filter('dr-cust-type in ("WEB_", "TRADE")') is None


# --------------------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("text", "position", "words"),
    [
        ("x'; drop table erp.deb_master; --", 2, "unterminated string"),
        ("dr_cust_code = 'x'; drop table erp.deb_master; --", 19, "unexpected ';'"),
        ('dr-cust-type = "a" ; delete from x', 20, "unexpected ';'"),
        ("dr_cust_code in (select dr_cust_code from erp.deb_master)", 18, "sub-queries"),
        ("dr_cust_code = (select 'a')", 17, "sub-queries"),
        ("(select 1)", 2, "sub-queries"),
        ("lower(dr_email) = 'x'", 1, "function calls"),
        ("dr_email = lower('X')", 12, "function calls"),
        ("dr_email = 'x' -- comment", 16, "comments"),
        ("dr_email = 'x' /* comment */", 16, "comments"),
        ("dr_email = 'x", 12, "unterminated string"),
        ('dr_email = "x', 12, "unterminated string"),
        ("dr_email = 'x''", 12, "unterminated string"),
        ("", 1, "empty"),
        ("   \n ", 1, "empty"),
        ("dr_email = 'a' garbage", 16, "unexpected 'garbage'"),
        ("dr_email = 'a')", 15, "unexpected ')'"),
        ("(dr_email = 'a'", 16, "unexpected end of filter"),
        ("dr_email = 'a' or", 18, "unexpected end of filter"),
        ("dr_email", 9, "unexpected end of filter"),
        ("dr_cust_code == 'a'", 15, "unexpected '='"),
        ("dr_cust_code between 'a' and 'b'", 14, "unexpected 'between'"),
        ("dr_email is 'x'", 13, "expected 'null'"),
        ("dr_email is not 'x'", 17, "expected 'null'"),
        ("dr_email not = 'x'", 14, "'like' or 'in' after 'not'"),
        ("dr_email = null", 12, "is null"),
        ("dr_email = dr_phone", 12, "another column"),
        ("dr_email = x", 12, "quoted string or a number"),
        ("dr_cust_type in ()", 18, "list of values is empty"),
        ("dr_cust_type in ('a' 'b')", 22, "',' or ')'"),
        ("dr_cust_type in 'a'", 17, "'('"),
        ("dr_credit_limit like '1%'", 17, "text column"),
        ("dr_email like 5", 15, "quoted pattern"),
        ("dr_credit_limit = 'lots'", 19, "holds numbers"),
        ("dr_date_created > 'yesterday'", 19, "holds dates"),
        ("dr_date_created > 20240101", 19, "holds dates"),
        ("dr_cust_code = 12abc", 16, "malformed number"),
        ("dr_cust_code = 1.", 17, "decimal point"),
        ("dr_cust_code = ?", 16, "unexpected '?'"),
        ("dr_cust_code = `a`", 16, "unexpected '`'"),
        ("erp.deb_master.dr_cust_code = 'a'", 4, "unexpected '.'"),
        ("dr_cust_type = 'a' ; ", 20, "unexpected ';'"),
        ("dr_email = 'a' and or dr_abn is null", 20, "expected a column name"),
        ("'a' = dr_email", 1, "expected a column name"),
        ("dr_email = 'a' union select 1", 16, "unexpected 'union'"),
    ],
)
def test_refused_with_position(text: str, position: int, words: str) -> None:
    with pytest.raises(FilterError) as info:
        parse_filter(text, COLUMNS)
    message = str(info.value)
    assert words in message
    assert f"at position {position}" in message
    assert info.value.position == position
    # the excerpt puts a caret under the offending character (or just past the end of the text)
    excerpt, caret = message.splitlines()[1:3]
    assert caret.strip() == "^"
    assert excerpt.strip().strip(".") in text.replace("\n", " ")
    if position <= len(text.rstrip()):
        assert excerpt[caret.index("^")] == text[position - 1]


def test_unknown_column_lists_the_valid_ones() -> None:
    with pytest.raises(FilterError) as info:
        validate_filter("dr_emial = 'a'")
    message = str(info.value)
    assert "unknown column 'dr_emial'" in message
    assert "did you mean 'dr_email'" in message
    assert "at position 1" in message
    assert "dr_cust_code" in message and "dr_date_last_changed" in message


def test_unknown_column_of_another_table() -> None:
    only_code = {"dr_cust_code": deb_master_table().c.dr_cust_code}
    with pytest.raises(FilterError, match="unknown column 'dr_email'"):
        parse_filter("dr_email is null", only_code)


def test_deep_nesting_is_refused_not_a_crash() -> None:
    text = "(" * 500 + "dr_email is null" + ")" * 500
    with pytest.raises(FilterError, match="nests deeper"):
        validate_filter(text)


def test_huge_filter_is_refused() -> None:
    with pytest.raises(FilterError, match="longer than"):
        validate_filter("dr_email = '" + "a" * 20_000 + "'")


def test_not_text_is_refused() -> None:
    with pytest.raises(FilterError, match="must be text"):
        validate_filter(None)  # type: ignore[arg-type]


def test_filter_error_is_a_value_error() -> None:
    assert issubclass(FilterError, ValueError)
