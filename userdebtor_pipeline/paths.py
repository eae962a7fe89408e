"""Where the project's files live: the SQL and deploy folders (checkout or wheel) and USERDEBTOR_HOME."""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


@cache
def sql_dir() -> Path:
    """The `sql/` folder: inside the package in a wheel, beside it in a checkout."""
    for candidate in (_PACKAGE_DIR / "sql", _PACKAGE_DIR.parent / "sql"):
        if (candidate / "state").is_dir():
            return candidate
    raise FileNotFoundError("the project's sql/ folder is missing from this installation")


@cache
def deploy_dir() -> Path:
    """The `deploy/` folder (the Dagster instance's dagster.yaml): inside the package in a wheel, beside it in a
    checkout."""
    for candidate in (_PACKAGE_DIR / "deploy", _PACKAGE_DIR.parent / "deploy"):
        if (candidate / "dagster.yaml").is_file():
            return candidate
    raise FileNotFoundError("the project's deploy/dagster.yaml is missing from this installation")


def sql_path(relative: str) -> Path:
    """Where one SQL file lives. A domain's SQL sits in its folder, `defs/<domain>/sql/` ('user_debtor/x.sql'); the
    schemas of both systems and of the integration's state stay in the top `sql/` folder ('state/migrations/...')."""
    domain, _, name = relative.partition("/")
    in_domain = _PACKAGE_DIR / "defs" / domain / "sql" / name
    return in_domain if in_domain.is_file() else sql_dir() / relative


@cache
def read_sql(relative: str) -> str:
    """Text of one SQL file, e.g. read_sql('user_debtor/plan_debtors_to_create.sql')."""
    return sql_path(relative).read_text(encoding="utf-8")


def home_dir() -> Path:
    """USERDEBTOR_HOME: the embedded database and the local mail folder live here."""
    home = Path(os.environ.get("USERDEBTOR_HOME", ".userdebtor")).resolve()
    home.mkdir(parents=True, exist_ok=True)
    return home


def mail_dir() -> Path:
    """The local mail folder (a Maildir) that the default transport delivers into."""
    return home_dir() / "mail"
