"""The settings file `userdebtor.yaml` (CONTRACT.md, "Settings file"): its sections as models.

Every key of the contract, nested as in the YAML, plus the project's own additions (`schedule`,
`safety.guard_min_linked_pairs`, the SMTP login and delivery retries). The whole file is checked before
anything is read or written: unknown keys, wrong types, bad values and filters that do not parse are all
reported at once, each under its dotted key (`user_debtor.new_account_prefix: ...`), as a SettingsError.
The field map is `contract`'s, the value checks `settings_values`', the errors `settings_errors`' and the
reading of the file `settings_file`'s; this module re-exports what callers import from it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StrictBool,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from userdebtor_pipeline.contract import FIELD_MAP, FIELDS, FieldSpec, field_spec
from userdebtor_pipeline.settings_errors import SettingsError
from userdebtor_pipeline.settings_file import CONFIG_ENV, DEFAULT_CONFIG_PATH, config_path, read_settings_file
from userdebtor_pipeline.settings_values import (
    CODE_PREFIX,
    SECRET_KEYS,
    CodeStr,
    CronStr,
    Days,
    EmailStr,
    FilterStr,
    Hours,
    NonEmptyStr,
    control_character,
    http_url,
    normalise_fields,
    show_value,
    timezone_name,
)

__all__ = [
    "CONFIG_ENV",
    "DEFAULT_CONFIG_PATH",
    "FIELDS",
    "FIELD_MAP",
    "CustomerConversionSettings",
    "EmailSettings",
    "FieldSpec",
    "InstantAccountSettings",
    "OrderHistorySettings",
    "SafetySettings",
    "ScheduleSettings",
    "Settings",
    "SettingsError",
    "UserDebtorSettings",
    "config_path",
    "default_settings",
    "field_spec",
    "load_settings",
    "parse_settings",
    "read_settings_file",
]


# ------------------------------------------------------------------------------------------- models


class _Section(BaseModel):
    """Common strictness: unknown keys and loosely typed values are errors, not guesses."""

    model_config = ConfigDict(extra="forbid", strict=True, validate_default=True, validate_assignment=True)
    # Keys whose text may span lines (filters); every other text refuses line breaks and control characters.
    multiline_keys: ClassVar[frozenset[str]] = frozenset()

    @field_validator("*", mode="before")
    @classmethod
    def _no_control_characters(cls, value: Any, info: ValidationInfo) -> Any:
        texts = value if isinstance(value, list) else [value]
        for text in texts:
            if isinstance(text, str):
                multiline = info.field_name in cls.multiline_keys
                found = control_character(text, multiline=multiline)
                if found:
                    shown = "the value" if info.field_name in SECRET_KEYS else show_value(text)  # never a password
                    raise ValueError(f"{shown} holds {found}; it must be one line of plain text")
        return value


_DEFAULT_CREATION_FIELDS = [spec.name for spec in FIELDS]
_DEFAULT_SYNC_FIELDS = [
    "OrderEmailAddress",
    "Name",
    *(f"Address{n}" for n in range(1, 7)),
    "PhoneNumber",
    "Postcode",
]


class UserDebtorSettings(_Section):
    """`user_debtor`: the two-way link of web users and ERP debtors (rules U1-U7)."""

    enabled: StrictBool = True
    roles_requiring_erp_account: list[NonEmptyStr] = Field(default_factory=lambda: ["B2C"])
    new_account_prefix: str = "WEB_"
    account_number_width: Annotated[int, Field(ge=1, le=12)] = 6
    template_customer: CodeStr = "TEMPLATE"
    default_role_for_new_users: NonEmptyStr = "B2C"
    warning_emails_to: EmailStr = "erp-admin@example.com"
    customer_master_filter: FilterStr = 'dr-cust-type like "WEB_%"'
    css_customer_filter: FilterStr = 'dr-cust-type in ("WEB_", "TRADE")'
    creation_fields: list[str] = Field(default_factory=lambda: list(_DEFAULT_CREATION_FIELDS))
    sync_fields: list[str] = Field(default_factory=lambda: list(_DEFAULT_SYNC_FIELDS))
    conflict_policy: Literal["erp_wins", "web_wins", "newest_wins", "hold"] = "erp_wins"
    on_erp_delete: Literal["deactivate", "warn_only"] = "deactivate"

    multiline_keys: ClassVar[frozenset[str]] = frozenset({"customer_master_filter", "css_customer_filter"})

    @field_validator("roles_requiring_erp_account")
    @classmethod
    def _roles_needed_when_enabled(cls, value: list[str], info: ValidationInfo) -> list[str]:
        # `enabled` is declared first, so it has been validated already.
        if not value and info.data.get("enabled", True):
            raise ValueError("must name at least one role while user_debtor.enabled is true")
        return value

    @field_validator("new_account_prefix")
    @classmethod
    def _prefix_is_code_safe(cls, value: str) -> str:
        # The prefix becomes part of an ERP debtor code, so only characters that are safe there.
        if not CODE_PREFIX.fullmatch(value):
            raise ValueError(f"{value!r} must be 1 to 10 of A-Z, 0-9 and _ (it starts every new debtor code)")
        return value

    @field_validator("creation_fields")
    @classmethod
    def _known_creation_fields(cls, value: list[str]) -> list[str]:
        return normalise_fields(value)

    @field_validator("sync_fields")
    @classmethod
    def _known_sync_fields(cls, value: list[str]) -> list[str]:
        fields = normalise_fields(value)
        if "Code" in fields:
            # A debtor code changes only through a customer conversion (C1-C4), never by a field sync.
            raise ValueError("'Code' cannot be synced; debtor codes change only through customer conversions")
        return fields

    def sync_field_specs(self) -> tuple[FieldSpec, ...]:
        """The FieldSpecs of `sync_fields`, in the order given."""
        return tuple(FIELD_MAP[name] for name in self.sync_fields)

    def creation_field_specs(self) -> tuple[FieldSpec, ...]:
        """The FieldSpecs of `creation_fields`, in the order given."""
        return tuple(FIELD_MAP[name] for name in self.creation_fields)


class CustomerConversionSettings(_Section):
    """`customer_conversions`: copying and applying ERP code conversions (rules C1-C4)."""

    enabled: StrictBool = True


class InstantAccountSettings(_Section):
    """`instant_accounts`: self-service sign-up and login checks (rules I1-I3)."""

    enabled: StrictBool = True
    cash_account_code: CodeStr = "CASH"
    excluded_account_codes: list[CodeStr] = Field(default_factory=lambda: ["STAFF"])
    default_role: NonEmptyStr = "B2B"
    reverify_after_days: Days = 90
    token_ttl_hours: Hours = 48


class OrderHistorySettings(_Section):
    """`order_history`: which ERP orders the web shows (rules O1-O2)."""

    enabled: StrictBool = True
    archive_days: Days = 365
    hidden_statuses: list[CodeStr] = Field(default_factory=lambda: ["61"])


class EmailSettings(_Section):
    """`email`: rendering and delivery (rule E1). The SMTP password is a secret and never printed."""

    from_address: EmailStr = "store@example.com"
    site_url: str = "http://localhost:3000"
    transport: Literal["maildir", "smtp"] = "maildir"
    smtp_host: NonEmptyStr = "localhost"
    smtp_port: Annotated[int, Field(ge=1, le=65535)] = 25
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: StrictBool = False
    templates_dir: NonEmptyStr | None = None
    max_attempts: Annotated[int, Field(ge=1, le=100)] = 5
    ui_url: str | None = None  # where people open the Dagster UI: alert emails link the run there

    @field_validator("site_url")
    @classmethod
    def _site_url(cls, value: str) -> str:
        return http_url(value)

    @field_validator("ui_url")
    @classmethod
    def _ui_url(cls, value: str | None) -> str | None:
        return None if value is None else http_url(value)


class SafetySettings(_Section):
    """`safety`: the U7 guard against runs that would change too much at once."""

    max_change_fraction: Annotated[float, Field(gt=0, le=1)] = 0.2
    # With very few linked pairs any change is a large share; below this count the guard stays quiet.
    # With only a handful of linked pairs a share means little (one change of two is 50%).
    guard_min_linked_pairs: Annotated[int, Field(ge=0, le=1_000_000_000)] = 5


class ScheduleSettings(_Section):
    """`schedule`: when the Dagster schedules run the incremental and the full sync."""

    timezone: str = "UTC"
    changed_since_cron: CronStr = "*/5 * * * *"
    full_reconcile_cron: CronStr = "0 2 * * *"

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        return timezone_name(value)


class Settings(_Section):
    """The whole of `userdebtor.yaml`."""

    user_debtor: UserDebtorSettings = Field(default_factory=UserDebtorSettings)
    customer_conversions: CustomerConversionSettings = Field(default_factory=CustomerConversionSettings)
    instant_accounts: InstantAccountSettings = Field(default_factory=InstantAccountSettings)
    order_history: OrderHistorySettings = Field(default_factory=OrderHistorySettings)
    email: EmailSettings = Field(default_factory=EmailSettings)
    safety: SafetySettings = Field(default_factory=SafetySettings)
    schedule: ScheduleSettings = Field(default_factory=ScheduleSettings)

    @model_validator(mode="before")
    @classmethod
    def _empty_sections_are_defaults(cls, data: Any) -> Any:
        # `email:` with every line commented out reads as null; that means "all defaults", not an error.
        if isinstance(data, Mapping):
            return {
                key: ({} if value is None and key in cls.model_fields else value)
                for key, value in data.items()
            }
        return data


def parse_settings(data: Mapping[str, Any] | None, source: str | None = None) -> Settings:
    """Validate already-parsed settings (e.g. from YAML); raises SettingsError, never a pydantic error."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise SettingsError(
            f"the top level must be a mapping of sections (user_debtor:, email:, ...), not {_kind(data)}",
            source,
        )
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise SettingsError.from_validation_error(exc, Settings, source) from None


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    return f"a {type(value).__name__}"


def load_settings(path: str | os.PathLike[str] | None = None) -> Settings:
    """Read and check the settings file; any problem is a SettingsError that names the file and the key.

    A missing file is an error rather than silent defaults, so a mistyped path cannot run the integration
    with settings nobody chose. An empty file means every default.
    """
    file = config_path(path)
    return parse_settings(read_settings_file(file), str(file))


def default_settings() -> Settings:
    """Every setting at its default (the values of the contract's example)."""
    return Settings()
