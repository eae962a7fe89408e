"""A3: after a big run, the user/debtor plans look once more at what the run's own loads wrote, so the next run
need not.

A plan's window starts at its mark, taken when it planned. Every load after it writes rows above the mark: after a
first load, 1.2 million users and a million links, which the next run's plans would look at again, to find nothing
(14 s of the run right after a first load at a million). After the loads, the four plans are run again, in run
order and rolled back, twice: from their marks, and from now. When both find the same rows, nothing written since
the marks changes what the plans would do, and the marks move to now. When they differ (a user M1 made has the
email of a debtor waiting for one), the marks stay and the next run plans it.

Both passes cost about what the next run would have spent; the pass from now also costs what a plan looks at every
run (debtors set aside, users waiting for proof). So a run settles only when its loads wrote more than
SETTLE_ABOVE_ROWS rows the plans read: below that, the next run looks at them as cheaply.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from userdebtor_pipeline.defs.common import mark_plan, plan_mark
from userdebtor_pipeline.defs.sql_file import SqlFile
from userdebtor_pipeline.defs.user_debtor.plan import (
    DEBTORS_TO_CREATE_SQL,
    FIELD_CHANGES,
    FIELD_CHANGES_SQL,
    LINK_EXITS_SQL,
    USERS_TO_CREATE_SQL,
    plan_parameters,
)
from userdebtor_pipeline.settings import Settings

SETTLE_ABOVE_ROWS = 10_000


@dataclass(frozen=True)
class SettledPlan:
    """A plan that is settled: its mark, its SQL, and what it found (a count and a checksum of each of its tables)."""

    mark: str
    sql: SqlFile
    found: str


# In run order: U2 reads U1's plan.
PLANS = (
    SettledPlan("debtors_to_create", DEBTORS_TO_CREATE_SQL, """
        SELECT count(*), sum(hashtextextended(t::text, 0)) FROM userdebtor.plan_debtor_create t
        UNION ALL SELECT count(*), sum(hashtextextended(t::text, 0)) FROM userdebtor.plan_set_aside t
                   WHERE t.rule = 'U1'
        UNION ALL SELECT count(*), sum(hashtextextended(t::text, 0)) FROM userdebtor.plan_link_proof t
                   WHERE t.rule = 'U1'"""),
    SettledPlan("users_to_create", USERS_TO_CREATE_SQL, """
        SELECT count(*), sum(hashtextextended(t::text, 0)) FROM userdebtor.plan_user_create t
        UNION ALL SELECT count(*), sum(hashtextextended(t::text, 0)) FROM userdebtor.plan_set_aside t
                   WHERE t.rule = 'U2'
        UNION ALL SELECT count(*), sum(hashtextextended(t::text, 0)) FROM userdebtor.plan_link_proof t
                   WHERE t.rule = 'U2'"""),
    SettledPlan(FIELD_CHANGES, FIELD_CHANGES_SQL, """
        SELECT count(*), sum(hashtextextended(t::text, 0)) FROM userdebtor.plan_field_change t
        UNION ALL SELECT count(*), sum(hashtextextended(t::text, 0)) FROM userdebtor.plan_set_aside t
                   WHERE t.rule IN ('U4', 'U5')"""),
    SettledPlan("link_exits", LINK_EXITS_SQL, """
        SELECT count(*), sum(hashtextextended(t::text, 0)) FROM userdebtor.plan_link_exit t
        UNION ALL SELECT count(*), sum(hashtextextended(t::text, 0)) FROM userdebtor.plan_set_aside t
                   WHERE t.rule = 'U6'"""),
)

# Rows the plans read, written since the lowest mark, counted up to :cap through the change_seq indexes.
_WRITTEN_SINCE_SQL = sa.text("""
SELECT (SELECT count(*) FROM (SELECT 1 FROM userdebtor.web_user WHERE change_seq > :since LIMIT :cap) u)
     + (SELECT count(*) FROM (SELECT 1 FROM userdebtor.erp_debtor WHERE change_seq > :since LIMIT :cap) d)
     + (SELECT count(*) FROM (SELECT 1 FROM userdebtor.user_debtor_link WHERE change_seq > :since LIMIT :cap) l)
     + (SELECT count(*) FROM (SELECT 1 FROM userdebtor.erp_debtor_gone WHERE change_seq > :since LIMIT :cap) g)
""")
_NOW_SQL = sa.text("SELECT last_value FROM userdebtor.change_seq")


def _what_the_plans_find(conn: Connection, config: Settings, run_id: str, since: Mapping[str, int]) -> list[tuple]:
    """Each plan run from its `since`, in run order, and rolled back: a count and a checksum of each thing found."""
    savepoint = conn.begin_nested()
    try:
        found: list[tuple] = []
        for plan in PLANS:
            plan.sql.run(conn, plan_parameters(config, run_id, since[plan.mark], dry_run=False))
            found += [tuple(row) for row in conn.execute(sa.text(plan.found))]
        return found
    finally:
        savepoint.rollback()


def settle_user_debtor_plans(conn: Connection, config: Settings, run_id: str) -> str:
    """Move the four plans' marks past this run's own writes when those change nothing they would do (the module's
    docstring); what was decided, in words. The loads' writes must be staged first."""
    marks = {plan.mark: plan_mark(conn, run_id, plan.mark) for plan in PLANS}
    if any(mark is None for mark in marks.values()):
        return "not settled: the user/debtor plans did not run"
    since = {name: int(mark) for name, mark in marks.items() if mark is not None}
    above = SETTLE_ABOVE_ROWS
    written = int(conn.execute(_WRITTEN_SINCE_SQL, {"since": min(since.values()), "cap": above + 1}).scalar_one())
    if written == 0:
        return "not settled: nothing the plans read was written since they ran"
    if written <= above:
        return f"not settled: {written:,} rows written since the plans ran, few enough for the next run to look at"
    now = int(conn.execute(_NOW_SQL).scalar_one())
    if _what_the_plans_find(conn, config, run_id, since) != _what_the_plans_find(
            conn, config, run_id, dict.fromkeys(since, now)):
        return "not settled: what the run wrote changes what the plans would do; the next run plans it"
    for plan in PLANS:
        mark_plan(conn, run_id, plan.mark, at=now)
    return f"settled: more than {above:,} rows written since the plans ran change nothing they would do"
