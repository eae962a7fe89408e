"""The per-field SQL holds to the contract's field map (userdebtor_pipeline/contract.py).

The SQL that names each sync field stays literal, readable SQL; these tests read it and fail when a field of the
map is missing from one of its places, or a place names a field the map does not have. No database is needed.
"""

from __future__ import annotations

import re

from userdebtor_pipeline.contract import FIELDS, SYNCABLE_FIELDS
from userdebtor_pipeline.paths import read_sql

SYNCED = {spec.name: spec for spec in SYNCABLE_FIELDS}


def _step(relative: str, name: str) -> str:
    text = read_sql(relative)
    start = text.index(f"-- step: {name}\n")
    end = text.find("-- step:", start + 1)
    return text[start : end if end >= 0 else len(text)]


def test_plan_field_changes_compares_every_sync_field():
    """U4: the VALUES list names each field with its base, web and ERP columns."""
    compare = _step("user_debtor/plan_field_changes.sql", "compare")
    rows = re.findall(r"\('(\w+)',\s*p\.(\w+),\s*p\.(\w+),\s*p\.(\w+)\)", compare)
    assert sorted(rows) == sorted(
        (s.name, s.base_column, s.user_column, s.debtor_column) for s in SYNCABLE_FIELDS
    )


def test_plan_field_changes_reads_every_sync_column_of_the_pair():
    pair = _step("user_debtor/plan_field_changes.sql", "compare").split("pair AS (", 1)[1].split("FROM candidate", 1)[0]
    assert set(re.findall(r"\bu\.(\w+)", pair)) - {"updated_at"} == {s.user_column for s in SYNCABLE_FIELDS}
    assert set(re.findall(r"\bd\.(\w+)", pair)) - {"dr_date_last_changed"} == {s.debtor_column for s in SYNCABLE_FIELDS}


def test_plan_field_changes_takes_apart_every_pair_with_a_field_off_its_base():
    """U4: the pairs left out before the field-by-field compare are those whose every sync field equals its base on
    both sides: each row comparison pairs each field's web (or ERP) column with its base column."""
    pair = _step("user_debtor/plan_field_changes.sql", "compare").split("pair AS (", 1)[1].split("), field AS", 1)[0]
    rows = [re.findall(r"\b([udl])\.(\w+)", row) for row in re.findall(r"\(([^()]*)\)\s*IS DISTINCT FROM", pair)]
    bases = [re.findall(r"\bl\.(\w+)", row) for row in re.findall(r"IS DISTINCT FROM\s*\(([^()]*)\)", pair)]
    assert len(rows) == len(bases) == 2
    for side, base in zip(rows, bases, strict=True):
        alias = {a for a, _ in side}
        column = "user_column" if alias == {"u"} else "debtor_column"
        assert sorted(zip((c for _, c in side), base, strict=True)) == sorted(
            (getattr(s, column), s.base_column) for s in SYNCABLE_FIELDS)


def _case_lines(sql: str, alias: str, way: str) -> set[tuple[str, ...]]:
    pattern = rf"(\w+)\s*=\s*CASE WHEN c\.(\w+)_way {way} THEN c\.(\w+) ELSE {alias}\.(\w+) END"
    return set(re.findall(pattern, sql))


def test_erp_writes_every_sync_field():
    """U4 to the ERP: one CASE line per field, each writing its deb_master column from its change."""
    lines = _case_lines(read_sql("user_debtor/apply_field_changes_erp.sql"), "d", "= 'to_erp'")
    assert lines == {(s.debtor_column, s.sync_key, s.sync_key, s.debtor_column) for s in SYNCABLE_FIELDS}


def test_web_writes_every_sync_field_and_its_base():
    """U4 to the web: one CASE line per field for the user, and one for the link's new base."""
    users = _case_lines(_step("user_debtor/apply_field_changes_web.sql", "users"), "u", "= 'to_web'")
    assert users == {(s.user_column, s.sync_key, s.sync_key, s.user_column) for s in SYNCABLE_FIELDS}
    bases = _case_lines(_step("user_debtor/apply_field_changes_web.sql", "bases"), "l", r"IN \([^)]*\)")
    assert bases == {(s.base_column, s.sync_key, s.sync_key, s.base_column) for s in SYNCABLE_FIELDS}


def test_changes_for_the_erp_carry_every_sync_field():
    select = read_sql("user_debtor/field_changes_to_erp.sql").split("SELECT", 1)[1].split("FROM", 1)[0]
    columns = {c.strip() for c in select.split(",")}
    assert columns == {"dr_cust_code"} | {c for s in SYNCABLE_FIELDS for c in (s.sync_key, f"{s.sync_key}_way")}


def test_changes_by_pair_view_and_link_bases_hold_every_sync_field():
    """The state schema: the by-pair view pivots each field to its key, the link keeps a base per field."""
    schema = read_sql("state/migrations/0001_initial.sql")
    view = re.findall(
        r"max\(new_value\) FILTER \(WHERE field = '(\w+)'\) AS (\w+), "
        r"max\(direction\) FILTER \(WHERE field = '(\w+)'\) AS (\w+)_way",
        schema,
    )
    assert sorted(view) == sorted((s.name, s.sync_key, s.name, s.sync_key) for s in SYNCABLE_FIELDS)
    link = schema.split("CREATE TABLE userdebtor.user_debtor_link (", 1)[1].split(");", 1)[0]
    assert set(re.findall(r"^\s+(base_\w+)\s", link, re.MULTILINE)) == {s.base_column for s in SYNCABLE_FIELDS}


def test_new_links_take_a_base_for_every_sync_field():
    """U1/U2/U3: a new link's base per field, from the ERP's column (or the web's for a matched pair)."""
    links = _step("user_debtor/create_links.sql", "links")
    bases = links.split("user_debtor_link (", 1)[1].split(")", 1)[0]
    assert {c for c in re.findall(r"\w+", bases) if c.startswith("base_")} == {s.base_column for s in SYNCABLE_FIELDS}
    cases = re.findall(r"THEN d\.(\w+) WHEN d\.(\w+) IS NOT NULL THEN u\.(\w+) END", links)
    assert sorted(cases) == sorted((s.debtor_column, s.debtor_column, s.user_column) for s in SYNCABLE_FIELDS)


def test_new_debtors_take_every_creation_field():
    """U1: each field but the code (the new code is numbered) comes from the user when it is a creation field."""
    rows = read_sql("user_debtor/new_debtor_rows.sql")
    named = re.findall(r"CASE WHEN '(\w+)' = ANY\(:creation_fields\) THEN (?:coalesce\(nullif\(btrim\()?u\.(\w+)", rows)
    assert sorted(named) == sorted((s.name, s.user_column) for s in FIELDS if s.name != "Code")
