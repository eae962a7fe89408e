"""A sensor that starts a sync soon after someone registers or an instant-account user logs in.

The probe is two index-ordered max() lookups on the web database; the cursor holds the newest request and
login already asked for, so each new one starts one run (run_key), and nothing new starts none.
"""

from dataclasses import dataclass

import dagster as dg
import sqlalchemy as sa

from userdebtor_pipeline.defs.automation.runs import sync_in_progress, sync_starting_sensor
from userdebtor_pipeline.defs.resources import WebDatabase
from userdebtor_pipeline.paths import read_sql


@dataclass(frozen=True)
class PendingWork:
    """The newest pending registration request and unprocessed login event (0 when there is none)."""

    newest_request: int = 0
    newest_login: int = 0

    @classmethod
    def from_cursor(cls, cursor: str | None) -> "PendingWork":
        if not cursor:
            return cls()
        request, _, login = cursor.partition(":")
        return cls(int(request or 0), int(login or 0))

    def to_cursor(self) -> str:
        return f"{self.newest_request}:{self.newest_login}"

    def newer_than(self, seen: "PendingWork") -> bool:
        return self.newest_request > seen.newest_request or self.newest_login > seen.newest_login

    def merged(self, seen: "PendingWork") -> "PendingWork":
        return PendingWork(max(self.newest_request, seen.newest_request), max(self.newest_login, seen.newest_login))


def probe_pending_work(web: WebDatabase) -> PendingWork:
    with web.engine.connect() as conn:
        request, login = conn.execute(sa.text(read_sql("instant_accounts/probe_pending.sql"))).one()
    return PendingWork(int(request or 0), int(login or 0))


@sync_starting_sensor(
    "instant_account_requests_sensor",
    "Starts a sync when a registration request is pending or an instant-account login waits for its decision "
    "(I1, I2), so people get their answer in seconds rather than at the next schedule.",
)
def instant_account_requests_sensor(context: dg.SensorEvaluationContext,
                                    web: WebDatabase) -> dg.RunRequest | dg.SkipReason:
    seen = PendingWork.from_cursor(context.cursor)
    pending = probe_pending_work(web)
    if not pending.newer_than(seen):
        return dg.SkipReason(f"no new registration request or login (newest seen: {seen.to_cursor()})")
    if sync_in_progress(context):
        # The cursor stays: the next tick after that run asks again if the new work is still waiting.
        return dg.SkipReason("a sync is running; new requests wait for the next tick")
    context.update_cursor(pending.merged(seen).to_cursor())
    return dg.RunRequest(
        run_key=f"instant_accounts:{pending.to_cursor()}",
        tags={"userdebtor/trigger": "instant_account_requests_sensor"},
    )

