"""A5: a database password never reaches a person, a log, a report, the Dagster event log or an email.

Runs fail for real with the password in the URL's query (`?password=...`; the test server trusts every
login, so any password connects), then every output is searched for it: the commands' stdout and stderr,
every file under USERDEBTOR_HOME and DAGSTER_HOME, the Dagster event log of each run, `web.email_outbox`,
and every row of the web's and the pipeline's tables.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
from dagster._serdes import serialize_value
from sqlalchemy.engine import make_url

from tests.support import add_template, add_user, write_settings
from userdebtor_pipeline.cli import main
from userdebtor_pipeline.db import dispose_all, safe_url
from userdebtor_pipeline.masking import error_in_brief, mask_secrets
from userdebtor_pipeline.runner import run_sync

SECRET = "S3cretValue"


def with_password(url: str, key: str = "password", database: str | None = None) -> str:
    parsed = make_url(url).update_query_dict({key: SECRET})
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)


@pytest.mark.parametrize(
    "text",
    [
        f"postgresql+psycopg://shop:{SECRET}@db.example:5432/erp",
        f"postgresql+psycopg://shop@db.example/erp?password={SECRET}",
        f"postgresql+psycopg://shop@db.example/erp?sslmode=require&PASSWORD={SECRET}",
        f"postgresql+psycopg://shop:p@{SECRET}@db.example/erp",
        f"connection failed: host=db.example password={SECRET} dbname=erp",
        f"connection failed: host=db.example password='{SECRET} x' dbname=erp",
    ],
)
def test_a5_mask_secrets_hides_every_form_of_password(text):
    assert SECRET not in mask_secrets(text)
    assert "db.example" in mask_secrets(text)
    assert SECRET not in error_in_brief(f"DatabaseError: {text}\nmore")


def test_a5_safe_url_masks_the_query_password():
    url = f"postgresql+psycopg://shop:{SECRET}@db.example/erp?Password={SECRET}&sslmode=require"
    assert safe_url(url) == "postgresql+psycopg://shop:***@db.example/erp?Password=***&sslmode=require"


def _files_holding(folder: Path, secret: bytes) -> list[str]:
    return [str(p) for p in folder.rglob("*") if p.is_file() and secret in p.read_bytes()]


def _rows_holding(engine: sa.engine.Engine, secret: str) -> list[str]:
    """Every table of schemas web and userdebtor with a row whose text holds the secret."""
    found = []
    with engine.connect() as conn:
        tables = conn.execute(
            sa.text(
                "SELECT quote_ident(table_schema) || '.' || quote_ident(table_name) FROM information_schema.tables"
                " WHERE table_schema IN ('web', 'userdebtor') AND table_type = 'BASE TABLE'"
            )
        ).scalars().all()
        for table in tables:
            hits = conn.execute(
                sa.text(f"SELECT count(*) FROM {table} t WHERE t::text LIKE :s"),  # noqa: S608
                {"s": f"%{secret}%"},
            ).scalar()
            if hits:
                found.append(table)
    return found


@pytest.mark.slow
def test_a5_a_failing_run_never_shows_the_password_in_the_query(pipeline_env, settings_path, tmp_path, monkeypatch,
                                                                 capfd):
    home, dagster_home = tmp_path / "home", tmp_path / "dagster"
    dagster_home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))
    add_template(pipeline_env.erp)
    add_user(pipeline_env.web, "someone@mail.example")
    web_url = with_password(pipeline_env.web_url)
    monkeypatch.setenv("USERDEBTOR_WEB_URL", web_url)
    dispose_all()
    outputs: list[str] = []
    instance = dg.DagsterInstance.get()  # persistent under DAGSTER_HOME: event logs and compute logs on disk
    run_ids: list[str] = []

    # 1. The ERP unreachable (a database that does not exist), the password in the query, any case.
    monkeypatch.setenv("USERDEBTOR_ERP_URL", with_password(pipeline_env.erp_url, "PassWord", "no_such_erp"))
    assert main(["sync"]) == 2
    assert main(["status"]) == 2  # shows both URLs; the ERP is down
    outcome = run_sync(instance=instance)  # as the UI launches it: the first step fails, the failure is emailed
    assert not outcome.success and "cannot reach the ERP database" in " ".join(outcome.errors)
    run_ids.append(outcome.run_id)

    # 2. The ERP reachable, the password in the query: a blocking check holds a load and writes its report.
    monkeypatch.setenv("USERDEBTOR_ERP_URL", with_password(pipeline_env.erp_url))
    write_settings(settings_path, user_debtor={"template_customer": "MISSING"})
    outcome = run_sync(instance=instance)
    assert outcome.failed_checks
    run_ids.append(outcome.run_id)
    assert list((home / "reports").rglob("*.html")), "the held check wrote a report"
    write_settings(settings_path)

    # 3. A step failing in the middle of the run.
    with pipeline_env.erp.begin() as conn:
        conn.execute(sa.text("ALTER TABLE erp.sales_order RENAME TO sales_order_gone"))
    assert main(["sync"]) != 0
    outcome = run_sync(instance=instance)
    assert not outcome.success and outcome.failed_steps
    run_ids.append(outcome.run_id)
    assert main(["status"]) == 0
    captured = capfd.readouterr()
    outputs += [captured.out, captured.err]

    assert all(SECRET not in text for text in outputs)
    assert "password=***" in "".join(outputs).lower()  # the URLs were shown, masked
    assert _files_holding(home, SECRET.encode()) == []
    assert _files_holding(dagster_home, SECRET.encode()) == []
    for run_id in run_ids:
        assert all(SECRET not in serialize_value(entry) for entry in instance.all_logs(run_id))
    with pipeline_env.web.connect() as conn:
        emails = conn.execute(
            sa.text("SELECT subject, body_text, coalesce(body_html, ''), coalesce(last_error, '')"
                    " FROM web.email_outbox WHERE template = 'sync_run_failed'")
        ).all()
    assert len(emails) >= 2 and all(SECRET not in "".join(email) for email in emails)
    assert any("cannot reach the ERP database" in email[1] for email in emails)
    assert _rows_holding(pipeline_env.web, SECRET) == []
    assert list(home.rglob("*")), "the failure emails were delivered into USERDEBTOR_HOME"
