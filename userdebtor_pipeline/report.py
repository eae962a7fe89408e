"""What `userdebtor sync` prints: what the run did, by kind, and what held it back."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from userdebtor_pipeline.paths import mail_dir
from userdebtor_pipeline.runner import SyncOutcome
from userdebtor_pipeline.settings import Settings

# (asset, metadata key, what a person calls it)
_LINES = (
    ("customer_conversions_applied", "converted", "conversions applied (renamed)"),
    ("customer_conversions_applied", "merged", "conversions applied (merged)"),
    ("customer_conversions_applied", "skipped", "conversions skipped"),
    ("customer_conversions_applied", "failed", "conversions failed"),
    ("erp_debtors_created", "debtors_created", "ERP debtors created (U1)"),
    ("erp_debtors_created", "pairs_linked", "users linked to debtors (U1)"),
    ("web_users_created", "users_created", "web users created (U2)"),
    ("web_users_created", "pairs_linked", "debtors linked to users (U2)"),
    ("field_changes_applied", "debtors_updated_in_erp", "debtors updated in the ERP (U4)"),
    ("field_changes_applied", "users_updated_on_web", "users updated on the web (U4)"),
    ("field_changes_applied", "conflicts_recorded", "conflicts recorded (U4)"),
    ("link_exits_applied", "users_deactivated", "users deactivated, debtor deleted (U6)"),
    ("link_exits_applied", "links_ended", "links ended or suspended (U6)"),
)


def _int(value) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def print_sync_report(outcome: SyncOutcome, web: Engine, settings: Settings, *, dry_run: bool) -> None:
    mats = outcome.materializations
    print(f"run {outcome.run_id}{' (dry run: nothing written to erp or web)' if dry_run else ''}")
    rows: list[tuple[str, int]] = []
    for asset, key, label in _LINES:
        if asset in mats and key in mats[asset]:
            rows.append((label, _int(mats[asset][key])))
    for asset, meta in sorted(mats.items()):
        # Other domains report their own counts; show the whole numbers they chose to report.
        if (
            asset in {a for a, _, _ in _LINES}
            or asset.startswith("staged_")
            or asset in ("sync_run_started", "change_window", "sync_run_completed", "emails_delivered")
        ):
            continue
        if (
            asset
            in (
                "debtors_to_create",
                "users_to_create",
                "field_changes",
                "link_exits",
                "user_debtor_plan",
                "records_set_aside",
                "conversion_ledger",
            )
            and not dry_run
        ):
            continue
        for key, value in meta.items():
            # Only what happened: non-zero counts (a window's sequence numbers are not counts).
            if isinstance(value, int) and not isinstance(value, bool) and value and not key.endswith("seq"):
                rows.append((f"{asset}: {key.replace('_', ' ')}", value))
    with web.connect() as conn:
        set_aside = conn.execute(
            sa.text(
                "SELECT rule, kind, count(*) FROM userdebtor.plan_set_aside GROUP BY rule, kind ORDER BY rule, kind"
            )
        ).all()
        outbox = dict(conn.execute(sa.text("SELECT status, count(*) FROM web.email_outbox GROUP BY status")).all())
    width = max([len(label) for label, _ in rows] + [40])
    print("\nwhat was done")
    for label, count in rows:
        print(f"  {label:<{width}} {count:>9,}")
    if set_aside:
        print("\nset aside (see `userdebtor status` for each record and why)")
        for rule, kind, count in set_aside:
            print(f"  {rule} {kind.replace('_', ' '):<{width - 3}} {count:>9,}")
    delivered = mats.get("emails_delivered", {})
    print("\nemails")
    print(
        f"  sent this run: {_int(delivered.get('sent'))}, failed: {_int(delivered.get('failed'))}; "
        f"outbox: {', '.join(f'{k} {v}' for k, v in sorted(outbox.items())) or 'empty'}"
    )
    if settings.email.transport == "maildir":
        print(f"  delivered to the local mail folder {mail_dir()} (open the files in new/ with any mail reader)")
    else:
        print(f"  delivered over SMTP to {settings.email.smtp_host}:{settings.email.smtp_port}")
    if outcome.failed_checks:
        print("\nHELD BACK by blocking checks (their loads wrote nothing; the next good run picks the records up):")
        for name in outcome.failed_checks:
            summary = outcome.check_metadata.get(name, {}).get("summary", "")
            print(f"  {name}: {summary}")
    other = [e for e in outcome.errors if "blocking asset check" not in e]
    if other:
        print("\nFAILED steps:")
        for step, error in zip(outcome.failed_steps, other, strict=False):
            print(f"  {step}: {error}")
    print("\nresult:", "ok" if outcome.success else ("held by a check" if outcome.failed_checks else "failed"))
