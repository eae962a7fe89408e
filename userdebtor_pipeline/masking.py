"""Secrets stay secret (RULES A5): the one function that hides passwords in a URL or in any text holding one.

Every URL that is shown, logged or stored, and every error that may quote one (a database error, a run's
failure), goes through `mask_secrets` before it reaches a person, a log, a report, the Dagster event log or
an email. A password may stand in the URL's `user:pass@` part or in its query (`?password=`, any case, or
`&password=`), and libpq's own connection strings say `password=...` too: all of them become `***`.
"""

from __future__ import annotations

import re

from sqlalchemy.engine import URL

__all__ = ["MASK", "error_in_brief", "mask_secrets"]

MASK = "***"

# scheme://user:PASSWORD@host; greedy up to the last `@` before the host ends, as a password may hold `@`.
_USERINFO_PASSWORD = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*://[^:/?#@\s]*:)[^\s/?#]*(?=@)")
# password=VALUE in a URL's query or a libpq connection string; quoted values as libpq writes them.
_PASSWORD_PARAMETER = re.compile(
    r"(?P<head>\bpassword\s*=\s*)(?:'(?:[^'\\]|\\.)*'|\"[^\"]*\"|[^&\s'\";,)]+)", re.IGNORECASE
)


def mask_secrets(value: str | URL | None) -> str:
    """`value` (a URL, or text that may quote URLs or connection strings) with every password as `***`."""
    if value is None:
        return ""
    text = value.render_as_string(hide_password=True) if isinstance(value, URL) else str(value)
    text = _USERINFO_PASSWORD.sub(lambda m: m.group("head") + MASK, text)
    return _PASSWORD_PARAMETER.sub(lambda m: m.group("head") + MASK, text)


_MAX_LISTED = 10


def error_in_brief(message: str | None) -> str:
    """An error as a person reads it in a summary or an email: its first line, masked.

    A message whose first line announces a list (a SettingsError: "invalid settings in ...:" and one problem
    a line) keeps its first items, so the summary still names the keys.
    """
    lines = [line.strip() for line in (message or "").strip().splitlines() if line.strip()]
    if not lines:
        return ""
    brief = lines[0]
    if brief.endswith(":") and len(lines) > 1:
        brief = " ".join([brief, *lines[1 : _MAX_LISTED + 1]])
    return mask_secrets(brief)
