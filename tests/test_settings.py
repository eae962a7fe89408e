"""The settings file of CONTRACT.md ("Settings file", with "Field mapping" and "Filter queries").

Every key of the contract is accepted (the example file holds them all), and every kind of mistake is a
SettingsError that names the key by its dotted path. No database is needed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import SecretStr

from userdebtor_pipeline.settings import (
    FIELD_MAP,
    FIELDS,
    FieldSpec,
    Settings,
    SettingsError,
    default_settings,
    field_spec,
    load_settings,
    parse_settings,
)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = PROJECT_ROOT / "userdebtor.example.yaml"

# The contract's example, verbatim in meaning.
CONTRACT_EXAMPLE: dict[str, Any] = {
    "user_debtor": {
        "enabled": True,
        "roles_requiring_erp_account": ["B2C"],
        "new_account_prefix": "WEB_",
        "account_number_width": 6,
        "template_customer": "TEMPLATE",
        "default_role_for_new_users": "B2C",
        "warning_emails_to": "erp-admin@example.com",
        "customer_master_filter": 'dr-cust-type like "WEB_%"',
        "css_customer_filter": 'dr-cust-type in ("WEB_", "TRADE")',
        "creation_fields": [
            "Code",
            "OrderEmailAddress",
            "Name",
            "Address1",
            "Address2",
            "Address3",
            "Address4",
            "Address5",
            "Address6",
            "PhoneNumber",
            "Postcode",
            "ABN",
            "industrycode",
        ],
        "sync_fields": [
            "OrderEmailAddress",
            "Name",
            "Address1",
            "Address2",
            "Address3",
            "Address4",
            "Address5",
            "Address6",
            "PhoneNumber",
            "Postcode",
        ],
        "conflict_policy": "erp_wins",
        "on_erp_delete": "deactivate",
    },
    "customer_conversions": {"enabled": True},
    "instant_accounts": {
        "enabled": True,
        "cash_account_code": "CASH",
        "excluded_account_codes": ["STAFF"],
        "default_role": "B2B",
        "reverify_after_days": 90,
        "token_ttl_hours": 48,
    },
    "order_history": {"enabled": True, "archive_days": 365, "hidden_statuses": ["61"]},
    "email": {
        "from_address": "store@example.com",
        "site_url": "http://localhost:3000",
        "transport": "maildir",
        "smtp_host": "localhost",
        "smtp_port": 25,
        "templates_dir": None,
    },
    "safety": {"max_change_fraction": 0.2},
}


def write(tmp_path: Path, text: str, name: str = "userdebtor.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(data: Any) -> str:
    with pytest.raises(SettingsError) as info:
        parse_settings(data, source="test.yaml")
    return str(info.value)


def with_value(section: str, key: str, value: Any) -> dict[str, Any]:
    return {section: {key: value}}


# ------------------------------------------------------------------------------------ accepted keys


def test_example_file_holds_every_contract_key_and_loads() -> None:
    raw = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    for section, keys in CONTRACT_EXAMPLE.items():
        assert set(keys) <= set(raw[section]), section
    settings = load_settings(EXAMPLE)
    assert settings == default_settings()


def test_contract_example_is_the_defaults() -> None:
    settings = Settings.model_validate(CONTRACT_EXAMPLE)
    dumped = settings.model_dump()
    for section, keys in CONTRACT_EXAMPLE.items():
        for key, value in keys.items():
            assert dumped[section][key] == value, f"{section}.{key}"
    assert settings == default_settings()


def test_defaults_of_the_added_keys() -> None:
    settings = default_settings()
    assert settings.safety.guard_min_linked_pairs == 5
    assert settings.email.max_attempts == 5
    assert settings.email.smtp_username is None
    assert settings.email.smtp_password is None
    assert settings.email.smtp_starttls is False
    assert settings.schedule.timezone == "UTC"
    assert settings.schedule.changed_since_cron == "*/5 * * * *"
    assert settings.schedule.full_reconcile_cron == "0 2 * * *"


def test_every_section_and_key_can_be_changed(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
user_debtor:
  enabled: false
  roles_requiring_erp_account: [B2C, Retail]
  new_account_prefix: "W2_"
  account_number_width: 8
  template_customer: "TPL"
  default_role_for_new_users: "Retail"
  warning_emails_to: "ops@shop.example"
  customer_master_filter: "dr_cust_type = 'WEB_' and dr_account_status <> 'C'"
  css_customer_filter: "dr_cust_type not in ('CASH')"
  creation_fields: [Code, Name]
  sync_fields: [Name]
  conflict_policy: hold
  on_erp_delete: warn_only
customer_conversions:
  enabled: false
instant_accounts:
  enabled: false
  cash_account_code: "CASH2"
  excluded_account_codes: []
  default_role: "B2B"
  reverify_after_days: 30
  token_ttl_hours: 1
order_history:
  enabled: false
  archive_days: 30
  hidden_statuses: [61, "90"]
email:
  from_address: "noreply@shop.example"
  site_url: "https://shop.example/"
  transport: smtp
  smtp_host: mail.shop.example
  smtp_port: 587
  smtp_username: robot
  smtp_password: s3cret-pw
  smtp_starttls: true
  templates_dir: ./my-templates
  max_attempts: 3
safety:
  max_change_fraction: 1
  guard_min_linked_pairs: 20
schedule:
  timezone: Australia/Sydney
  changed_since_cron: "* * * * *"
  full_reconcile_cron: "@daily"
""",
    )
    s = load_settings(path)
    assert s.user_debtor.enabled is False
    assert s.user_debtor.roles_requiring_erp_account == ["B2C", "Retail"]
    assert s.user_debtor.account_number_width == 8
    assert s.user_debtor.conflict_policy == "hold"
    assert s.user_debtor.on_erp_delete == "warn_only"
    assert s.customer_conversions.enabled is False
    assert s.instant_accounts.excluded_account_codes == []
    assert s.instant_accounts.token_ttl_hours == 1
    assert s.order_history.hidden_statuses == ["61", "90"]  # statuses are text
    assert s.email.transport == "smtp" and s.email.smtp_port == 587 and s.email.smtp_starttls is True
    assert s.email.site_url == "https://shop.example"
    assert s.email.templates_dir == "./my-templates"
    assert s.safety.max_change_fraction == 1.0
    assert s.safety.guard_min_linked_pairs == 20
    assert s.schedule.timezone == "Australia/Sydney"
    assert s.schedule.full_reconcile_cron == "@daily"


