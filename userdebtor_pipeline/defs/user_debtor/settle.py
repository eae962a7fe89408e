"""A3: after a big run, the user/debtor plans look once more at what the run's own loads wrote, so the next run
need not.

A plan's window starts at its mark, taken when it planned. Every load after it writes rows above the mark: after a
first load, 1.2 million users and a million links, which the next run's plans would look at again, to find nothing
(about 10 s of the run right after a first load at a million). After the loads, the four plans are run again, in run
order and rolled back, twice: from their marks, and from now. When both find the same, nothing written since the
marks changes what the plans would do, and the marks move to now. What they find again of what this run's plans
found already (a record set aside, a proof asked for) is no new work, and is left out: the next run would count the
record as seen again, and the email asking for that proof is queued once. When they differ (U1 made a debtor from a
template outside the master filter, whose link U6 must suspend), the marks stay and the next run plans it.

Both passes cost about what the next run would have spent; the pass from now also costs what a plan looks at every
run (debtors set aside, users waiting for proof). So a run settles only when its loads wrote more than
SETTLE_ABOVE_ROWS rows the plans read: below that, the next run looks at them as cheaply.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from psycopg import sql
from sqlalchemy.engine import Connection

from userdebtor_pipeline.defs.common import mark_plan, plan_mark
from userdebtor_pipeline.defs.user_debtor.plan import USER_DEBTOR_PLANS, plan_parameters
from userdebtor_pipeline.settings import Settings

SETTLE_ABOVE_ROWS = 10_000

# A count and a checksum of a plan table's rows.
_PLANNED_SQL = sql.SQL("SELECT count(*), sum(hashtextextended(t::text, 0)) FROM {table} t")

# What this run's plans found that a plan finding it again does nothing with: a record set aside (seen again) and a
# proof asked for (the email for that set of accounts is queued once). Kept before the plans run again.
_KNOWN_SQL = (
    sa.text("CREATE TEMP TABLE _settle_known_set_aside ON COMMIT DROP AS"
            " SELECT rule, kind, subject FROM userdebtor.plan_set_aside"),
    sa.text("CREATE TEMP TABLE _settle_known_link_proof ON COMMIT DROP AS"
            " SELECT rule, user_id, customer_code FROM userdebtor.plan_link_proof"),
)
_NEW_RECORDS_SQL = sa.text("""
SELECT 'records set aside', count(*), sum(hashtextextended(t::text, 0)) FROM userdebtor.plan_set_aside t
 WHERE t.rule = ANY(:rules)
   AND NOT EXISTS (SELECT 1 FROM _settle_known_set_aside k
                    WHERE k.rule = t.rule AND k.kind = t.kind AND k.subject = t.subject)
UNION ALL
SELECT 'proofs asked for', count(*), sum(hashtextextended(t::text, 0)) FROM userdebtor.plan_link_proof t
 WHERE t.rule = ANY(:rules)
   AND NOT EXISTS (SELECT 1 FROM _settle_known_link_proof k
                    WHERE k.rule = t.rule AND k.user_id = t.user_id AND k.customer_code = t.customer_code)
""")

# Rows the plans read, written since the lowest mark, counted up to :cap through the change_seq indexes.
_WRITTEN_SINCE_SQL = sa.text("""
SELECT (SELECT count(*) FROM (SELECT 1 FROM userdebtor.web_user WHERE change_seq > :since LIMIT :cap) u)
     + (SELECT count(*) FROM (SELECT 1 FROM userdebtor.erp_debtor WHERE change_seq > :since LIMIT :cap) d)
     + (SELECT count(*) FROM (SELECT 1 FROM userdebtor.user_debtor_link WHERE change_seq > :since LIMIT :cap) l)
     + (SELECT count(*) FROM (SELECT 1 FROM userdebtor.erp_debtor_gone WHERE change_seq > :since LIMIT :cap) g)
""")
_NOW_SQL = sa.text("SELECT last_value FROM userdebtor.change_seq")


# By plan (its mark) and what was found: a count and a checksum.
Found = dict[tuple[str, str], tuple[int, Any]]


def _what_the_plans_find(conn: Connection, config: Settings, run_id: str, since: Mapping[str, int]) -> Found:
    """Each plan run from its `since`, in run order, and rolled back: a count and a checksum of what it plans to do,
    and of what it sets aside or asks proof for that this run's plans did not, by plan and kind."""
    savepoint = conn.begin_nested()
    try:
        found: Found = {}
        for plan in USER_DEBTOR_PLANS:
            plan.sql.run(conn, plan_parameters(config, run_id, since[plan.name], dry_run=False))
            with conn.connection.driver_connection.cursor() as cursor:  # this transaction's connection
                count, checksum = cursor.execute(
                    _PLANNED_SQL.format(table=sql.Identifier(*plan.table.split(".")))).fetchone()
            found[plan.name, "rows planned"] = (int(count), checksum)
            for kind, count, checksum in conn.execute(_NEW_RECORDS_SQL, {"rules": list(plan.rules)}):
                found[plan.name, f"new {kind}"] = (int(count), checksum)
        return found
    finally:
        savepoint.rollback()


@dataclass(frozen=True)
class Settled:
    """What was decided, in words, and the plans whose finds differed (their marks stay with the others')."""

    verdict: str
    differing: tuple[str, ...] = ()


def settle_user_debtor_plans(conn: Connection, config: Settings, run_id: str) -> Settled:
    """Move the four plans' marks past this run's own writes when those change nothing they would do (the module's
    docstring). The loads' writes must be staged first."""
    marks = {plan.name: plan_mark(conn, run_id, plan.name) for plan in USER_DEBTOR_PLANS}
    if any(mark is None for mark in marks.values()):
        return Settled("not settled: the user/debtor plans did not run")
    since = {name: int(mark) for name, mark in marks.items() if mark is not None}
    above = SETTLE_ABOVE_ROWS
    written = int(conn.execute(_WRITTEN_SINCE_SQL, {"since": min(since.values()), "cap": above + 1}).scalar_one())
    if written == 0:
        return Settled("not settled: nothing the plans read was written since they ran")
    if written <= above:
        return Settled(f"not settled: {written:,} rows written since the plans ran, few enough for the next run")
    now = int(conn.execute(_NOW_SQL).scalar_one())
    for statement in _KNOWN_SQL:
        conn.execute(statement)
    from_marks = _what_the_plans_find(conn, config, run_id, since)
    from_now = _what_the_plans_find(conn, config, run_id, dict.fromkeys(since, now))
    differing = [found for found in from_marks if from_marks[found] != from_now[found]]
    if differing:
        told = "; ".join(f"{plan}: {what}: {from_marks[plan, what][0]:,} from the marks, "
                         f"{from_now[plan, what][0]:,} from now" for plan, what in differing)
        return Settled(f"not settled: what the run wrote changes what the plans would do ({told}); the next run"
                       " plans it", tuple(dict.fromkeys(plan for plan, _ in differing)))
    for plan in USER_DEBTOR_PLANS:
        mark_plan(conn, run_id, plan.name, at=now)
    return Settled(f"settled: more than {above:,} rows written since the plans ran change nothing they would do")
