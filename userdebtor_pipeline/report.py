"""What `userdebtor sync` prints: what the run did, by kind, what held it back, and how the emails went.

`sync_summary` collects it as one JSON-ready document (`userdebtor sync --json` prints it as is);
`render_sync_summary` turns it into the text a person reads; `sync_exit_status` maps it to the contract's
exit statuses. Emails: a backlog that the next run retries is a warning (exit 0); emails that exhausted
their `email.max_attempts` in this run are a failure (exit 3), because those people will never get them.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from userdebtor_pipeline.exit_status import EXIT_BAD_SETUP, EXIT_FAILED, EXIT_HELD, EXIT_OK
from userdebtor_pipeline.operations.data_docs import reports_dir
from userdebtor_pipeline.paths import mail_dir
from userdebtor_pipeline.runner import LOADS, SyncOutcome
from userdebtor_pipeline.settings import Settings

# Errors that mean bad settings or a database out of reach rather than a broken step (exit 2).
SETUP_ERROR_KINDS = frozenset({"SettingsError", "DatabaseError"})

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


def _done_rows(outcome: SyncOutcome, *, dry_run: bool) -> list[tuple[str, int]]:
    mats = outcome.materializations
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
    return rows


def _emails(outcome: SyncOutcome, outbox: dict[str, int], settings: Settings, *, dry_run: bool) -> dict[str, Any]:
    delivered = outcome.materializations.get("emails_delivered", {})
    email = settings.email
    transport_error = str(delivered.get("transport_error") or "") or None
    failed = _int(delivered.get("failed"))
    queued = _int(outbox.get("queued"))
    if "emails_delivered" not in outcome.materializations or dry_run:
        state = "not delivered in this run"
    elif failed:
        state = "failed"  # emails that will never be sent without a person
    elif transport_error or _int(delivered.get("retried")):
        state = "backlog"  # the next run retries them
    else:
        state = "ok"
    return {
        "state": state,
        "sent": _int(delivered.get("sent")),
        "failed": failed,
        "retried": _int(delivered.get("retried")),
        "queued": queued,
        "transport": email.transport,
        "delivered_to": str(mail_dir()) if email.transport == "maildir" else f"{email.smtp_host}:{email.smtp_port}",
        "transport_error": transport_error,
        "outbox": outbox,
    }


def _reports(run_id: str) -> list[str]:
    folder = reports_dir(run_id)
    return [str(p) for p in sorted(folder.glob("*.html"))] if folder.is_dir() else []


def _result(outcome: SyncOutcome, emails: dict[str, Any]) -> str:
    if not outcome.success:
        return "held by a check" if outcome.failed_checks and not broken_steps(outcome) else "failed"
    if emails["state"] == "failed":
        return "failed: emails could not be delivered"
    if emails["state"] == "backlog":
        return "ok, with an email backlog"
    return "ok"


def broken_steps(outcome: SyncOutcome) -> list[tuple[str, str, str]]:
    """(step, error, kind) of the steps that failed for a reason other than a blocking check."""
    kinds = outcome.error_kinds or [""] * len(outcome.errors)
    return [
        (step, error, kind)
        for step, error, kind in zip(outcome.failed_steps, outcome.errors, kinds, strict=False)
        if kind != "DagsterAssetCheckFailedError" and "blocking asset check" not in error
    ]


# The emails still waiting, by status, read from the outbox's index of them: the sent ones, the outbox's whole
# history, are not counted each run (`userdebtor status` counts them).
_WAITING_EMAILS_SQL = "SELECT status, count(*) FROM web.email_outbox WHERE status <> 'sent' GROUP BY status"


def sync_summary(outcome: SyncOutcome, web: Engine, settings: Settings, *, dry_run: bool) -> dict[str, Any]:
    """What the run did, as one JSON-ready document: the source of both the text and `--json`."""
    with web.connect() as conn:
        set_aside = conn.execute(
            sa.text(
                "SELECT rule, kind, count(*) FROM userdebtor.plan_set_aside GROUP BY rule, kind ORDER BY rule, kind"
            )
        ).all()
        outbox = {str(k): int(v) for k, v in conn.execute(sa.text(_WAITING_EMAILS_SQL)).all()}
    emails = _emails(outcome, outbox, settings, dry_run=dry_run)
    return {
        "run_id": outcome.run_id,
        "dry_run": dry_run,
        "result": _result(outcome, emails),
        "done": dict(_done_rows(outcome, dry_run=dry_run)),
        "set_aside": [{"rule": rule, "kind": kind, "records": int(count)} for rule, kind, count in set_aside],
        "emails": emails,
        "loads": _loads(outcome, dry_run=dry_run),
        "held_by": [
            {"check": name, "summary": str(outcome.check_metadata.get(name, {}).get("summary", ""))}
            for name in outcome.failed_checks
        ],
        "failed_steps": [{"step": step, "error": error, "kind": kind} for step, error, kind in broken_steps(outcome)],
        "reports": _reports(outcome.run_id),
    }


def _loads(outcome: SyncOutcome, *, dry_run: bool) -> dict[str, list[str]]:
    """Which loads wrote and which were held (by their check, or not reached); a dry run holds none."""
    skipped = [] if dry_run else [a for a in LOADS if a not in outcome.materializations]
    return {"ran": list(outcome.loads_written), "held": list(outcome.held_loads) + skipped}


def sync_exit_status(summary: dict[str, Any]) -> int:
    """0 done (an email backlog is a warning); 1 held by a check; 2 bad settings or database; 3 failed."""
    failed = summary["failed_steps"]
    if failed:
        return EXIT_BAD_SETUP if all(f["kind"] in SETUP_ERROR_KINDS for f in failed) else EXIT_FAILED
    if summary["held_by"]:
        return EXIT_HELD
    if summary["emails"]["state"] == "failed":
        return EXIT_FAILED
    return EXIT_OK if summary["result"].startswith("ok") else EXIT_FAILED


def render_sync_summary(summary: dict[str, Any]) -> str:
    lines = [f"run {summary['run_id']}{' (dry run: nothing written to erp or web)' if summary['dry_run'] else ''}"]
    done = summary["done"]
    width = max([len(label) for label in done] + [40])
    lines.append("\nwhat was done")
    lines += [f"  {label:<{width}} {count:>9,}" for label, count in done.items()]
    if summary["set_aside"]:
        lines.append("\nset aside (see `userdebtor status` for each record and why)")
        lines += [
            f"  {s['rule']} {s['kind'].replace('_', ' '):<{width - 3}} {s['records']:>9,}" for s in summary["set_aside"]
        ]
    emails = summary["emails"]
    outbox = ", ".join(f"{k} {v}" for k, v in sorted(emails["outbox"].items())) or "empty"
    lines.append("\nemails")
    lines.append(
        f"  sent this run: {emails['sent']}, failed: {emails['failed']}, to retry: {emails['retried']};"
        f" outbox: {outbox}"
    )
    where = (
        f"the local mail folder {emails['delivered_to']} (open the files in new/ with any mail reader)"
        if emails["transport"] == "maildir"
        else f"SMTP at {emails['delivered_to']}"
    )
    if emails["transport_error"]:
        lines.append(f"  DELIVERY FAILED to {where}: {emails['transport_error']}")
    if emails["state"] == "failed":
        lines.append(
            f"  FAILED: {emails['failed']} emails used up email.max_attempts and will not be sent again; "
            "`userdebtor status` lists them with their errors"
        )
    elif emails["state"] == "backlog":
        lines.append(f"  WARNING: {emails['queued']} emails wait in the outbox; the next run retries them")
    elif emails["state"] == "ok":
        lines.append(f"  delivered to {where}")
    loads = summary["loads"]
    lines.append("\nloads")
    lines.append(f"  ran: {', '.join(loads['ran']) or 'none'}")
    if loads["held"]:
        lines.append(f"  held: {', '.join(loads['held'])}")
    if summary["held_by"]:
        lines.append(
            "\nHELD BACK by blocking checks (their loads wrote nothing; the next good run picks the records up):"
        )
        lines += [f"  {h['check']}: {h['summary']}" for h in summary["held_by"]]
    if summary["failed_steps"]:
        lines.append("\nFAILED steps:")
        lines += [f"  {f['step']}: {f['error']}" for f in summary["failed_steps"]]
    if summary["reports"]:
        lines.append("\nreports of the failed checks (open in a browser):")
        lines += [f"  {path}" for path in summary["reports"]]
    lines.append(f"\nresult: {summary['result']}")
    return "\n".join(lines) + "\n"


def print_sync_report(outcome: SyncOutcome, web: Engine, settings: Settings, *, dry_run: bool) -> dict[str, Any]:
    """Print the summary for a person; returns it (for the exit status)."""
    summary = sync_summary(outcome, web, settings, dry_run=dry_run)
    print(render_sync_summary(summary), end="")
    return summary