def test_smtp_password_is_secret(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, "email:\n  smtp_password: hunter2-secret\n"))
    assert isinstance(s.email.smtp_password, SecretStr)
    assert s.email.smtp_password.get_secret_value() == "hunter2-secret"
    assert "hunter2" not in repr(s) and "hunter2" not in str(s)
    assert "hunter2" not in s.model_dump_json()


def test_smtp_password_never_in_an_error() -> None:
    message = problems_of({"email": {"smtp_password": 987654321}})
    assert "email.smtp_password" in message
    assert "987654321" not in message


def test_empty_file_and_empty_sections_are_defaults(tmp_path: Path) -> None:
    assert load_settings(write(tmp_path, "")) == default_settings()
    assert load_settings(write(tmp_path, "# only a comment\n", "b.yaml")) == default_settings()
    assert load_settings(write(tmp_path, "email:\nsafety:\n", "c.yaml")) == default_settings()


def test_partial_section_keeps_other_defaults() -> None:
    s = parse_settings({"user_debtor": {"account_number_width": 4}})
    assert s.user_debtor.account_number_width == 4
    assert s.user_debtor.new_account_prefix == "WEB_"
    assert s.email.transport == "maildir"


# ---------------------------------------------------------------------------------- field mapping


def test_field_map_is_the_contracts() -> None:
    assert [f.name for f in FIELDS] == [
        "Code",
        "OrderEmailAddress",
        "Name",
        *(f"Address{n}" for n in range(1, 7)),
        "PhoneNumber",
        "Postcode",
        "ABN",
        "industrycode",
    ]
    assert FIELD_MAP["Code"] == FieldSpec("Code", "default_customer_code", "dr_cust_code", "customer_code")
    assert FIELD_MAP["OrderEmailAddress"] == FieldSpec(
        "OrderEmailAddress", "email_address", "dr_email", "order_email_address"
    )
    assert FIELD_MAP["Name"] == FieldSpec("Name", "name", "dr_cust_name", "name")
    assert FIELD_MAP["Address4"] == FieldSpec("Address4", "address4", "dr_addr_4", "address4")
    assert FIELD_MAP["PhoneNumber"] == FieldSpec("PhoneNumber", "phone_number", "dr_phone", "phone_number")
    assert FIELD_MAP["Postcode"] == FieldSpec("Postcode", "postcode", "dr_postcode", "postcode")
    assert FIELD_MAP["ABN"] == FieldSpec("ABN", "abn", "dr_abn", "abn")
    assert FIELD_MAP["industrycode"] == FieldSpec(
        "industrycode", "industry_code", "dr_industry_code", "industry_code"
    )
    assert field_spec("INDUSTRYCODE") is FIELD_MAP["industrycode"]
    with pytest.raises(KeyError):
        field_spec("Email")


