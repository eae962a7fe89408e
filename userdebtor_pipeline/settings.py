"""The settings file `userdebtor.yaml` (CONTRACT.md, "Settings file" and "Field mapping").

Every key of the contract, nested as in the YAML, plus the project's own additions (`schedule`,
`safety.guard_min_linked_pairs`, the SMTP login and delivery retries). The whole file is checked before
anything is read or written: unknown keys, wrong types, bad values and filters that do not parse are all
reported at once, each under its dotted key (`user_debtor.new_account_prefix: ...`), as a SettingsError.
"""

from __future__ import annotations

import difflib
import os
import re
import unicodedata
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    StrictBool,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from userdebtor_pipeline.filters import FilterError, validate_filter

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
    "default_settings",
    "field_spec",
    "load_settings",
    "parse_settings",
    "read_settings_file",
]

CONFIG_ENV = "USERDEBTOR_CONFIG"
DEFAULT_CONFIG_PATH = "userdebtor.yaml"


# ------------------------------------------------------------------------------------------ field map


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One web field of the contract's Field mapping and the columns it means on each side."""

    name: str  # canonical setting value, e.g. "OrderEmailAddress"
    user_column: str  # web.app_user
    debtor_column: str  # erp.deb_master
    customer_column: str  # web.customer


FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec("Code", "default_customer_code", "dr_cust_code", "customer_code"),
    FieldSpec("OrderEmailAddress", "email_address", "dr_email", "order_email_address"),
    FieldSpec("Name", "name", "dr_cust_name", "name"),
    *(FieldSpec(f"Address{n}", f"address{n}", f"dr_addr_{n}", f"address{n}") for n in range(1, 7)),
    FieldSpec("PhoneNumber", "phone_number", "dr_phone", "phone_number"),
    FieldSpec("Postcode", "postcode", "dr_postcode", "postcode"),
    FieldSpec("ABN", "abn", "dr_abn", "abn"),
    FieldSpec("industrycode", "industry_code", "dr_industry_code", "industry_code"),
)
FIELD_MAP: dict[str, FieldSpec] = {spec.name: spec for spec in FIELDS}
# The contract matches field names case-insensitively.
_FIELD_BY_LOWER: dict[str, FieldSpec] = {spec.name.lower(): spec for spec in FIELDS}


def field_spec(name: str) -> FieldSpec:
    """The FieldSpec of a web field name in any letter case; KeyError when the contract has no such field."""
    try:
        return _FIELD_BY_LOWER[name.strip().lower()]
    except KeyError:
        raise KeyError(f"unknown web field {name!r}; known fields: {', '.join(FIELD_MAP)}") from None


# ------------------------------------------------------------------------------------- value checks

_EMAIL = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*$"
)
_PREFIX = re.compile(r"^[A-Z0-9_]{1,10}$")
_CRON_FIELD = re.compile(r"^[A-Za-z0-9*,/?-]+$")
_CRON_ALIASES = frozenset({"@hourly", "@daily", "@weekly", "@monthly", "@yearly", "@annually", "@midnight"})


# Line breaks and other control characters in an address, code, prefix or URL end up in email headers,
# ERP codes or links (RULES A4). Filters may span lines: there a tab or line break is only a space.
_LINE_BREAKS = frozenset("\u2028\u2029\x85")


def _control_character(value: str, *, multiline: bool = False) -> str | None:
    """How to name the first control character in `value` (e.g. "a line break"), or None when it has none."""
    for ch in value:
        if multiline and ch in "\t\r\n":
            continue
        if ch in "\r\n" or ch in _LINE_BREAKS:
            return "a line break"
        if unicodedata.category(ch) in ("Cc", "Cf"):
            return f"a control character (U+{ord(ch):04X})"
    return None


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value


def _email_address(value: str) -> str:
    if not _EMAIL.fullmatch(value):
        raise ValueError(f"{value!r} is not an email address (expected name@domain)")
    return value


