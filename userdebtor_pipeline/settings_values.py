"""The value checks of the settings file: the types its keys take and the checks each value passes (RULES A4).

Each check raises ValueError with the words the SettingsError shows after the key's dotted name.
"""

from __future__ import annotations

import re
import unicodedata
import zoneinfo
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field

from userdebtor_pipeline.contract import FIELD_BY_LOWER, FIELD_MAP
from userdebtor_pipeline.filters import FilterError, validate_filter

# Keys whose value is never shown in an error message.
SECRET_KEYS = frozenset({"smtp_password"})

_EMAIL = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*$"
)
CODE_PREFIX = re.compile(r"^[A-Z0-9_]{1,10}$")
_CRON_FIELD = re.compile(r"^[A-Za-z0-9*,/?-]+$")
_CRON_ALIASES = frozenset({"@hourly", "@daily", "@weekly", "@monthly", "@yearly", "@annually", "@midnight"})


# Line breaks and other control characters in an address, code, prefix or URL end up in email headers,
# ERP codes or links (RULES A4). Filters may span lines: there a tab or line break is only a space.
_LINE_BREAKS = frozenset("\u2028\u2029\x85")


def control_character(value: str, *, multiline: bool = False) -> str | None:
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


def timezone_name(value: str) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {value!r} (use an IANA name such as 'UTC' or 'Australia/Sydney')"
        ) from None
    return value


def http_url(value: str) -> str:
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


def normalise_fields(values: list[str]) -> list[str]:
    """Canonical spelling of each web field name, in order, without repeats."""
    result: list[str] = []
    unknown: list[str] = []
    for value in values:
        spec = FIELD_BY_LOWER.get(value.strip().lower())
        if spec is None:
            unknown.append(value)
        elif spec.name not in result:
            result.append(spec.name)
    if unknown:
        names = ", ".join(repr(v) for v in unknown)
        raise ValueError(f"unknown web field {names}; known fields: {', '.join(FIELD_MAP)}")
    return result



def show_value(value: Any) -> str:
    """A value as an error message shows it: YAML words for null and booleans, long text cut short."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
