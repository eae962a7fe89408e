"""`userdebtor demo`: init, seed, sync, a few edits on both sides, sync again, then what happened and where to look."""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

import sqlalchemy as sa

from userdebtor_pipeline.db import engine_for, resolve_urls
from userdebtor_pipeline.report import print_sync_report
from userdebtor_pipeline.runner import run_sync
from userdebtor_pipeline.settings import load_settings


def ensure_settings_file() -> Path:
    """USERDEBTOR_CONFIG (default ./userdebtor.yaml), copied from the example when it is not there yet."""
    config = Path(os.environ.get("USERDEBTOR_CONFIG", "userdebtor.yaml"))
    if not config.exists():
        example = Path(__file__).resolve().parent.parent / "userdebtor.example.yaml"
        if not example.exists():
            example = Path(__file__).resolve().parent / "userdebtor.example.yaml"
        shutil.copyfile(example, config)
        print(f"settings: copied the example to {config}")
    os.environ["USERDEBTOR_CONFIG"] = str(config)
    return config


def _is_empty(erp: sa.Engine) -> bool:
    with erp.connect() as conn:
        return not conn.execute(sa.text("SELECT EXISTS (SELECT 1 FROM erp.deb_master)")).scalar()


def _edits(erp: sa.Engine, web: sa.Engine) -> None:
    """What a day brings: a customer edits their profile, the ERP office edits an account, both edit one."""
    with web.connect() as conn:
        pairs = conn.execute(
            sa.text(
                "SELECT user_id, dr_cust_code FROM userdebtor.user_debtor_link WHERE state = 'active'"
                " ORDER BY link_id LIMIT 3"
            )
        ).all()
    if len(pairs) < 3:
        return
    (web_user, _), (_, erp_code), (both_user, both_code) = pairs
    with web.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE web.app_user SET phone_number = '0400 123 456', updated_at = clock_timestamp()"
                " WHERE user_id = :u"
            ),
            {"u": web_user},
        )
        conn.execute(
            sa.text(
                "UPDATE web.app_user SET name = 'Name Changed On The Website',"
                " updated_at = clock_timestamp() WHERE user_id = :u"
            ),
            {"u": both_user},
        )
    with erp.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE erp.deb_master SET dr_addr_1 = '99 Changed In The Erp Street',"
                " dr_date_last_changed = clock_timestamp() WHERE dr_cust_code = :c"
            ),
            {"c": erp_code},
        )
        conn.execute(
            sa.text(
                "UPDATE erp.deb_master SET dr_cust_name = 'Name Changed In The Erp',"
                " dr_date_last_changed = clock_timestamp() WHERE dr_cust_code = :c"
            ),
            {"c": both_code},
        )
    print(
        f"edited: web user {web_user} (phone), debtor {erp_code} (address), and user {both_user} / debtor "
        f"{both_code} on both sides (name): a conflict"
    )


def _show(web: sa.Engine, home: Path, mail: Path) -> None:
    links = "SELECT {cols} FROM userdebtor.user_debtor_link WHERE origin = '{origin}' ORDER BY link_id LIMIT 5"
    queries = {
        "ERP debtors created for web users (U1)": links.format(cols="dr_cust_code, user_id", origin="debtor_created"),
        "web users created for ERP debtors (U2)": links.format(cols="user_id, dr_cust_code", origin="user_created"),
        "conflicts (U4)": (
            "SELECT conflict_id, dr_cust_code, field, web_value, erp_value, status, winner"
            " FROM userdebtor.conflict ORDER BY conflict_id LIMIT 5"
        ),
        "conversions (C1-C4)": (
            "SELECT conversion_seq, old_code, new_code, outcome FROM web.customer_conversion"
            " ORDER BY conversion_seq LIMIT 8"
        ),
        "warning emails to the administrator": (
            "SELECT email_id, subject, status FROM web.email_outbox"
            " WHERE template = 'user_debtor_warning' ORDER BY email_id LIMIT 5"
        ),
    }
    with web.connect() as conn:
        for title, query in queries.items():
            found = conn.execute(sa.text(query)).all()
            print(f"\n{title}:")
            for row in found:
                print("  " + "  ".join(str(v) for v in row))
            if not found:
                print("  none")
    print(f"""
where to look
  emails:    {mail}/new  (plain .eml-style files; open them with any mail reader or a text editor)
  database:  the embedded PostgreSQL under {home}/pgdata; schemas erp, web and userdebtor
  the UI:    userdebtor ui   then open http://127.0.0.1:3000 (asset graph, checks, runs, schedules, sensors)
  again:     userdebtor sync        (changed-since)   userdebtor sync --full   userdebtor sync --dry-run""")


def run_demo(args: argparse.Namespace, home: Path, mail: Path) -> int:
    urls = resolve_urls()
    erp, web = engine_for(urls.erp), engine_for(urls.web)
    settings = load_settings()
    if _is_empty(erp):
        from userdebtor_pipeline.seed import seed_for_settings

        print(f"== seed ({args.debtors} debtors, {args.users} users)")
        seed_for_settings(erp, web, settings, debtors=args.debtors, users=args.users, seed=args.seed)
    else:
        print("== seed: the tables already have rows; using them")
    print("== sync (the first load)")
    first = run_sync()
    print_sync_report(first, web, settings, dry_run=False)
    print("\n== a day of edits on both sides")
    _edits(erp, web)
    print("\n== sync (changed-since)")
    second = run_sync()
    print_sync_report(second, web, settings, dry_run=False)
    _show(web, home, mail)
    return 0 if first.success and second.success else 1