def test_field_names_are_case_insensitive_and_normalised() -> None:
    s = parse_settings(
        {
            "user_debtor": {
                "creation_fields": ["code", "ORDEREMAILADDRESS", "name", "IndustryCode", "abn"],
                "sync_fields": ["orderemailaddress", "address1", "PHONENUMBER", "postCode", "Address1"],
            }
        }
    )
    assert s.user_debtor.creation_fields == ["Code", "OrderEmailAddress", "Name", "industrycode", "ABN"]
    assert s.user_debtor.sync_fields == ["OrderEmailAddress", "Address1", "PhoneNumber", "Postcode"]
    assert [f.debtor_column for f in s.user_debtor.sync_field_specs()] == [
        "dr_email",
        "dr_addr_1",
        "dr_phone",
        "dr_postcode",
    ]
    assert s.user_debtor.creation_field_specs()[0] is FIELD_MAP["Code"]


# --------------------------------------------------------------------------------------- mistakes


@pytest.mark.parametrize(
    ("data", "key", "words"),
    [
        # unknown keys, at each level
        ({"user_debtr": {}}, "user_debtr", "unknown key"),
        ({"user_debtor": {"enabeld": True}}, "user_debtor.enabeld", "did you mean 'enabled'"),
        ({"safety": {"max_change": 0.5}}, "safety.max_change", "unknown key"),
        ({"schedule": {"cron": "* * * * *"}}, "schedule.cron", "unknown key"),
        # wrong types
        (with_value("user_debtor", "enabled", "yes"), "user_debtor.enabled", "valid boolean"),
        (with_value("user_debtor", "enabled", 1), "user_debtor.enabled", "valid boolean"),
        (
            with_value("user_debtor", "account_number_width", "6"),
            "user_debtor.account_number_width",
            "integer",
        ),
        (
            with_value("user_debtor", "account_number_width", 6.5),
            "user_debtor.account_number_width",
            "integer",
        ),
        (
            with_value("user_debtor", "roles_requiring_erp_account", "B2C"),
            "user_debtor.roles_requiring_erp_account",
            "list",
        ),
        (with_value("user_debtor", "sync_fields", "Name"), "user_debtor.sync_fields", "list"),
        (
            with_value("instant_accounts", "token_ttl_hours", True),
            "instant_accounts.token_ttl_hours",
            "integer",
        ),
        (with_value("safety", "max_change_fraction", "0.2"), "safety.max_change_fraction", "number"),
        (with_value("email", "smtp_starttls", "true"), "email.smtp_starttls", "boolean"),
        (with_value("email", "smtp_port", "25"), "email.smtp_port", "integer"),
        ({"email": "smtp"}, "email", "must be a section of keys"),
        # values
        (
            {"user_debtor": {"enabled": True, "roles_requiring_erp_account": []}},
            "user_debtor.roles_requiring_erp_account",
            "at least one role",
        ),
        (with_value("user_debtor", "new_account_prefix", "web_"), "user_debtor.new_account_prefix", "A-Z"),
        (with_value("user_debtor", "new_account_prefix", "W'; --"), "user_debtor.new_account_prefix", "A-Z"),
        (with_value("user_debtor", "new_account_prefix", ""), "user_debtor.new_account_prefix", "A-Z"),
        (
            with_value("user_debtor", "new_account_prefix", "ABCDEFGHIJK"),
            "user_debtor.new_account_prefix",
            "A-Z",
        ),
        (with_value("user_debtor", "account_number_width", 0), "user_debtor.account_number_width", "greater"),
        (with_value("user_debtor", "account_number_width", 13), "user_debtor.account_number_width", "less"),
        (with_value("user_debtor", "conflict_policy", "ask"), "user_debtor.conflict_policy", "'hold'"),
        (with_value("user_debtor", "on_erp_delete", "delete"), "user_debtor.on_erp_delete", "'warn_only'"),
        (
            with_value("user_debtor", "creation_fields", ["Name", "Email"]),
            "user_debtor.creation_fields",
            "'Email'",
        ),
        (
            with_value("user_debtor", "sync_fields", ["Fax"]),
            "user_debtor.sync_fields",
            "unknown web field 'Fax'",
        ),
        (
            with_value("user_debtor", "sync_fields", ["Name", "code"]),
            "user_debtor.sync_fields",
            "'Code' cannot",
        ),
        (
            with_value("user_debtor", "customer_master_filter", "dr_cust_type = 'a'; drop table x"),
            "user_debtor.customer_master_filter",
            "unexpected ';' at position 19",
        ),
        (
            with_value("user_debtor", "css_customer_filter", "dr_colour = 'red'"),
            "user_debtor.css_customer_filter",
            "unknown column 'dr_colour'",
        ),
        (
            with_value("user_debtor", "customer_master_filter", ""),
            "user_debtor.customer_master_filter",
            "empty",
        ),
        (with_value("user_debtor", "warning_emails_to", "admin"), "user_debtor.warning_emails_to", "email"),
        (with_value("user_debtor", "template_customer", " "), "user_debtor.template_customer", "empty"),
        (with_value("safety", "max_change_fraction", 0), "safety.max_change_fraction", "greater than 0"),
        (
            with_value("safety", "max_change_fraction", 1.5),
            "safety.max_change_fraction",
            "less than or equal to 1",
        ),
        (with_value("safety", "guard_min_linked_pairs", -1), "safety.guard_min_linked_pairs", "greater"),
        (
            with_value("instant_accounts", "reverify_after_days", 0),
            "instant_accounts.reverify_after_days",
            "greater",
        ),
        (
            with_value("instant_accounts", "token_ttl_hours", -2),
            "instant_accounts.token_ttl_hours",
            "greater",
        ),
        (
            with_value("instant_accounts", "cash_account_code", ""),
            "instant_accounts.cash_account_code",
            "empty",
        ),
        (with_value("order_history", "archive_days", 0), "order_history.archive_days", "greater"),
        (with_value("email", "transport", "sendmail"), "email.transport", "'maildir' or 'smtp'"),
        (with_value("email", "from_address", "store at example"), "email.from_address", "email"),
        (with_value("email", "templates_dir", 7), "email.templates_dir", "string"),
        (with_value("email", "templates_dir", ""), "email.templates_dir", "empty"),
        (with_value("email", "site_url", "localhost:3000"), "email.site_url", "http"),
        (with_value("email", "max_attempts", 0), "email.max_attempts", "greater"),
        (with_value("schedule", "timezone", "Mars/Olympus"), "schedule.timezone", "unknown time zone"),
        (
            with_value("schedule", "changed_since_cron", "every 5 minutes"),
            "schedule.changed_since_cron",
            "cron",
        ),
    ],
)
def test_each_mistake_names_its_key(data: dict[str, Any], key: str, words: str) -> None:
    message = problems_of(data)
    line = next((line for line in message.splitlines() if line.strip().startswith(f"{key}: ")), None)
    assert line is not None, message
    assert words in message, message
    assert "test.yaml" in message
    assert "pydantic" not in message and "Traceback" not in message


