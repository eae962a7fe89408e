"""The contract's columns and its web <-> ERP field map (CONTRACT.md, "Field mapping"), in one place.

Python reads the map from here: the settings (`creation_fields`, `sync_fields`), the filter columns, the U1 and U4
loads. The per-field SQL (`plan_field_changes.sql`'s VALUES list, the CASE lines of `apply_field_changes_*.sql`,
`field_changes_to_erp.sql`, the `plan_field_change_by_pair` view) stays literal SQL, readable and runnable by hand
in psql, because a rendered statement could not be read, explained or diffed as written; instead
tests/test_contract_sql.py holds each of those files to this map (every field appears there, no other).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import Any

import sqlalchemy as sa

__all__ = [
    "APP_USER_COLUMNS",
    "CRM_CONTACT_COLUMNS",
    "DEB_MASTER_COLUMNS",
    "SALES_ORDER_COLUMNS",
    "FIELDS",
    "FIELD_MAP",
    "SYNCABLE_FIELDS",
    "FieldSpec",
    "deb_master_table",
    "field_spec",
]

DEB_MASTER_COLUMNS: tuple[str, ...] = (
    "dr_cust_code",
    "dr_cust_name",
    "dr_cust_type",
    "dr_email",
    "dr_phone",
    "dr_addr_1",
    "dr_addr_2",
    "dr_addr_3",
    "dr_addr_4",
    "dr_addr_5",
    "dr_addr_6",
    "dr_postcode",
    "dr_abn",
    "dr_industry_code",
    "dr_price_code",
    "dr_tax_code",
    "dr_territory",
    "dr_credit_limit",
    "dr_account_status",
    "dr_date_created",
    "dr_date_last_changed",
)


# The columns the integration reads of the other tables it stages (the rest of each table is not its business).
CRM_CONTACT_COLUMNS: tuple[str, ...] = (
    "contact_id", "contact_email", "contact_first_name", "contact_surname", "contact_phone", "contact_active",
    "contact_date_last_changed",
)
SALES_ORDER_COLUMNS: tuple[str, ...] = (
    "so_order_no", "so_cust_code", "so_order_date", "so_order_status", "so_source", "so_email", "so_order_total",
    "so_date_stamp",
)
APP_USER_COLUMNS: tuple[str, ...] = (
    "user_id", "email_address", "name", "phone_number", "address1", "address2", "address3", "address4", "address5",
    "address6", "postcode", "abn", "industry_code", "role", "default_customer_code", "status",
    "email_verified",  # A1: whether the user's address is proven
    "updated_at",
)


@cache
def deb_master_table() -> sa.Table:
    """A SQLAlchemy description of `erp.deb_master` as the contract defines it (not reflected)."""
    types: dict[str, sa.types.TypeEngine[Any]] = {
        "dr_credit_limit": sa.Numeric(14, 2),
        "dr_date_created": sa.DateTime(timezone=True),
        "dr_date_last_changed": sa.DateTime(timezone=True),
    }
    not_null = {
        "dr_cust_code",
        "dr_cust_name",
        "dr_cust_type",
        "dr_account_status",
        "dr_date_created",
        "dr_date_last_changed",
    }
    columns = [
        sa.Column(
            name,
            types.get(name, sa.Text()),
            primary_key=name == "dr_cust_code",
            nullable=name not in not_null,
        )
        for name in DEB_MASTER_COLUMNS
    ]
    return sa.Table("deb_master", sa.MetaData(), *columns, schema="erp")


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One web field of the contract's Field mapping and the columns it means on each side."""

    name: str  # canonical setting value, e.g. "OrderEmailAddress"
    user_column: str  # web.app_user
    debtor_column: str  # erp.deb_master
    customer_column: str  # web.customer
    # The field's short name in the integration's state: `base_<sync_key>` of a link, `<sync_key>` and
    # `<sync_key>_way` of `plan_field_change_by_pair`; empty for the code, which no field sync changes (C1-C4).
    sync_key: str = field(default="", compare=False)

    @property
    def base_column(self) -> str:
        """The column of `userdebtor.user_debtor_link` that holds the value both sides last agreed on."""
        return f"base_{self.sync_key}"


FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec("Code", "default_customer_code", "dr_cust_code", "customer_code"),
    FieldSpec("OrderEmailAddress", "email_address", "dr_email", "order_email_address", "email"),
    FieldSpec("Name", "name", "dr_cust_name", "name", "name"),
    *(FieldSpec(f"Address{n}", f"address{n}", f"dr_addr_{n}", f"address{n}", f"address{n}") for n in range(1, 7)),
    FieldSpec("PhoneNumber", "phone_number", "dr_phone", "phone_number", "phone_number"),
    FieldSpec("Postcode", "postcode", "dr_postcode", "postcode", "postcode"),
    FieldSpec("ABN", "abn", "dr_abn", "abn", "abn"),
    FieldSpec("industrycode", "industry_code", "dr_industry_code", "industry_code", "industry_code"),
)
FIELD_MAP: dict[str, FieldSpec] = {spec.name: spec for spec in FIELDS}
# The fields a sync may change (U4): every one but the code.
SYNCABLE_FIELDS: tuple[FieldSpec, ...] = tuple(spec for spec in FIELDS if spec.sync_key)
# The contract matches field names case-insensitively.
FIELD_BY_LOWER: dict[str, FieldSpec] = {spec.name.lower(): spec for spec in FIELDS}


def field_spec(name: str) -> FieldSpec:
    """The FieldSpec of a web field name in any letter case; KeyError when the contract has no such field."""
    try:
        return FIELD_BY_LOWER[name.strip().lower()]
    except KeyError:
        raise KeyError(f"unknown web field {name!r}; known fields: {', '.join(FIELD_MAP)}") from None
