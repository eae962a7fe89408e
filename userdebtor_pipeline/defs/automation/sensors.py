"""Sensors: start a sync when either system changed, and warn by email when a run fails.

`erp_or_web_changed_sensor` probes five index-backed max() values (a few milliseconds however large the
tables) and compares them with its cursor, a JSON object kept by Dagster, so it survives daemon restarts.
Deletes do not move a max(); the nightly full reconcile finds them.

A sync's own writes stamp dr_date_last_changed and updated_at too, so each sync is followed by one more run,
which finds those writes are echoes (U4) and writes nothing; after that the probe is still again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import dagster as dg
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from userdebtor_pipeline.db import check_reachable
from userdebtor_pipeline.defs.automation.failure import warn_about_failed_run
from userdebtor_pipeline.defs.automation.runs import PROBE_INTERVAL_SECONDS, sync_in_progress, sync_starting_sensor
from userdebtor_pipeline.defs.resources import ErpDatabase, SyncSettings, WebDatabase

# Each max() reads one end of an index (deb_master_last_changed_idx, crm_contact_last_changed_idx,
# sales_order_date_stamp_idx, the primary key of deb_conversion, app_user_updated_at_idx).
_ERP_PROBE_SQL = sa.text(
    "SELECT (SELECT max(dr_date_last_changed) FROM erp.deb_master) AS erp_debtors,"
    " (SELECT max(contact_date_last_changed) FROM erp.crm_contact) AS erp_contacts,"
    " (SELECT max(so_date_stamp) FROM erp.sales_order) AS erp_sales_orders,"
    " (SELECT max(conversion_seq) FROM erp.deb_conversion) AS erp_conversions"
)
_WEB_PROBE_SQL = sa.text("SELECT max(updated_at) AS web_users FROM web.app_user")


def _plain(value: Any) -> str | int | None:
    if value is None or isinstance(value, int):
        return value
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def probe_change_marks(erp: Engine, web: Engine) -> dict[str, str | int | None]:
    """The newest change stamp of each source, as JSON-ready values."""
    marks: dict[str, str | int | None] = {}
    for engine, name, query in ((erp, "ERP", _ERP_PROBE_SQL), (web, "web", _WEB_PROBE_SQL)):
        try:
            with engine.connect() as conn:
                row = conn.execute(query).mappings().one()
        except sa.exc.OperationalError:
            check_reachable(engine, name)  # raises a DatabaseError that names the database, never its password
            raise
        marks.update({key: _plain(value) for key, value in row.items()})
    return marks


def changed_sources(marks: Mapping[str, Any], seen: Mapping[str, Any]) -> list[str]:
    """The sources whose mark moved (either way: a restored backup is a change too)."""
    return sorted(key for key, value in marks.items() if seen.get(key) != value)


@sync_starting_sensor(
    "erp_or_web_changed_sensor",
    "Starts a changed-since sync when a debtor, contact, sales order or code conversion changed in the ERP, or a "
    "user on the web: a cheap probe of each table's newest change stamp against the cursor.",
)
def erp_or_web_changed_sensor(context: dg.SensorEvaluationContext, erp: ErpDatabase,
                              web: WebDatabase) -> dg.RunRequest | dg.SkipReason:
    seen: dict[str, Any] = json.loads(context.cursor) if context.cursor else {}
    marks = probe_change_marks(erp.engine, web.engine)
    moved = changed_sources(marks, seen)
    if not moved:
        return dg.SkipReason("nothing changed in the ERP or on the web since the last run request")
    if sync_in_progress(context):
        # The cursor stays, so the tick after that run still sees these changes.
        return dg.SkipReason(f"{', '.join(moved)} changed; a sync is already queued or running")
    cursor = json.dumps(marks, sort_keys=True)
    context.update_cursor(cursor)
    context.log.info("changed since the last request: %s", ", ".join(moved))
    return dg.RunRequest(
        run_key=f"changed:{hashlib.sha256(cursor.encode()).hexdigest()[:20]}",
        tags={"userdebtor/trigger": "erp_or_web_changed_sensor", "userdebtor/changed": ",".join(moved)[:200]},
    )


@dg.run_failure_sensor(
    name="sync_run_failed_warning",
    minimum_interval_seconds=PROBE_INTERVAL_SECONDS,
    # On by default: the warning is most needed when nobody is watching the UI.
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Emails the warning address (user_debtor.warning_emails_to) once per failed or held run, naming "
    "the failed step, the error and the checks that held it, then delivers the outbox.",
)
def sync_run_failed_warning(context: dg.RunFailureSensorContext, web: WebDatabase, settings: SyncSettings) -> None:
    # Returning nothing lets Dagster hand this sensor every failed run of the tick, not only the first.
    warning = warn_about_failed_run(context.instance, context.dagster_run, context.failure_event, web.engine,
                                    settings.path)
    queued = "queued" if warning.email_id is not None else "not queued (sent before, or no recipient)"
    context.log.info("run %s %s: warning email %s; %s email(s) delivered", warning.failed.run_id,
                     warning.failed.outcome, queued, warning.delivery.sent)