def test_roles_may_be_empty_when_disabled() -> None:
    s = parse_settings({"user_debtor": {"enabled": False, "roles_requiring_erp_account": []}})
    assert s.user_debtor.roles_requiring_erp_account == []


def test_all_problems_are_listed_at_once() -> None:
    message = problems_of(
        {
            "user_debtor": {"account_number_width": 99, "conflict_policy": "x"},
            "email": {"transport": "pigeon"},
            "bogus": 1,
        }
    )
    for key in (
        "user_debtor.account_number_width",
        "user_debtor.conflict_policy",
        "email.transport",
        "bogus",
    ):
        assert f"\n  {key}: " in message


def test_filter_error_keeps_its_caret_excerpt() -> None:
    message = problems_of(with_value("user_debtor", "customer_master_filter", "lower(dr_email) = 'x'"))
    assert "user_debtor.customer_master_filter: function calls are not allowed" in message
    assert "lower(dr_email) = 'x'" in message and "^" in message


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="top level must be a mapping"):
        load_settings(write(tmp_path, "- user_debtor\n- email\n"))
    with pytest.raises(SettingsError, match="top level must be a mapping"):
        load_settings(write(tmp_path, "just text\n", "b.yaml"))


def test_unknown_key_in_a_file(tmp_path: Path) -> None:
    path = write(tmp_path, "user_debtor:\n  enabled: true\n  prefix: WEB_\n")
    with pytest.raises(SettingsError) as info:
        load_settings(path)
    assert "user_debtor.prefix: unknown key" in str(info.value)
    assert str(path) in str(info.value)


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = write(
        tmp_path, "user_debtor:\n  enabled: true\n  sync_fields: [Name, Postcode\nemail:\n  smtp_port: 25\n"
    )
    with pytest.raises(SettingsError) as info:
        load_settings(path)
    message = str(info.value)
    assert "YAML syntax error at line" in message
    assert str(path) in message


