"""What a seed is asked for: its settings, its error, the numbering the ERP and web rows share."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

# Bulk debtor codes are C100001, C100002, ...; codes of conversions continue after the last of them.
FIRST_DEBTOR_NUMBER = 100_001


# Shares of web users by `user_no % 100`: 0-49 new B2C, 50-57 B2C matching a debtor's email,
# 58-97 B2B, 98 malformed email, 99 B2C awaiting approval (the numbers of sql/seed/insert_users.sql).
MATCH_FIRST, MATCH_LAST = 50, 57


class SeedError(RuntimeError):
    """The seed cannot run: tables already hold rows, or an argument is out of range."""


@dataclass(frozen=True)
class SeedSettings:
    debtors: int
    users: int
    seed: int
    prefix: str
    width: int
    template_code: str
    cash_code: str
    excluded_codes: tuple[str, ...]
    master_type: str
    orders: int
    contacts: int
    conversions: int
    as_of: datetime


@dataclass(frozen=True)
class Conversion:
    seq: int
    old_code: str
    new_code: str
    converted_at: datetime
