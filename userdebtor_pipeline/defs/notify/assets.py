"""Notify: deliver the emails the loads queued, settle the plans after a big run, then close the run and move the plan
watermarks."""

from collections.abc import Sequence

import dagster as dg
import sqlalchemy as sa

from userdebtor_pipeline.defs.common import MOVE_PLAN_WATERMARKS_SQL, Stopwatch
from userdebtor_pipeline.defs.extract.assets import stage_what_the_loads_wrote
from userdebtor_pipeline.defs.resources import ErpDatabase, RunOptions, SyncSettings, WebDatabase
from userdebtor_pipeline.defs.user_debtor.settle import settle_user_debtor_plans
from userdebtor_pipeline.email import deliver_with_settings, release_held_emails
from userdebtor_pipeline.paths import mail_dir
from userdebtor_pipeline.progress import Progress

GROUP = "notify"


def build_notify_assets(loads: Sequence[dg.AssetKey], holds: Sequence[dg.AssetKey] = ()) -> list[dg.AssetsDefinition]:
    """The notify stage runs after every load of the run, whichever domains there are.

    `holds` are assets whose blocking checks hold loads from inside them (U7): the emails still go out, but the
    run is not closed as good, so the plan watermark stays and the held writes are planned again.
    """

    @dg.asset(
        group_name=GROUP,
        deps=list(loads),
        description="Releases emails held for approval (U3) and delivers the outbox (E1): Maildir or SMTP.",
    )
    def emails_delivered(context: dg.AssetExecutionContext, web: WebDatabase, settings: SyncSettings,
                         run_options: RunOptions) -> dg.MaterializeResult:
        watch = Stopwatch()
        if run_options.dry_run:
            return dg.MaterializeResult(metadata={"dry_run": True, "sent": 0})
        config = settings.get()
        with web.engine.begin() as conn:
            released = release_held_emails(conn)
        with Progress("emails delivered", unit="emails", log=context.log) as progress:
            report = deliver_with_settings(web.engine, config.email, mail_dir=mail_dir(), progress=progress,
                                           from_start=run_options.full)
        smtp = f"{config.email.smtp_host}:{config.email.smtp_port}"
        where = str(mail_dir()) if config.email.transport == "maildir" else smtp
        return dg.MaterializeResult(
            metadata={
                "released_from_hold": released,
                "sent": report.sent,
                "failed": report.failed,
                "retried": report.retried,
                "remaining": report.remaining,
                "transport": config.email.transport,
                "delivered_to": where,
                "transport_error": report.transport_error or "",
                "seconds": watch.seconds,
            }
        )

    @dg.asset(
        group_name=GROUP,
        deps=list(loads),
        description="A3: after a big run, the user/debtor plans look once more at what its loads wrote; when none "
        "of it changes what they would do, their next window starts after it (not in a dry run).",
    )
    def plans_settled(context: dg.AssetExecutionContext, erp: ErpDatabase, web: WebDatabase,
                      settings: SyncSettings, run_options: RunOptions) -> dg.MaterializeResult:
        watch = Stopwatch()
        if run_options.dry_run:
            return dg.MaterializeResult(metadata={"dry_run": True, "settled": "not settled: a dry run"})
        with web.engine.begin() as conn:
            restaged = stage_what_the_loads_wrote(conn, erp.engine, settings, context.run_id)
            settled = settle_user_debtor_plans(conn, settings.get(), context.run_id)
        return dg.MaterializeResult(metadata={
            "settled": settled.verdict, "plans_whose_finds_differ": ", ".join(settled.differing),
            **{k: dg.MetadataValue.int(v) for k, v in restaged.items()}, "seconds": watch.seconds,
        })

    @dg.asset(
        group_name=GROUP,
        deps=[emails_delivered, plans_settled, *loads, *holds],
        description="Closes the run: records its outcome and moves the plan watermark (not in a dry run).",
    )
    def sync_run_completed(
        context: dg.AssetExecutionContext, web: WebDatabase, run_options: RunOptions
    ) -> dg.MaterializeResult:
        with web.engine.begin() as conn:
            upto = conn.execute(
                sa.text("SELECT plan_seq FROM userdebtor.sync_run WHERE run_id = :r"), {"r": context.run_id}
            ).scalar()
            if not run_options.dry_run and upto is not None:
                # Only a run whose every load went through moves the watermark: a held load is planned again.
                conn.execute(
                    sa.text(
                        "INSERT INTO userdebtor.watermark (name, seq, updated_at) VALUES ('plan', :s, now())"
                        " ON CONFLICT (name) DO UPDATE SET seq = excluded.seq, updated_at = now()"
                    ),
                    {"s": upto},
                )
                conn.execute(MOVE_PLAN_WATERMARKS_SQL, {"r": context.run_id})
            conn.execute(
                sa.text("UPDATE userdebtor.sync_run SET finished_at = now(), outcome = 'succeeded' WHERE run_id = :r"),
                {"r": context.run_id},
            )
        return dg.MaterializeResult(
            metadata={"plan_watermark": dg.MetadataValue.int(int(upto or 0)), "dry_run": run_options.dry_run}
        )

    return [emails_delivered, plans_settled, sync_run_completed]
