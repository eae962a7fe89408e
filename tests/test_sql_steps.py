"""SQL step names are identifiers: each `-- step:` of a domain SQL file is snake_case and unique, and a step the
Python reads but the file lacks fails when the definitions load, with a message that names file and step."""

from __future__ import annotations

import pytest

from userdebtor_pipeline.defs import sql_file
from userdebtor_pipeline.defs.sql_file import SqlFile, SqlStepError, check_sql_files, sql_files, sql_steps


@pytest.fixture
def fake_sql(monkeypatch: pytest.MonkeyPatch):
    """Serve one SQL text under the name 'demo/steps.sql' (the parser's cache cleared around it)."""
    texts: dict[str, str] = {}
    real = sql_file.read_sql
    monkeypatch.setattr(sql_file, "read_sql", lambda relative: texts.get(relative) or real(relative))
    sql_steps.cache_clear()
    yield texts
    sql_steps.cache_clear()


def test_every_domain_sql_file_names_its_steps_as_identifiers() -> None:
    assert len(sql_files()) > 30
    check_sql_files()
    for relative in sql_files():
        names = [name for name, _ in sql_steps(relative)]
        assert all(sql_file.STEP_NAME.match(name) for name in names), relative


def test_a_prose_step_name_is_refused_with_the_file_named(fake_sql: dict[str, str]) -> None:
    fake_sql["demo/steps.sql"] = "-- step: forget the previous plan\nDELETE FROM t;\n"
    with pytest.raises(SqlStepError, match=r"demo/steps.sql: step 'forget the previous plan' is not a snake_case"):
        sql_steps("demo/steps.sql")


def test_a_step_named_twice_is_refused(fake_sql: dict[str, str]) -> None:
    fake_sql["demo/steps.sql"] = "-- step: reset\nDELETE FROM t;\n-- step: reset\nDELETE FROM u;\n"
    with pytest.raises(SqlStepError, match="step 'reset' is named twice"):
        sql_steps("demo/steps.sql")


def test_a_step_python_reads_but_the_file_lacks_fails_its_declaration(fake_sql: dict[str, str]) -> None:
    fake_sql["demo/steps.sql"] = "-- step: reset\nDELETE FROM t;\n-- step: plan_rows\nINSERT INTO t SELECT 1;\n"
    assert SqlFile("demo/steps.sql", reads=("plan_rows",)).steps == ["reset", "plan_rows"]
    with pytest.raises(SqlStepError, match=r"reads step\(s\) 'rows_planned' that the file lacks"):
        SqlFile("demo/steps.sql", reads=("rows_planned",))


def test_a_step_read_without_declaring_it_is_refused(fake_sql: dict[str, str]) -> None:
    fake_sql["demo/steps.sql"] = "-- step: reset\nDELETE FROM t;\n-- step: plan_rows\nINSERT INTO t SELECT 1;\n"
    with pytest.raises(SqlStepError, match="not declared in reads="):
        SqlFile("demo/steps.sql").statement("plan_rows")


def test_a_file_without_step_lines_is_one_step_named_after_it() -> None:
    assert [name for name, _ in sql_steps("contacts/user_batches.sql")] == ["user_batches"]
