"""Hostile settings, filters, templates and URLs (RULES A4, E1, A5): each is refused up front.

Every case runs the real `userdebtor sync` against a real database holding work a run would do (an
in-scope user without a debtor, a debtor without a user): the command exits 2 with an error that names the
key, and not one row of `erp`, `web` or the pipeline's state changed.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml
from sqlalchemy.engine import make_url

from tests.support import add_debtor, add_template, add_user, write_settings
from tests.world import fingerprints
from userdebtor_pipeline.cli import main

SECRET = "S3cretValue"
RCE = "{{ cycler.__init__.__globals__.os.popen('touch PWNED').read() }}"




@pytest.fixture
def work_to_do(pipeline_env, settings_path):
    """A database in which a run would write: a user needing a debtor (U1) and a debtor needing a user (U2)."""
    add_template(pipeline_env.erp)
    add_user(pipeline_env.web, "needs.debtor@mail.example")
    add_debtor(pipeline_env.erp, "WEB_000007", "needs.user@mail.example")
    return pipeline_env


def refused(engines, capsys, key: str, *, also: str | None = None) -> str:
    """Run `userdebtor sync`; assert exit 2 naming `key`, nothing written, no command run by a template."""
    before = fingerprints(engines.erp, engines.web, with_state=True)
    capsys.readouterr()
    assert main(["sync"]) == 2
    err = capsys.readouterr().err
    assert key in err, err
    if also is not None:
        assert also in err, err
    assert fingerprints(engines.erp, engines.web, with_state=True) == before
    assert not Path("PWNED").exists()
    return err


# ------------------------------------------------------------------------------------ settings values

BAD_VALUES: list[tuple[str, dict[str, Any], str, str]] = [
    # (case, sections for write_settings, key named, words of the message)
    ("role missing", {"user_debtor": {"roles_requiring_erp_account": ["B2C", "WHOLESALE"]}},
     "user_debtor.roles_requiring_erp_account[1]", "'WHOLESALE' does not exist in web.role"),
    ("default role missing", {"user_debtor": {"default_role_for_new_users": "Retail"}},
     "user_debtor.default_role_for_new_users", "does not exist in web.role"),
    ("instant role missing", {"instant_accounts": {"default_role": "Trade"}},
     "instant_accounts.default_role", "does not exist in web.role"),
    ("templates_dir missing", {"email": {"templates_dir": "/no/such/folder"}},
     "email.templates_dir", "is not a folder"),
    ("days beyond use", {"instant_accounts": {"reverify_after_days": 10**12}},
     "instant_accounts.reverify_after_days", "less than or equal to 36500"),
    ("hours zero", {"instant_accounts": {"token_ttl_hours": 0}}, "instant_accounts.token_ttl_hours", "greater than 0"),
    ("hours beyond a year", {"instant_accounts": {"token_ttl_hours": 10**9}},
     "instant_accounts.token_ttl_hours", "less than or equal"),
    ("archive days negative", {"order_history": {"archive_days": -1}}, "order_history.archive_days", "greater than 0"),
    ("width beyond use", {"user_debtor": {"account_number_width": 40}},
     "user_debtor.account_number_width", "less than or equal to 12"),
    ("fraction above one", {"safety": {"max_change_fraction": 5.0}}, "safety.max_change_fraction", "less than"),
    ("fraction not a number", {"safety": {"max_change_fraction": float("nan")}}, "safety.max_change_fraction", ""),
    ("line break in from_address", {"email": {"from_address": "a@b.com\n"}}, "email.from_address", "line break"),
    ("line break in prefix", {"user_debtor": {"new_account_prefix": "WEB_\n"}},
     "user_debtor.new_account_prefix", "line break"),
    ("header injection in warning address", {"user_debtor": {"warning_emails_to": "x@y.com\r\nBcc: all@evil.example"}},
     "user_debtor.warning_emails_to", "line break"),
    ("line break in site_url", {"email": {"site_url": "http://shop.example.com\n"}}, "email.site_url", "line break"),
    ("tab in template customer", {"user_debtor": {"template_customer": "TEMP\tLATE"}},
     "user_debtor.template_customer", "control character"),
    ("NUL in cash account", {"instant_accounts": {"cash_account_code": "CASH\x00"}},
     "instant_accounts.cash_account_code", "control character (U+0000)"),
    ("line separator in excluded code", {"instant_accounts": {"excluded_account_codes": ["STAFF", "X\u2028"]}},
     "instant_accounts.excluded_account_codes", "line break"),
    ("line break in hidden status", {"order_history": {"hidden_statuses": ["61\n"]}},
     "order_history.hidden_statuses", "line break"),
    ("line break in smtp host", {"email": {"smtp_host": "localhost\r\n"}}, "email.smtp_host", "line break"),
    ("bidi control in role", {"user_debtor": {"default_role_for_new_users": "B2C\u202e"}},
     "user_debtor.default_role_for_new_users", "control character (U+202E)"),
]


@pytest.mark.parametrize(("sections", "key", "words"), [c[1:] for c in BAD_VALUES], ids=[c[0] for c in BAD_VALUES])
def test_a4_a_setting_that_cannot_work_is_refused_before_any_write(work_to_do, settings_path, capsys,
                                                                   sections, key, words):
    write_settings(settings_path, **sections)
    refused(work_to_do, capsys, key, also=words)


# --------------------------------------------------------------------------------------------- filters

BAD_FILTERS: list[tuple[str, str, str, str]] = [
    ("text column with a number", "customer_master_filter", "dr-cust-type = 5", "holds text"),
    ("number column with text", "customer_master_filter", 'dr-credit-limit > "abc"', "holds numbers"),
    ("number column in a list with text", "css_customer_filter", 'dr-credit-limit in (1, "x")', "holds numbers"),
    ("number beyond numeric(14,2)", "customer_master_filter", "dr-credit-limit > 10000000000000000000",
     "out of range"),
    ("timestamp with a number", "css_customer_filter", "dr-date-created > 5", "holds dates"),
    ("timestamp with a non-date", "customer_master_filter", 'dr-date-last-changed > "yesterday"', "holds dates"),
    ("like on a number column", "customer_master_filter", 'dr-credit-limit like "1%"', "needs a text column"),
    ("SQL injection", "customer_master_filter", "dr-cust-type = 'x'; DROP TABLE erp.deb_master", "unexpected"),
]


@pytest.mark.parametrize(("key", "text", "words"), [c[1:] for c in BAD_FILTERS], ids=[c[0] for c in BAD_FILTERS])
def test_a4_a_filter_literal_of_another_type_is_refused(work_to_do, settings_path, capsys, key, text, words):
    write_settings(settings_path, user_debtor={key: text})
    refused(work_to_do, capsys, f"user_debtor.{key}", also=words)


# ------------------------------------------------------------------------------------------- templates

BAD_TEMPLATES: list[tuple[str, str, str, str]] = [
    # (case, file, source, words of the message)
    ("runs a shell command", "user_debtor_new_user.txt", RCE, "sandbox"),
    ("class walk", "user_debtor_new_user.txt", "{{ ''.__class__.__mro__[1].__subclasses__() }}", "sandbox"),
    ("lipsum globals", "instant_account_verify.txt", "{{ lipsum.__globals__['os'].system('touch PWNED') }}",
     "sandbox"),
    ("name built at render time", "instant_account_verify.txt", "{{ lipsum['__glob' ~ 'als__'] }}", "sandbox"),
    ("format string", "user_debtor_warning.txt", "{{ '{0.__class__.__init__}'.format(summary) }}", "sandbox"),
    ("a value changed", "instant_account_verify.txt", "{{ accounts.append('STAFF') }}{{ link }}", "sandbox"),
    ("memory by multiplication", "user_debtor_new_user.txt", "{{ 'x' * 10**10 }}", "100,000"),
    ("memory by range", "user_debtor_new_user.txt", "{{ range(10**9) | list }}", "MAX_RANGE"),
    ("in the shared layout", "_base.html", "{% block content %}{% endblock %}{{ config.__class__ }}", "_base.html"),
    ("syntax error", "user_debtor_new_user.subject.txt", "{% if %}Welcome", "user_debtor_new_user.subject.txt"),
    ("a variable nobody passes", "sync_run_failed.txt", "{{ database_password }}", "'database_password' is undefined"),
    ("not UTF-8", "user_debtor_new_user.txt", b"\xff\xfe broken", "not UTF-8"),
]


@pytest.mark.parametrize(("filename", "source", "words"), [c[1:] for c in BAD_TEMPLATES],
                         ids=[c[0] for c in BAD_TEMPLATES])
def test_e1_a_template_the_sandbox_refuses_is_a_settings_error_naming_it(work_to_do, settings_path, capsys,
                                                                        tmp_path, monkeypatch, filename, source, words):
    monkeypatch.chdir(tmp_path)  # where a template's shell command would leave PWNED
    folder = tmp_path / "templates"
    folder.mkdir()
    target = folder / filename
    target.write_bytes(source) if isinstance(source, bytes) else target.write_text(source)
    write_settings(settings_path, email={"templates_dir": str(folder)})
    err = refused(work_to_do, capsys, "email.templates_dir", also=words)
    assert filename in err


def test_e1_a_good_operator_template_passes_and_is_used(work_to_do, settings_path, tmp_path):
    folder = tmp_path / "templates"
    folder.mkdir()
    (folder / "user_debtor_new_user.subject.txt").write_text("Welcome{% if name %}, {{ name }}{% endif %}")
    write_settings(settings_path, email={"templates_dir": str(folder)})
    assert main(["sync"]) == 0
    with work_to_do.web.connect() as conn:
        subjects = conn.execute(
            sa.text("SELECT subject FROM web.email_outbox WHERE template = 'user_debtor_new_user'")
        ).scalars().all()
    assert subjects and all(s.startswith("Welcome") for s in subjects)


# ------------------------------------------------------------------------------------ the settings file

BILLION_LAUGHS = "\n".join(
    [
        'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
        *(f"{n}: &{n} [{', '.join([f'*{p}'] * 9)}]" for p, n in zip("abcdefgh", "bcdefghi", strict=True)),
    ]
)
BAD_FILES: list[tuple[str, str, str]] = [
    ("alias bomb", BILLION_LAUGHS, "expand to more than"),
    ("alias of itself", "user_debtor: &loop\n  sync_fields: [*loop]\n", "refers to the value that contains it"),
    ("oversized", "# padding\n" * 40_000, "larger than"),
    ("YAML 1.1 number as text", "instant_accounts:\n  reverify_after_days: 1e12\n",
     "instant_accounts.reverify_after_days"),
    ("python object tag", "email: !!python/object/apply:os.system ['touch PWNED']\n", "YAML error"),
]


@pytest.mark.parametrize(("text", "words"), [c[1:] for c in BAD_FILES], ids=[c[0] for c in BAD_FILES])
def test_a4_a_hostile_settings_file_is_refused_in_milliseconds(work_to_do, settings_path, capsys, tmp_path,
                                                               monkeypatch, text, words):
    monkeypatch.chdir(tmp_path)
    settings_path.write_text(text)
    started = time.perf_counter()
    refused(work_to_do, capsys, str(settings_path), also=words)
    assert time.perf_counter() - started < 5  # the whole command, database check included


# ------------------------------------------------------------------------------------------------ URLs


def _unreachable_erp(url: str) -> str:
    return make_url(url).set(database="no_such_erp").update_query_dict({"password": SECRET}).render_as_string(
        hide_password=False
    )


BAD_URLS: list[tuple[str, Any, str]] = [
    ("password in the query", _unreachable_erp, "cannot reach the ERP database"),
    ("password in the query, any case",
     lambda url: _unreachable_erp(url).replace("password=", "PassWord="), "cannot reach the ERP database"),
    ("password in user:pass@", lambda url: f"postgresql+psycopg://shop:{SECRET}@127.0.0.1:1/erp",
     "cannot reach the ERP database"),
    ("not PostgreSQL", lambda url: f"mysql://shop:{SECRET}@localhost/erp?password={SECRET}", "must be PostgreSQL"),
    ("not a URL", lambda url: f"shop {SECRET} erp", "not a valid SQLAlchemy URL"),
]


@pytest.mark.parametrize(("make", "words"), [c[1:] for c in BAD_URLS], ids=[c[0] for c in BAD_URLS])
def test_a5_a_bad_database_url_exits_2_without_its_password(work_to_do, capsys, monkeypatch, make, words):
    monkeypatch.setenv("USERDEBTOR_ERP_URL", make(work_to_do.erp_url))
    err = refused(work_to_do, capsys, "ERP", also=words)
    assert SECRET not in err


def test_a4_settings_are_refused_by_a_run_from_the_ui_with_the_same_message(work_to_do, settings_path, capsys):
    """The Dagster job (as the UI launches it) fails its first step with the message sync prints, writing nothing."""
    from userdebtor_pipeline.runner import run_sync

    write_settings(settings_path, user_debtor={"roles_requiring_erp_account": ["WHOLESALE"]})
    before = fingerprints(work_to_do.erp, work_to_do.web, with_state=True)
    outcome = run_sync()
    assert not outcome.success and outcome.failed_steps == ["sync_run_started"]
    assert any("user_debtor.roles_requiring_erp_account[0]" in e for e in outcome.errors), outcome.errors
    after = fingerprints(work_to_do.erp, work_to_do.web, with_state=True)
    # The failed run is warned about (a failure email in the outbox): that and nothing else was written.
    changed = {t for t in before if before[t] != after[t]}
    assert changed <= {"web.email_outbox"}, changed
    with work_to_do.web.connect() as conn:
        templates = conn.execute(sa.text("SELECT template FROM web.email_outbox")).scalars().all()
    assert templates == ["sync_run_failed"]


def test_a4_the_example_settings_pass_the_preflight(work_to_do, settings_path):
    from userdebtor_pipeline.preflight import settings_problems
    from userdebtor_pipeline.settings import load_settings

    assert settings_problems(load_settings(settings_path), work_to_do.web) == []
    assert yaml.safe_load(settings_path.read_text())  # the file the other cases rewrite


def test_e1_a_run_refused_for_its_template_is_still_warned_about_with_the_built_in_one(work_to_do, settings_path,
                                                                                      tmp_path):
    from userdebtor_pipeline.runner import run_sync

    folder = tmp_path / "templates"
    folder.mkdir()
    (folder / "sync_run_failed.txt").write_text(RCE)
    write_settings(settings_path, email={"templates_dir": str(folder)})
    outcome = run_sync()  # as the UI launches it: the first step refuses the template
    assert outcome.failed_steps == ["sync_run_started"]
    assert any("sync_run_failed.txt" in e for e in outcome.errors), outcome.errors
    with work_to_do.web.connect() as conn:
        body = conn.execute(
            sa.text("SELECT body_text FROM web.email_outbox WHERE template = 'sync_run_failed'")
        ).scalar()
    assert body and "email.templates_dir" in body and "sandbox" in body


def test_a5_a_refused_smtp_password_is_never_shown():
    from userdebtor_pipeline.settings import SettingsError, parse_settings

    with pytest.raises(SettingsError) as refused_password:
        parse_settings({"email": {"smtp_password": f"{SECRET}\n"}})
    assert "email.smtp_password" in str(refused_password.value) and SECRET not in str(refused_password.value)