def _int_as_text(value: Any) -> Any:
    """YAML reads `61` or `10001` as a number; codes and statuses are text, so take whole numbers as text."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


def _filter_query(value: str) -> str:
    try:
        validate_filter(value)
    except FilterError as exc:
        raise ValueError(str(exc)) from None
    return value


def _cron(value: str) -> str:
    text = value.strip()
    if text in _CRON_ALIASES:
        return text
    parts = text.split()
    if len(parts) != 5 or not all(_CRON_FIELD.match(part) for part in parts):
        raise ValueError(f"{value!r} is not a cron expression of five fields such as '*/5 * * * *'")
    return text


def _timezone(value: str) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {value!r} (use an IANA name such as 'UTC' or 'Australia/Sydney')"
        ) from None
    return value


def _http_url(value: str) -> str:
    if not re.fullmatch(r"https?://[^\s/?#]+(?:[/?#]\S*)?", value):
        raise ValueError(f"{value!r} is not an http:// or https:// address")
    return value.rstrip("/")


NonEmptyStr = Annotated[str, AfterValidator(_not_blank)]
CodeStr = Annotated[str, BeforeValidator(_int_as_text), AfterValidator(_not_blank)]
EmailStr = Annotated[str, AfterValidator(_email_address)]
FilterStr = Annotated[str, AfterValidator(_filter_query)]
CronStr = Annotated[str, AfterValidator(_cron)]
PositiveInt = Annotated[int, Field(gt=0)]
# Ranges the run can use: SQL intervals and dates stay far inside PostgreSQL's limits (A4).
Days = Annotated[int, Field(gt=0, le=36_500)]  # up to a hundred years
Hours = Annotated[int, Field(gt=0, le=8_760)]  # up to a year


def _normalise_fields(values: list[str]) -> list[str]:
    """Canonical spelling of each web field name, in order, without repeats."""
    result: list[str] = []
    unknown: list[str] = []
    for value in values:
        spec = _FIELD_BY_LOWER.get(value.strip().lower())
        if spec is None:
            unknown.append(value)
        elif spec.name not in result:
            result.append(spec.name)
    if unknown:
        names = ", ".join(repr(v) for v in unknown)
        raise ValueError(f"unknown web field {names}; known fields: {', '.join(FIELD_MAP)}")
    return result


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
                found = _control_character(text, multiline=multiline)
                if found:
                    shown = "the value" if info.field_name in _SECRET_KEYS else _show(text)  # never a password
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
        if not _PREFIX.fullmatch(value):
            raise ValueError(f"{value!r} must be 1 to 10 of A-Z, 0-9 and _ (it starts every new debtor code)")
        return value

    @field_validator("creation_fields")
    @classmethod
    def _known_creation_fields(cls, value: list[str]) -> list[str]:
        return _normalise_fields(value)

    @field_validator("sync_fields")
    @classmethod
    def _known_sync_fields(cls, value: list[str]) -> list[str]:
        fields = _normalise_fields(value)
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
        return _http_url(value)

    @field_validator("ui_url")
    @classmethod
    def _ui_url(cls, value: str | None) -> str | None:
        return None if value is None else _http_url(value)


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
        return _timezone(value)


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


# ------------------------------------------------------------------------------------------- errors


class SettingsError(ValueError):
    """Settings that cannot be used; the message lists every problem as `<dotted.key>: <what is wrong>`."""

    def __init__(self, problems: list[str] | str, source: str | None = None) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        self.source = source
        where = f" in {source}" if source else ""
        # One problem a line, always: easy to read and to grep, whatever the count.
        lines = [f"invalid settings{where}:"]
        for problem in self.problems:
            first, *rest = problem.splitlines() or [""]
            lines.append(f"  {first}")
            lines.extend(f"    {line}" for line in rest)
        super().__init__("\n".join(lines))

    @classmethod
    def from_validation_error(cls, error: ValidationError, source: str | None = None) -> SettingsError:
        return cls([_describe(item) for item in error.errors(include_url=False)], source)


_SECRET_KEYS = frozenset({"smtp_password"})
_RANGE_ERRORS = ("greater_than", "greater_than_equal", "less_than", "less_than_equal")


def _dotted(loc: tuple[int | str, ...]) -> str:
    key = ""
    for part in loc:
        if isinstance(part, int) and key:  # a list index; at the top level an int is a (bad) key
            key += f"[{part}]"
        else:
            key += f".{part}" if key else str(part)
    return key or "(top level)"


def _model_at(loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The settings model that holds the key at `loc`, for listing the keys it does accept."""
    model: type[BaseModel] = Settings
    for part in loc:
        field = model.model_fields.get(str(part))
        annotation = field.annotation if field else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        model = annotation
    return model


def _describe(item: Mapping[str, Any]) -> str:
    loc = tuple(item.get("loc", ()))
    key = _dotted(loc)
    kind = item.get("type", "")
    if kind == "extra_forbidden":
        model = _model_at(loc[:-1])
        allowed = list(model.model_fields) if model else []
        close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"{key}: unknown key{hint}; allowed keys here: {', '.join(allowed)}"
    if kind == "value_error":
        # Our own checks: the text after pydantic's "Value error, " prefix is the whole story.
        return f"{key}: {item.get('ctx', {}).get('error', item.get('msg'))}"
    message = item.get("msg", "invalid value")
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        # Pydantic would name our class; the user wrote YAML, so say it in YAML terms.
        message = "must be a section of keys (a mapping)"
    if kind.endswith("_type") or kind in ("literal_error", *_RANGE_ERRORS):
        if not any(part in _SECRET_KEYS for part in loc):
            message = f"{message} (got {_show(item.get('input'))})"
    return f"{key}: {message}"


