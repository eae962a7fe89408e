"""U7: the change guard's verdict, taken once per run from the plan, before any load writes.

The verdict is kept with the run (userdebtor.sync_run.summary): the guarded loads and the blocking check read the
same verdict, so a load that runs later in the run (after others changed the links) cannot see another one.
A hold holds the user/debtor writes alone; contacts, instant accounts, orders and delivery go on.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from userdebtor_pipeline.settings import Settings

_COUNT_PLANNED_CHANGES = (
    "SELECT (SELECT count(*) FROM userdebtor.user_debtor_link WHERE state = 'active'),"
    " (SELECT count(*) FROM (SELECT link_id FROM userdebtor.plan_field_change"
    "    WHERE direction IN ('to_erp', 'to_web')"
    "  UNION SELECT link_id FROM userdebtor.plan_link_exit WHERE action IN ('deleted', 'out_of_scope')) t)"
)


@dataclass(frozen=True)
class GuardVerdict:
    linked: int
    touched: int
    min_linked: int
    limit: float
    lifted: bool

    @property
    def fraction(self) -> float:
        return self.touched / self.linked if self.linked else 0.0

    @property
    def guarded(self) -> bool:
        """The plan changes too much (with too few pairs a share means little, and the guard stands aside)."""
        return self.linked >= self.min_linked and self.fraction > self.limit

    @property
    def holds(self) -> bool:
        return self.guarded and not self.lifted

    @property
    def summary(self) -> str:
        share = f"{self.touched} of {self.linked} linked pairs"
        if self.guarded and self.lifted:
            return f"{share} change ({self.fraction:.1%}); the guard was lifted for this run"
        if self.guarded:
            return (
                f"{share} would change, deactivate or unlink ({self.fraction:.1%}), more than "
                f"safety.max_change_fraction {self.limit:.0%}: nothing of the user/debtor sync was written. "
                "Check the data, then run `userdebtor sync --allow-large-change` if it is right."
            )
        return f"{share} change ({self.fraction:.1%}), within the limit"


def record_guard_verdict(conn: Connection, run_id: str, config: Settings, lifted: bool) -> GuardVerdict:
    """Count what the plan would change and keep the verdict with the run."""
    linked, touched = conn.execute(sa.text(_COUNT_PLANNED_CHANGES)).one()
    verdict = GuardVerdict(linked=int(linked), touched=int(touched), min_linked=config.safety.guard_min_linked_pairs,
                           limit=config.safety.max_change_fraction, lifted=lifted)
    conn.execute(
        sa.text("UPDATE userdebtor.sync_run SET summary = summary || jsonb_build_object('change_guard',"
                " CAST(:verdict AS jsonb)) WHERE run_id = :run_id"),
        {"verdict": json.dumps(asdict(verdict)), "run_id": run_id},
    )
    return verdict


def read_guard_verdict(conn: Connection, run_id: str) -> GuardVerdict:
    stored = conn.execute(
        sa.text("SELECT summary->'change_guard' FROM userdebtor.sync_run WHERE run_id = :run_id"), {"run_id": run_id}
    ).scalar()
    if stored is None:
        raise RuntimeError(f"run {run_id} has no change guard verdict: user_debtor_plan did not run")
    return GuardVerdict(**stored)
