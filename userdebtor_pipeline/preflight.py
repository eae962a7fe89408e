"""Settings that cannot work are refused up front (RULES A4).

`userdebtor sync` and a run launched from the Dagster UI call `check_before_writing` first: what the settings
file alone cannot tell (a role missing from `web.role`, a templates folder that is missing or holds a
template the sandbox refuses) is checked against the web database and the templates, before anything is
written. Every problem is reported at once, under its dotted key, as a SettingsError (exit status 2).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from userdebtor_pipeline.email.render import template_problems
from userdebtor_pipeline.settings import Settings, SettingsError, config_path

__all__ = ["check_before_writing", "settings_problems"]

_ROLES_SQL = sa.text("SELECT role_name FROM web.role WHERE role_name = ANY(:names)")


def _named_roles(settings: Settings) -> dict[str, list[str]]:
    """Each role the settings name, with the dotted keys that name it."""
    keys: dict[str, list[str]] = {}
    named = [
        *((f"user_debtor.roles_requiring_erp_account[{i}]", role)
          for i, role in enumerate(settings.user_debtor.roles_requiring_erp_account)),
        ("user_debtor.default_role_for_new_users", settings.user_debtor.default_role_for_new_users),
        ("instant_accounts.default_role", settings.instant_accounts.default_role),
    ]
    for key, role in named:
        keys.setdefault(role, []).append(key)
    return keys


def settings_problems(settings: Settings, web: Engine) -> list[str]:
    """Why these settings cannot work with this web database and these templates; [] when they can."""
    problems: list[str] = []
    roles = _named_roles(settings)
    with web.connect() as conn:
        known = set(conn.execute(_ROLES_SQL, {"names": list(roles)}).scalars())
    for role, keys in roles.items():
        if role not in known:
            problems += [f"{key}: role {role!r} does not exist in web.role" for key in keys]
    templates_dir = settings.email.templates_dir
    problems += [f"email.templates_dir: {problem}" for problem in template_problems(templates_dir)]
    return problems


def check_before_writing(settings: Settings, web: Engine, source: str | None = None) -> None:
    """Raise a SettingsError naming every key that cannot work, before a run reads or writes anything."""
    problems = settings_problems(settings, web)
    if problems:
        raise SettingsError(problems, source or str(config_path()))