def test_repeated_key_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "email:\n  smtp_port: 25\n  smtp_port: 2525\n")
    with pytest.raises(SettingsError, match=r"line 3.*'smtp_port' appears twice"):
        load_settings(path)


def test_missing_file_is_an_error_naming_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "userdebtor.yaml"
    with pytest.raises(SettingsError) as info:
        load_settings(missing)
    assert str(missing) in str(info.value)
    assert "not found" in str(info.value)


def test_path_from_environment_then_current_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    chosen = write(tmp_path, "user_debtor:\n  account_number_width: 9\n", "chosen.yaml")
    monkeypatch.setenv("USERDEBTOR_CONFIG", str(chosen))
    assert load_settings().user_debtor.account_number_width == 9

    monkeypatch.delenv("USERDEBTOR_CONFIG")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SettingsError, match="userdebtor.yaml"):
        load_settings()
    write(tmp_path, "user_debtor:\n  account_number_width: 7\n")
    assert load_settings().user_debtor.account_number_width == 7


def test_directory_is_not_a_settings_file(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="directory"):
        load_settings(tmp_path)


def test_settings_error_is_a_value_error() -> None:
    assert issubclass(SettingsError, ValueError)
    error = SettingsError(["a.b: wrong", "c: also wrong"], source="x.yaml")
    assert error.problems == ["a.b: wrong", "c: also wrong"]
    assert str(error) == "invalid settings in x.yaml:\n  a.b: wrong\n  c: also wrong"