def _show(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# -------------------------------------------------------------------------------------------- loading


class _StrictLoader(yaml.SafeLoader):
    """A safe YAML loader that refuses a key given twice, which plain YAML would silently overwrite."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _value_node in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            mark = key_node.start_mark
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} appears twice in the same section", mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)

# A settings file is a few kilobytes; these bounds make a hostile one fail in milliseconds (A4).
MAX_SETTINGS_BYTES = 256 * 1024
# Values the file stands for once every alias (`*name`) is expanded: a "billion laughs" file of 400 bytes
# stands for billions of values that validation would walk one by one.
MAX_SETTINGS_VALUES = 100_000


def _expanded_size(root: yaml.Node) -> int:
    """How many values `root` stands for with every alias expanded, counted without expanding anything.

    Aliases share nodes, so each node's size is computed once; the count stops as soon as it passes the
    bound. A node that contains itself (`&a [*a]`) is refused outright.
    """
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in open_nodes:
            raise yaml.constructor.ConstructorError(
                None, None, "an alias refers to the value that contains it", node.start_mark
            )
        open_nodes.add(key)
        total = 1
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        else:
            children = []
        for child in children:
            total += size(child)
            if total > MAX_SETTINGS_VALUES:
                break
        open_nodes.discard(key)
        sizes[key] = total
        return total

    return size(root)


def _read_yaml(text: str) -> Any:
    """Parse the settings text, refusing a file whose aliases expand past MAX_SETTINGS_VALUES values."""
    loader = _StrictLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None
        if _expanded_size(root) > MAX_SETTINGS_VALUES:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"the file's aliases (*name) expand to more than {MAX_SETTINGS_VALUES:,} values; "
                "a settings file needs a few hundred",
                root.start_mark,
            )
        return loader.construct_document(root)
    finally:
        loader.dispose()


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
        raise SettingsError.from_validation_error(exc, source) from None


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    return f"a {type(value).__name__}"


def config_path(path: str | os.PathLike[str] | None = None) -> Path:
    """The settings file to use: `path`, else $USERDEBTOR_CONFIG, else ./userdebtor.yaml."""
    if path is None:
        path = os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG_PATH
    return Path(path)


def load_settings(path: str | os.PathLike[str] | None = None) -> Settings:
    """Read and check the settings file; any problem is a SettingsError that names the file and the key.

    A missing file is an error rather than silent defaults, so a mistyped path cannot run the integration
    with settings nobody chose. An empty file means every default.
    """
    file = config_path(path)
    return parse_settings(read_settings_file(file), str(file))


def read_settings_file(path: str | os.PathLike[str] | None = None) -> Any:
    """The settings file's YAML as plain data, read within bounds (size, aliases); SettingsError otherwise."""
    file = config_path(path)
    source = str(file)
    try:
        # Read one byte past the bound rather than trusting the size a FIFO or device would report.
        with file.open("rb") as handle:
            raw = handle.read(MAX_SETTINGS_BYTES + 1)
        if len(raw) > MAX_SETTINGS_BYTES:
            raise SettingsError(f"the file is larger than {MAX_SETTINGS_BYTES:,} bytes; a settings file is a few "
                                "kilobytes", source)
        text = raw.decode("utf-8")
    except FileNotFoundError:
        raise SettingsError(
            f"settings file not found: {file.resolve()} (set {CONFIG_ENV} or create it; "
            "userdebtor.example.yaml shows every key)",
            source,
        ) from None
    except IsADirectoryError:
        raise SettingsError(f"{file.resolve()} is a directory, not a settings file", source) from None
    except UnicodeDecodeError as exc:
        raise SettingsError(
            f"the file is not UTF-8 text ({exc.reason} at byte {exc.start})", source
        ) from None
    except OSError as exc:
        raise SettingsError(f"cannot read {file.resolve()}: {exc.strerror or exc}", source) from None
    try:
        return _read_yaml(text)
    except yaml.YAMLError as exc:
        raise SettingsError(_yaml_problem(exc), source) from None


def _yaml_problem(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    # A repeated key parses fine but is refused by our loader: not a syntax error as such.
    what = "YAML error" if isinstance(exc, yaml.constructor.ConstructorError) else "YAML syntax error"
    if mark is not None:
        return f"{what} at line {mark.line + 1}, column {mark.column + 1}: {problem}"
    return f"{what}: {problem}"


def default_settings() -> Settings:
    """Every setting at its default (the values of the contract's example)."""
    return Settings()
